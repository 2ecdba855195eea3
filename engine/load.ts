/**
 * Opens a model folder on a backend: the one entry point callers use to get a ModelRuntime.
 * `auto` is the onnxruntime engine wherever onnxruntime-node loads, else tfjs; the runtime's
 * backendNote says which runs and why.
 */
import { initTfjs, type TfjsPreference } from "./backends/tfjs";
import { initOrt, loadOrt, type OrtPreference } from "./backends/onnxruntime";
import { OrtRuntime } from "./onnx/runtime";
import { ExcitorInputError } from "./errors";
import type { ModelConfig } from "./model/config";
import { openWeightSource, readModelConfigAt } from "./model/source";
import type { ModelRuntime } from "./runtime";
import type { WeightPrecision } from "./model/quantized";
import { TfjsLlama } from "./tfjs/llama";
import { TfjsRuntime } from "./tfjs/runtime";

import { BACKEND_CHOICES, type BackendChoice } from "./backend-choice";
export { BACKEND_CHOICES, type BackendChoice } from "./backend-choice";

export interface OpenOptions {
  backend?: BackendChoice;
  /** The model will be trained: budget memory for it (see fastBackward). */
  forTraining?: boolean;
  /**
   * While training, keep W next to W^T for the frozen layers gradients flow through, so the
   * backward pass avoids the wasm backend's slow transposed matmul. Default true; false
   * halves training memory at the cost of slower steps (`npm run bench` measures both).
   */
  fastBackward?: boolean;
  /**
   * How frozen linear weights are held: "stored" (default) keeps a GGUF file's quantized tensors
   * quantized and everything else float32; "q8"/"q4" quantize at load (the onnxruntime engine).
   */
  weights?: WeightPrecision | "stored";
  /** MatMulNBits' accuracy_level for a quantized model's decoding (OrtLoadOptions): 4 (int8 compute, default) or 1 (float32). */
  accuracyLevel?: 1 | 4;
}

const ORT_PREF: Partial<Record<BackendChoice, OrtPreference>> = {
  auto: "auto",
  ort: "auto",
  "ort-cpu": "cpu",
  "ort-cuda": "cuda",
  "ort-dml": "dml",
  "ort-coreml": "coreml",
};

const TFJS_PREF: Partial<Record<BackendChoice, TfjsPreference>> = {
  auto: "auto",
  tfjs: "auto",
  "tfjs-wasm": "wasm",
  "tfjs-node": "tensorflow",
  "tfjs-node-gpu": "tensorflow-gpu",
  "tfjs-cpu": "cpu",
};

export async function openModel(dir: string, opts: OpenOptions = {}): Promise<ModelRuntime> {
  const config: ModelConfig = readModelConfigAt(dir);
  const files = openWeightSource(dir, config);
  const choice = opts.backend ?? "auto";
  // A name outside the list would otherwise fall through to tfjs's wasm backend without a word.
  if (!BACKEND_CHOICES.includes(choice)) throw new ExcitorInputError(`backend "${choice}" is not one of ${BACKEND_CHOICES.join(", ")}`);
  const ortPref = ORT_PREF[choice];
  let ortMissing: string | undefined;
  if (ortPref) {
    const ort = loadOrt();
    // Asked for by name, initOrt reports why it cannot run; under auto, tfjs takes over and says why.
    if (typeof ort !== "string" || choice !== "auto") return OrtRuntime.load(config, files, await initOrt(ortPref), { weights: opts.weights, accuracyLevel: opts.accuracyLevel });
    ortMissing = ort;
  }
  if (opts.weights === "q8" || opts.weights === "q4")
    throw new ExcitorInputError(`--weights ${opts.weights}: quantized weights need the onnxruntime engine (--backend ort); the tfjs engine holds float32 weights`);
  const tfjsInfo = await initTfjs(TFJS_PREF[choice] ?? "auto");
  const info = ortMissing ? { ...tfjsInfo, note: `${tfjsInfo.note}; ${ortMissing}` } : tfjsInfo;
  const fastBackward = opts.fastBackward ?? true;
  const need = files.float32Bytes() * (opts.forTraining && fastBackward ? 2 : 1);
  if (info.memoryLimitBytes && need > 0.85 * info.memoryLimitBytes) {
    const gib = (n: number) => (n / 2 ** 30).toFixed(1);
    throw new ExcitorInputError(
      `${dir}: this model needs ${gib(need)} GiB of float32 weights${opts.forTraining ? " for training" : ""}, ` +
        `but the tfjs ${info.name} backend's memory is capped at ${gib(info.memoryLimitBytes)} GiB; ` +
        `run it on the onnxruntime engine (--backend ort), install @tensorflow/tfjs-node-gpu (NVIDIA GPU) or @tensorflow/tfjs-node, or pick a smaller model` +
        (opts.forTraining && fastBackward ? " (or train with --low-memory, which needs half as much)" : ""),
      dir,
    );
  }
  return new TfjsRuntime(TfjsLlama.load(config, files), info, fastBackward);
}
