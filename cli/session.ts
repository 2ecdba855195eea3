/**
 * What most commands do first: open the model's tokenizer and an
 * optional adapter; plus Ctrl-C as an AbortSignal. Kept in one place so that every command
 * reports a missing folder or a misfit adapter the same way.
 */
import * as fs from "node:fs";
import * as readline from "node:readline";
import { Option, type Command } from "commander";
import { isGgufPath } from "../engine/formats/gguf";
import type { HeldPrecision } from "../engine/model/memory";
import { parseWeights } from "./options";
import { ExcitorInputError } from "../engine/errors";
import { loadAdapter, type Adapter } from "../engine/adapters";
import type { ImageFeatures, ModelRuntime } from "../engine/runtime";
import type { PictureView } from "../engine/analysis/image-attention";
import { openAdapterEncoder, pictureFeatures } from "../engine/vision/attach";
import type { VisionEncoder } from "../engine/vision/encoder";
import { TextTokenizer } from "../engine/tokenizer/tokenizer";
import { idsOutsideVocabulary } from "../engine/tokenizer/ids-fit";

export const MODEL_HELP = "the base model: a folder (Hugging Face layout: config.json, *.safetensors, tokenizer.json) or a .gguf file";

/** Adds the options every model command shares. */
export function modelOptions(cmd: Command, withAdapter = true, withWeights = true): Command {
  cmd.requiredOption("--model <path>", MODEL_HELP);
  if (withWeights) weightsOption(cmd);
  if (withAdapter) cmd.option("--adapter <dir>", "Excitor or LoRA adapter folder (adapter_config.json, adapter_model.safetensors)");
  return cmd;
}

/** --weights: how the engine holds the frozen weights (engine/load.ts OpenOptions.weights). */
export function weightsOption(cmd: Command): Command {
  return cmd.addOption(
    new Option("--weights <precision>", "hold the frozen linear weights as f32, q8 or q4 (8- or 4-bit blocks of 32; the onnxruntime engine); as stored, a GGUF file's quantized tensors stay quantized and the rest is float32")
      .argParser(parseWeights)
      .default("stored", "as stored"),
  );
}

/**
 * Full fine-tuning writes every weight back as float32 safetensors: a GGUF file (quantized, and no
 * model folder beside it) or weights held quantized cannot be trained that way. `what` names the
 * command's part that would, `instead` what to do.
 */
export function refuseBaseUpdate(what: string, model: string, weights: HeldPrecision, instead: string): void {
  if (isGgufPath(model))
    throw new ExcitorInputError(`${model}: ${what} updates the base model's weights, which a GGUF file holds quantized and without a model folder to write them to; ${instead}`, model);
  if (weights === "q8" || weights === "q4")
    throw new ExcitorInputError(`--weights ${weights}: ${what} updates the base model's weights, which would then be held quantized and frozen; leave --weights out, or train an adapter (--method excitor or lora)`);
}

/** --image and --vision: a picture for a multimodal adapter, and its encoder when not the one the adapter names. */
export function imageOptions(cmd: Command): Command {
  return cmd
    .option("--image <file>", "a PNG or JPEG picture for a multimodal adapter (one trained with --vision)")
    .option("--vision <dir>", "the CLIP vision encoder folder (default: the one the adapter's adapter_config.json names)");
}

/** A command's picture: the adapter's encoder and the picture's features (none without --image). */
export interface Picture {
  encoder?: VisionEncoder;
  features?: ImageFeatures;
  /** The picture as the encoder saw it, for the attention overlay. */
  view?: PictureView;
}

/** Opens the encoder of a multimodal adapter and reads `--image` through it; `dispose` the encoder when done. */
export async function openPicture(rt: ModelRuntime, adapter: Adapter | null, o: { adapter?: string; image?: string; vision?: string }): Promise<Picture> {
  const encoder = await openAdapterEncoder(rt, adapter, o.adapter, o.vision);
  if (o.image === undefined) return { encoder };
  if (!encoder)
    throw new ExcitorInputError(
      `--image: ${adapter ? `the adapter ${o.adapter} is not multimodal (its adapter_config.json has no "vision" block); pictures need an Excitor adapter trained with --vision` : "pictures need --adapter with a multimodal adapter (an Excitor adapter trained with --vision)"}`,
    );
  try {
    const features = await pictureFeatures(encoder, o.image);
    return { encoder, features, view: pictureView(encoder!, o.image) };
  } catch (e) {
    encoder?.dispose();
    throw e;
  }
}

/** The picture as the encoder saw it (resized, center-cropped) as a PNG data URI, with its grid. */
export function pictureView(encoder: VisionEncoder, file: string): PictureView {
  return { png: `data:image/png;base64,${encoder.cropPng(file).toString("base64")}`, size: encoder.imageSize, grid: encoder.grid };
}

/** The tokenizer that ships in the model folder, or the GGUF file's own. */
export function openTokenizer(modelDir: string): TextTokenizer {
  if (!fs.existsSync(modelDir)) throw new ExcitorInputError(`${modelDir}: ${/\.gguf$/i.test(modelDir) ? "file" : "model folder"} not found`, modelDir);
  return TextTokenizer.fromFolder(modelDir);
}

/** Loads the adapter (checking that it fits the model) and uploads it; null when none was given. */
export function attachAdapter(rt: ModelRuntime, dir: string | undefined): Adapter | null {
  if (dir === undefined) return null;
  const adapter = loadAdapter(dir, rt.config);
  rt.setAdapter(adapter);
  return adapter;
}

/**
 * Ctrl-C → `signal` aborts, so the work in progress can stop at a clean point. A second Ctrl-C
 * (when `forceOnSecond`) quits at once with 130. `dispose()` restores the default handling.
 */
export function interruptSignal(onFirst?: () => void, forceOnSecond = true): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const handler = () => {
    if (ac.signal.aborted && forceOnSecond) process.exit(130);
    ac.abort();
    onFirst?.();
  };
  process.on("SIGINT", handler);
  return { signal: ac.signal, dispose: () => process.removeListener("SIGINT", handler) };
}

/** Ids must be in the model's vocabulary; `where` names what gave them (`--ids`, `--text`, `--prompt`, "that message"). */
export function checkIds(ids: number[], vocabSize: number, where: string, tok?: TextTokenizer): void {
  const misfit = idsOutsideVocabulary(ids, vocabSize, tok);
  if (misfit) throw new ExcitorInputError(`${where}: ${misfit}`);
}

/** Set while another program drives this one through stdinStopSignal. */
let driver: AbortController | undefined;

/** When stdout breaks: with a driver, stop at the next clean point and say so (true); else false. */
export function stopForDriver(): boolean {
  driver?.abort();
  return driver !== undefined;
}

/**
 * For a program driven by another (an editor): a line "stop" on stdin, or the end of stdin (the
 * driver went away), aborts `signal`. This works on every platform, where signals do not (a
 * Windows child cannot be sent SIGINT). `dispose()` stops reading, so the process can exit.
 */
export function stdinStopSignal(): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  rl.on("line", (line) => line.trim() === "stop" && ac.abort());
  rl.on("close", () => ac.abort());
  // The driver going away (an editor window reloading or closing) also breaks our stdout and stderr
  // pipes: a failed write is then one more sign to stop cleanly, never a reason to exit before the
  // checkpoint (see stopForDriver). Kept after dispose: the last writes may fail too.
  driver = ac;
  process.stderr.on("error", () => ac.abort());
  return {
    signal: ac.signal,
    dispose: () => {
      rl.removeAllListeners("close");
      rl.close();
      process.stdin.destroy();
    },
  };
}
