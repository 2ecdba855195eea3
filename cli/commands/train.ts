/**
 * `excitor train`: options → TrainOptions, events → progress bar (or JSON lines with --json),
 * Ctrl-C → the trainer's AbortSignal, so that it stops at a step boundary, writes a checkpoint
 * and the command exits 130 saying where the adapter is (and that --resume continues it).
 */
import { Option, type Command } from "commander";
import { readDataset } from "../../engine/data/datasets";
import { presetRecipe, trainExamplesOf, type PresetName } from "../../engine/train/recipe";
import { TRAIN_DEFAULTS, checkMethodOptions, train, type TrainOptions } from "../../engine/train/trainer";
import { TUNING_METHODS, type TuningMethod } from "../../engine/adapters";
import { LORA_DEFAULTS, LORA_MODULES, parseTargets } from "../../engine/lora/config";
import { parseRetain } from "../../engine/train/retention";
import { checkOutDir } from "../../engine/train/run-folder";
import type { HeldPrecision } from "../../engine/model/memory";
import { openModel, type BackendChoice } from "../../engine/load";
import { VisionEncoder } from "../../engine/vision/encoder";
import { openTokenizer, interruptSignal, modelOptions, refuseBaseUpdate, stdinStopSignal } from "../session";
import { fmtDuration, fmtInt } from "../format";
import { keptKnowledge, trainReporter } from "../progress";
import { EXIT } from "../errors";
import { ExcitorInputError } from "../../engine/errors";
import { TRAIN_RANGES as R } from "../../engine/option-ranges";
import { intListOption, numberOption, repeatableOption, type Runner } from "../options";
import { countBaseParameters } from "../../engine/model/config";

interface Opts {
  model: string;
  data: string;
  out: string;
  backend: BackendChoice;
  weights: HeldPrecision;
  epochs: number;
  maxSteps?: number;
  batchSize: number;
  microBatch: number;
  lr?: number;
  prompts?: number;
  rank?: number;
  layers?: number[];
  maxLength: number;
  validationShare: number;
  seed: number;
  checkpointEvery: number;
  evalEvery: number;
  warmupShare: number;
  weightDecay: number;
  gradClip: number;
  resume?: boolean;
  json?: boolean;
  stdinControl?: boolean;
  lowMemory?: boolean;
  preset?: PresetName;
  method: TuningMethod;
  loraR?: number;
  loraAlpha?: number;
  loraTargets?: string;
  retain: string[];
  retainWeight: number;
  vision?: string;
  visionLayer: number;
}

/** The options `recipeOptions` adds, with --data and --method, as `withPreset` reads them. */
export type RecipeOpts = Pick<
  Opts,
  "data" | "method" | "epochs" | "maxSteps" | "batchSize" | "microBatch" | "lr" | "prompts" | "rank" | "layers" | "maxLength" | "validationShare" | "seed" | "checkpointEvery" | "evalEvery" | "warmupShare" | "weightDecay" | "gradClip" | "preset"
> &
  Partial<Pick<Opts, "loraR" | "loraAlpha" | "loraTargets">>;

export function registerTrain(program: Command, run: Runner): void {
  recipeOptions(modelOptions(program.command("train").description("instruction-tune the model with an Excitor adapter (or, to compare, LoRA or full fine-tuning)"), false)
    .requiredOption("--data <file>", "dataset: JSON Lines or a JSON array of Alpaca, chat or ShareGPT records")
    .requiredOption("--out <dir>", "folder for the adapter, checkpoints and metrics.jsonl")
  )
    .addOption(new Option("--method <name>", "what is trained: an Excitor adapter, a LoRA adapter (PEFT's layout) or every weight (a model folder)").choices(TUNING_METHODS).default("excitor"))
    .addOption(numberOption("--lora-r <r>", `--method lora: rank (default ${LORA_DEFAULTS.r})`, R.loraR))
    .addOption(numberOption("--lora-alpha <x>", `--method lora: alpha; updates are scaled by alpha / r (default ${LORA_DEFAULTS.alpha})`, R.loraAlpha))
    .option("--lora-targets <list>", `--method lora: adapted linear layers, comma-separated, of ${Object.keys(LORA_MODULES).join(", ")} (default ${LORA_DEFAULTS.targets.join(",")})`)
    .addOption(
      repeatableOption(
        "--retain <what>",
        "forgetting monitor's retention set: base (the base model's own samples), none (off), or a .txt (blank-line paragraphs) / .jsonl (\"text\") file of your text, which replaces the base samples unless listed with base (base,FILE); repeatable",
      ).default([], "base"),
    )
    .addOption(numberOption("--retain-weight <x>", "λ of a KL-to-base term on replayed base-model samples each step, against forgetting (0: off)", R.retainWeight, 0))
    .option("--vision <dir>", "CLIP vision encoder folder (Hugging Face CLIPVisionModel or CLIPModel): trains a multimodal adapter on the records' \"image\" pictures")
    .addOption(numberOption("--vision-layer <n>", "with --vision: the encoder layer whose output the adapter reads (-1 the last, -2 the one before it, as LLaVA)", R.visionLayer, -1))
    .option("--resume", "continue from the checkpoint in --out")
    .option("--low-memory", "tfjs engine: keep one copy of the frozen weights (half the memory, slower backward passes); the onnxruntime engine always keeps one")
    .option("--json", "print each training event as one JSON line on stdout instead of the progress bar")
    .option("--stdin-control", 'for editors: a line "stop" on stdin, or the end of stdin, stops after the current step (as Ctrl-C does)')
    .action(run(async (cmd) => trainWithJsonErrors(withPreset(cmd.optsWithGlobals<Opts>(), (name) => cmd.getOptionValueSource(name) === "cli"))));
}

/** The options of a run's recipe, shared by `train` and `export-job`: steps, batch, rate, K and r, data split, checkpoints. */
export function recipeOptions(cmd: Command): Command {
  const D = TRAIN_DEFAULTS;
  return cmd
    .addOption(numberOption("--epochs <n>", "passes over the training set", R.epochs, D.epochs))
    .addOption(numberOption("--max-steps <n>", "stop after this many optimizer steps", R.maxSteps))
    .addOption(numberOption("--batch-size <n>", "examples per optimizer step", R.batchSize, D.batchSize))
    .addOption(numberOption("--micro-batch <n>", "examples per forward/backward pass (memory)", R.microBatch, D.microBatch))
    .addOption(numberOption("--lr <x>", "peak learning rate (default 9e-3 × batch size / 256)", R.learningRate))
    .addOption(numberOption("--prompts <K>", "--method excitor: learnable prompts per adapted layer (default 10, or 30 from 100M parameters)", R.numPrompts))
    .addOption(numberOption("--rank <r>", "--method excitor: rank of the Excitor query (default 8, or 16 from 100M parameters)", R.rank))
    .addOption(intListOption("--layers <list>", "adapted layers, e.g. 4,5,6,7 (default: the top 15/16 for Excitor, all for LoRA)"))
    .addOption(numberOption("--max-length <n>", "tokens per example; longer ones are cut", R.maxLength, D.maxLength))
    .addOption(numberOption("--validation-share <x>", "share of examples held out for validation", R.validationShare, D.validationShare))
    .addOption(numberOption("--seed <n>", "random seed (init, data order, split)", R.seed, D.seed))
    .addOption(numberOption("--checkpoint-every <n>", "checkpoint every N steps (0: only at the end)", R.checkpointEvery, D.checkpointEvery))
    .addOption(numberOption("--eval-every <n>", "validation loss every N steps (0: at checkpoints)", R.evalEvery, D.evalEvery))
    .addOption(numberOption("--warmup-share <x>", "share of steps with linear learning-rate warmup", R.warmupShare, D.warmupShare))
    .addOption(numberOption("--weight-decay <x>", "AdamW weight decay", R.weightDecay, D.weightDecay))
    .addOption(numberOption("--grad-clip <x>", "clip the gradient's global norm (0: off)", R.gradClip, D.gradClip))
    .addOption(
      new Option("--preset <name>", "quick or standard: epochs, steps, batch, learning rate, K and r scaled to the data's size (explicit options win)").choices(["quick", "standard"]),
    );
}

/** The recipe's step options as the trainer takes them (`recipeOptions`' steps, batch, rate, data split and checkpoints). */
export function stepOptions(o: RecipeOpts) {
  return {
    epochs: o.epochs,
    maxSteps: o.maxSteps,
    batchSize: o.batchSize,
    microBatch: o.microBatch,
    learningRate: o.lr,
    warmupShare: o.warmupShare,
    weightDecay: o.weightDecay,
    gradClip: o.gradClip,
    maxLength: o.maxLength,
    validationShare: o.validationShare,
    seed: o.seed,
    checkpointEvery: o.checkpointEvery,
    evalEvery: o.evalEvery,
  } satisfies Partial<TrainOptions>;
}

/**
 * --preset: the recipe for the data's training split fills every option the user did not give.
 * The dataset is read here as the trainer reads it, so a bad file fails with the same message.
 */
export function withPreset<O extends RecipeOpts>(o: O, given: (option: string) => boolean): O {
  checkMethodOptions(methodOptions(o)); // before a preset fills K and r, which are Excitor's
  if (!o.preset) return o;
  const r = presetRecipe(o.preset, trainExamplesOf(readDataset(o.data).length, o.validationShare), {
    batchSize: given("batchSize") ? o.batchSize : undefined,
    minEpochs: given("epochs") ? o.epochs : undefined,
    learningRate: o.lr,
    numPrompts: o.prompts,
    rank: o.rank,
  });
  process.stderr.write(`excitor: ${o.preset} preset: ${r.reason}; K ${r.numPrompts}, r ${r.rank}, learning rate ${r.learningRate}\n`);
  return {
    ...o,
    batchSize: r.batchSize,
    microBatch: given("microBatch") ? o.microBatch : Math.min(r.batchSize, 16),
    epochs: r.epochs,
    maxSteps: o.maxSteps ?? r.maxSteps,
    lr: r.learningRate,
    prompts: o.method === "excitor" ? r.numPrompts : undefined,
    rank: o.method === "excitor" ? r.rank : undefined,
  };
}

function methodOptions(o: RecipeOpts): Pick<TrainOptions, "method" | "numPrompts" | "rank" | "loraR" | "loraAlpha" | "loraTargets" | "layers"> {
  return {
    method: o.method,
    numPrompts: o.prompts,
    rank: o.rank,
    loraR: o.loraR,
    loraAlpha: o.loraAlpha,
    loraTargets: o.loraTargets === undefined ? undefined : parseTargets(o.loraTargets.split(",").map((t) => t.trim()).filter(Boolean), "--lora-targets"),
    layers: o.layers,
  };
}

/**
 * With --json, a bad model folder or dataset is also reported as an event on stdout
 * (`{"type":"error","message","file","line"}`), so that an editor can open the file at the line.
 * The one-line message on stderr and exit code 2 stay as for every command.
 */
async function trainWithJsonErrors(o: Opts): Promise<number> {
  try {
    return await trainCommand(o);
  } catch (e) {
    if (o.json && e instanceof ExcitorInputError) process.stdout.write(JSON.stringify({ type: "error", message: e.message, file: e.file, line: e.line }) + "\n");
    throw e;
  }
}

async function trainCommand(o: Opts): Promise<number> {
  if (o.method === "full")
    refuseBaseUpdate("--method full", o.model, o.weights, "train an Excitor or LoRA adapter on it (--method excitor or lora), or fine-tune the model's Hugging Face folder");
  checkOutDir(o.out); // before the model loads: a bad --out fails at once
  const tok = openTokenizer(o.model);
  if (o.vision === undefined && o.visionLayer !== -1) throw new ExcitorInputError("--vision-layer picks the layer of the --vision encoder; give --vision DIR too");
  const rt = await openModel(o.model, { backend: o.backend, weights: o.weights, forTraining: true, fastBackward: !o.lowMemory });
  // The encoder runs on the model's engine; it is frozen, so training only reads its features.
  const encoder = o.vision === undefined ? undefined : await VisionEncoder.load(o.vision, { engine: rt.backend.startsWith("onnxruntime") ? "onnxruntime" : "tfjs", featureLayer: o.visionLayer });
  const reporter = o.json ? undefined : trainReporter();
  const interrupt = interruptSignal(() => {
    const note = "stopping after this step and writing a checkpoint (Ctrl-C again to quit at once)";
    if (reporter) reporter.log(note);
    else process.stderr.write(`excitor: ${note}\n`);
  });
  const control = o.stdinControl ? stdinStopSignal() : undefined;
  const options: TrainOptions = {
    dataFile: o.data,
    outDir: o.out,
    baseModel: o.model,
    ...methodOptions(o),
    retain: parseRetain(o.retain),
    retainWeight: o.retainWeight,
    ...(encoder ? { vision: { encoder, dir: o.vision!, featureLayer: o.visionLayer } } : {}),
    ...stepOptions(o),
    resume: o.resume === true,
    signal: control ? AbortSignal.any([interrupt.signal, control.signal]) : interrupt.signal,
    onEvent: (e) => (o.json ? process.stdout.write(JSON.stringify(e) + "\n") : reporter?.onEvent(e)),
  };
  const t0 = performance.now();
  try {
    const result = await train(rt, tok, options);
    reporter?.stop();
    if (result.status === "cancelled") {
      process.stderr.write(`excitor: training stopped at step ${result.step}; the adapter and a checkpoint are in ${result.adapterDir} (continue with --resume)\n`);
      return EXIT.interrupted;
    }
    if (!o.json) {
      const trainable = result.trainableParams;
      const base = countBaseParameters(rt.config);
      const val = result.validationLoss === undefined ? "none (no validation examples)" : result.validationLoss.toFixed(4);
      const full = o.method === "full";
      process.stdout.write(
        [
          `steps            ${result.step}`,
          `final loss       ${Number.isFinite(result.loss) ? result.loss.toFixed(4) : "- (no step left to run)"}`,
          `validation loss  ${val}`,
          ...(result.verdict ? [`learned          ${result.verdict.message}`] : []),
          `kept knowledge   ${result.retention ? `${keptKnowledge(result.retention)} (measuring it took ${result.monitorSeconds.toFixed(1)} s)` : o.retain.join(",") === "none" ? "not measured (--retain none)" : "not measured"}`,
          `wall time        ${wallTime((performance.now() - t0) / 1000)}`,
          full ? `model            ${result.adapterDir} (use it with --model)` : `adapter          ${result.adapterDir} (${o.method === "lora" ? "LoRA" : "Excitor"})`,
          full
            ? `trainable params ${fmtInt(trainable)} (every weight)`
            : `trainable params ${fmtInt(trainable)} (${((100 * trainable) / (base + trainable)).toFixed(3)}% of ${fmtInt(base + trainable)})`,
        ].join("\n") + "\n",
      );
    }
    return EXIT.ok;
  } finally {
    reporter?.stop();
    interrupt.dispose();
    control?.dispose();
    encoder?.dispose();
    rt.dispose();
  }
}

function wallTime(seconds: number): string {
  return seconds < 60 ? `${seconds.toFixed(1)}s` : fmtDuration(seconds);
}
