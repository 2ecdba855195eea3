/**
 * A training run: dataset file -> records -> examples -> batches -> steps -> events and
 * checkpoints -> adapter folder. Deterministic: the same seed, data and machine give the same
 * adapter, and a run resumed from a checkpoint ends exactly where an uninterrupted one would,
 * because each epoch's order is a function of (seed, epoch) and checkpoints hold all state.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { readDataset, recordLocation, type DatasetRecord } from "../data/datasets";
import { encodeRecord, splitTrainValidation, type Example } from "../data/encode";
import { ExcitorInputError, check } from "../errors";
import type { Adapter, TuningMethod } from "../adapters";
import { ExcitorAdapter } from "../excitor/adapter";
import type { VisionBlock } from "../excitor/config";
import { LoraAdapter } from "../lora/adapter";
import type { LoraModule } from "../lora/config";
import { countBaseParameters, type ModelConfig } from "../model/config";
import { Rng } from "../rng";
import type { LossAndGrads, ModelRuntime } from "../runtime";
import type { TextTokenizer } from "../tokenizer/tokenizer";
import { yieldToEventLoop } from "../event-loop";
import { appendText } from "../fs-atomic";
import { chunk, makeBatch, targetTokens } from "./batches";
import { ImageTable, type ImageEncoder } from "./images";
import { hasTrainerState, readTrainerState, restoreTrainerState, saveTrainerState } from "./checkpoint";
import { checkOutDir, prepareOutDir, rewindMetrics, staleResultNotice } from "./run-folder";
import type { RetentionMeasure, TrainEvent } from "./events";
import { ADAMW_DEFAULTS, AdamW, clipGlobalNorm } from "./optimizer";
import { excitorTarget, fullTarget, loraTarget, type TrainTarget } from "./targets";
import { ReplayRegulariser } from "./replay";
import { RETAIN_DEFAULT, RETENTION_FILE, RetentionMonitor, replaySet, retainLabel, retainOff, retentionSet, retentionSource, type RetainSpec } from "./retention";
import { defaultLearningRate, defaultWarmupSteps, learningRate } from "./schedule";
import { learningVerdict, type LearningVerdict } from "./verdict";
import { checkModelRanges, checkTrainRanges } from "../option-ranges";

export interface TrainOptions {
  dataFile: string;
  outDir: string;
  /** K; default 10 for models under 100 M parameters, else 30 (the spec). */
  numPrompts?: number;
  /** r; default 8 for models under 100 M parameters, else 16. */
  rank?: number;
  /** Adapted layers; default the spec's top ceil(15/16·N) (all for N ≤ 8). */
  layers?: number[];
  epochs: number;
  /** Stop after this many optimizer steps (default: epochs × steps per epoch). */
  maxSteps?: number;
  /** Examples per optimizer step (effective batch). */
  batchSize: number;
  /** Examples per forward/backward pass; batchSize / microBatch passes are accumulated. */
  microBatch: number;
  /** Peak learning rate; default 9e-3 × batchSize / 256. */
  learningRate?: number;
  warmupShare: number;
  weightDecay: number;
  gradClip: number;
  maxLength: number;
  validationShare: number;
  seed: number;
  /** Write a checkpoint every N steps (0: only at the end). */
  checkpointEvery: number;
  /** Validation loss every N steps (0: at checkpoints and the end). */
  evalEvery: number;
  /** Continue from outDir's checkpoint. */
  resume: boolean;
  /**
   * "excitor" (default) tunes an Excitor adapter; "lora" a LoRA adapter in PEFT's layout (the
   * comparison method); "full" trains every base weight and writes a model folder (full
   * fine-tuning, and how the built-in demo model is pretrained).
   */
  method?: TuningMethod;
  /** LoRA rank (default 8, PEFT's). */
  loraR?: number;
  /** LoRA alpha; the update is scaled by alpha / r (default 16). */
  loraAlpha?: number;
  /** Adapted linear layers by Hugging Face name (default q_proj, v_proj). */
  loraTargets?: LoraModule[];
  /** The forgetting monitor's retention set (retention.ts); default the base model's own samples. */
  retain?: RetainSpec;
  /** λ of the KL-to-base replay term (replay.ts); 0 (default) turns it off. */
  retainWeight?: number;
  /** Base model folder, recorded in adapter_config.json. */
  baseModel: string;
  /**
   * Multimodal (spec § Multimodal): the frozen image encoder for the dataset's pictures, its folder
   * (recorded in adapter_config.json relative to the adapter) and which of its layers gives F.
   */
  vision?: { encoder: ImageEncoder; dir: string; featureLayer: number };
  signal?: AbortSignal;
  onEvent?: (e: TrainEvent) => void;
}

/** Excitor's K and r when not given: the spec's 30 and 16, or 10 and 8 for models under 100 M parameters. */
export function excitorSize(c: ModelConfig): { numPrompts: number; rank: number } {
  const small = countBaseParameters(c) < 100e6;
  return { numPrompts: small ? 10 : 30, rank: small ? 8 : 16 };
}

export const TRAIN_DEFAULTS = {
  epochs: 3,
  batchSize: 8,
  microBatch: 4,
  warmupShare: 0.1,
  weightDecay: ADAMW_DEFAULTS.weightDecay,
  gradClip: 1.0,
  maxLength: 512,
  validationShare: 0.05,
  seed: 0,
  checkpointEvery: 50,
  evalEvery: 0,
  resume: false,
} satisfies Partial<TrainOptions>;

export const METRICS_FILE = "metrics.jsonl";

export interface TrainResult {
  status: "done" | "cancelled";
  step: number;
  /** The trained adapter (in full training, an unused Excitor one: the model folder is the result). */
  adapter: Adapter;
  /** Parameters the run trained (the adapter's, or every weight in full training). */
  trainableParams: number;
  adapterDir: string;
  loss: number;
  validationLoss?: number;
  /** Whether the loss fell (done runs of 4 steps or more). */
  verdict?: LearningVerdict;
  /** The last forgetting-monitor measure (absent with the monitor off). */
  retention?: RetentionMeasure;
  /** Seconds the monitor took (0 with it off). */
  monitorSeconds: number;
}

export async function train(rt: ModelRuntime, tok: TextTokenizer, o: TrainOptions): Promise<TrainResult> {
  validateOptions(o, rt);
  const t0 = performance.now();
  const metrics = path.join(o.outDir, METRICS_FILE);
  const emit = (e: TrainEvent) => {
    appendText(metrics, JSON.stringify({ time: new Date().toISOString(), ...e }) + "\n");
    o.onEvent?.(e);
  };
  checkOutDir(o.outDir);

  const { records, examples, trainSet, validation, truncated, maxLength, template } = readRunData(o, rt.config, tok);

  const method = o.method ?? "excitor";
  const pictured = examples.find((e) => e.image);
  const where = (e: { line: number }) => recordLocation(o.dataFile, records.find((r) => r.line === e.line) ?? { line: e.line });
  if (pictured && !o.vision)
    throw new ExcitorInputError(`${where(pictured)}: the record names an image, but no image encoder was given; pass --vision DIR (a CLIP vision folder)`, o.dataFile, pictured.line);
  if (o.vision) {
    check(method === "excitor", `--vision: images are read through Excitor's prompts (spec § Multimodal); --method ${method} cannot use them`);
    check(!!pictured, `--vision: no record of ${o.dataFile} names an image ("image": "path"); drop --vision to tune on text`);
  }
  const adapter: Adapter =
    method === "lora"
      ? LoraAdapter.create(rt.config, { r: o.loraR, alpha: o.loraAlpha, targets: o.loraTargets, layers: o.layers, seed: o.seed, baseModel: o.baseModel, template })
      : ExcitorAdapter.create(rt.config, {
          numPrompts: o.numPrompts ?? excitorSize(rt.config).numPrompts,
          rank: o.rank ?? excitorSize(rt.config).rank,
          layers: o.layers,
          seed: o.seed,
          baseModel: o.baseModel,
          ...(o.vision ? { vision: visionBlock(o.vision, o.outDir) } : {}),
          extra: { template },
        });
  const { stepsPerEpoch, totalSteps, peakLr, warmup } = stepPlan(trainSet.length, o);
  const opt = new AdamW({ ...ADAMW_DEFAULTS, weightDecay: o.weightDecay });
  const full = method === "full";
  const retain = o.retain ?? RETAIN_DEFAULT;
  const retainWeight = o.retainWeight ?? 0;
  // Full training measures against the base only where the engine keeps it beside the trained copy.
  const baseGone = full && !rt.keepsBaseInFullTraining;
  check(!(baseGone && retainWeight > 0), `--retain-weight: full training on the ${rt.backend} engine does not keep the base model, whose distributions the term pulls towards; use --method excitor or lora, or leave --retain-weight at 0`);
  const fingerprint = runFingerprint(o, examples, adapter, totalSteps, retain, retainWeight);

  if (!o.resume && hasTrainerState(o.outDir))
    throw new ExcitorInputError(`${o.outDir}: already holds a training checkpoint; pass --resume to continue it, or choose a new --out folder`, o.outDir);
  const target: TrainTarget = full ? fullTarget(rt, o.baseModel) : adapter instanceof LoraAdapter ? loraTarget(rt, adapter) : excitorTarget(rt, adapter);
  let step = 0;
  let staleResult: string | undefined;
  if (o.resume) {
    // Checked whole before anything changes: a bad checkpoint leaves the folder and the run as they were.
    const saved = readTrainerState(o.outDir, target.tensors, fingerprint, totalSteps);
    prepareOutDir(o.outDir);
    step = restoreTrainerState(saved, target.tensors, opt);
    target.upload();
    rewindMetrics(metrics, step);
    staleResult = staleResultNotice(o.outDir, target.weightsFile, step);
    if (staleResult) target.save(o.outDir, step);
  } else {
    prepareOutDir(o.outDir);
    fs.rmSync(metrics, { force: true });
  }
  const params = new Map(Object.entries(target.tensors).map(([n, t]) => [n, t.data]));
  const pad = padId(tok);
  // Every picture is encoded here, once: the steps only look features up.
  const imageStart = performance.now();
  const images = o.vision ? await ImageTable.build(examples, o.vision.encoder, where) : undefined;
  const imageSeconds = (performance.now() - imageStart) / 1000;
  // What the forgetting monitor costs (making its set, every measure), reported in the done event.
  let monitorSeconds = 0;
  const timed = async <T>(work: () => Promise<T>): Promise<T> => {
    const start = performance.now();
    try {
      return await work();
    } finally {
      monitorSeconds += (performance.now() - start) / 1000;
    }
  };
  const monitor =
    retainOff(retain) || baseGone ? undefined : await timed(async () => new RetentionMonitor(rt, await retentionSet(rt, tok, retain, { seed: o.seed, outDir: o.outDir, resume: o.resume }), pad));
  const replay = retainWeight > 0 ? new ReplayRegulariser(rt, await replaySet(rt, tok, { seed: o.seed, outDir: o.outDir, resume: o.resume }), pad, retainWeight) : undefined;
  emit({
    type: "start",
    method,
    totalSteps,
    stepsPerEpoch,
    epochs: o.epochs,
    trainExamples: trainSet.length,
    validationExamples: validation.length,
    truncatedExamples: truncated.length,
    trainableParams: target.parameterCount,
    baseParams: countBaseParameters(rt.config),
    backend: rt.backend,
    backendNote: rt.backendNote,
    layers: target.layers,
    learningRate: peakLr,
    effectiveBatch: o.batchSize,
    resumedFromStep: step,
    outDir: o.outDir,
    ...(monitor
      ? { retention: { samples: monitor.samples.length, tokens: monitor.tokens, source: retentionSource(retain), file: path.join(o.outDir, RETENTION_FILE) } }
      : {}),
  });
  if (staleResult) emit({ type: "log", level: "info", message: staleResult });
  if (images) emit({ type: "log", level: "info", message: `${images.size} picture(s) encoded once by ${o.vision!.dir} in ${imageSeconds.toFixed(1)} s; training reuses their features` });
  if (baseGone && !retainOff(retain))
    emit({ type: "log", level: "warn", message: `no forgetting monitor: full training on the ${rt.backend} engine replaces the base weights, so there is no base model left to compare with` });
  if (truncated.length)
    emit({ type: "log", level: "warn", message: `${truncated.length} example(s) longer than ${maxLength} tokens were truncated (first: ${o.dataFile}:${truncated[0].line})` });

  let lastRetention: RetentionMeasure | undefined;
  // The forgetting monitor rides on validation events; a run without validation examples has
  // none, and measures once at the end for the done event.
  const validate = async (): Promise<number | undefined> => {
    if (!validation.length) return undefined;
    let sum = 0;
    let n = 0;
    for (const part of chunk(validation, o.microBatch)) {
      const r = await rt.evalLoss(makeBatch(part, pad, images), true);
      sum += r.lossSum;
      n += r.tokens;
    }
    const loss = sum / n;
    if (monitor) lastRetention = await timed(() => monitor.measure());
    emit({ type: "validation", step, loss, ...(lastRetention ? { retention: lastRetention } : {}) });
    return loss;
  };
  const checkpoint = () => {
    saveTrainerState(o.outDir, target.tensors, opt, { step, fingerprint });
    target.save(o.outDir, step);
    emit({ type: "checkpoint", step, dir: o.outDir });
  };

  let lastLoss = NaN;
  let validationLoss = step === 0 ? await validate() : undefined;
  const runStart = performance.now();
  const startStep = step;
  let order: number[] = [];
  let orderEpoch = -1;
  while (step < totalSteps) {
    await yieldToEventLoop();
    if (o.signal?.aborted) {
      checkpoint();
      emit({ type: "cancelled", step, adapterDir: o.outDir });
      return { status: "cancelled", step, adapter, trainableParams: target.parameterCount, adapterDir: o.outDir, loss: lastLoss, validationLoss, monitorSeconds };
    }
    const epoch = Math.floor(step / stepsPerEpoch);
    if (epoch !== orderEpoch) [order, orderEpoch] = [epochOrder(trainSet.length, o.seed, epoch), epoch];
    const idx = step % stepsPerEpoch;
    const batch = order.slice(idx * o.batchSize, (idx + 1) * o.batchSize).map((i) => trainSet[i]);

    const stepStart = performance.now();
    const tokens = targetTokens(batch);
    const grads = new Map<string, Float32Array>();
    let lossSum = 0;
    let seen = 0;
    const accumulate = (r: LossAndGrads) => {
      for (const [n, g] of r.grads) {
        const acc = grads.get(n);
        if (acc) for (let i = 0; i < g.length; i++) acc[i] += g[i];
        else grads.set(n, g);
      }
    };
    for (const part of chunk(batch, o.microBatch)) {
      const r = await rt.lossAndGrads(makeBatch(part, pad, images), 1 / tokens);
      lossSum += r.lossSum;
      accumulate(r);
      seen += part.reduce((a, e) => a + e.ids.length - 1, 0);
    }
    if (replay) accumulate(await replay.lossAndGrads(step));
    const gradNorm = clipGlobalNorm(grads.values(), o.gradClip);
    const lr = learningRate(step + 1, totalSteps, peakLr, warmup);
    opt.update(params, grads, lr, target.decay);
    target.upload();
    step++;
    lastLoss = lossSum / tokens;
    check(Number.isFinite(lastLoss), `training diverged at step ${step} (loss ${lastLoss}); lower --lr`);

    const now = performance.now();
    const perStep = (now - runStart) / (step - startStep);
    emit({
      type: "step",
      step,
      totalSteps,
      epoch: step / stepsPerEpoch,
      loss: lastLoss,
      learningRate: lr,
      gradNorm,
      tokensPerSecond: seen / ((now - stepStart) / 1000),
      elapsedSeconds: (now - t0) / 1000,
      etaSeconds: ((totalSteps - step) * perStep) / 1000,
      gates: target.gates(),
    });
    const atCheckpoint = o.checkpointEvery > 0 && step % o.checkpointEvery === 0 && step < totalSteps;
    if ((o.evalEvery > 0 ? step % o.evalEvery === 0 : atCheckpoint) && step < totalSteps) validationLoss = await validate();
    if (atCheckpoint) checkpoint();
  }
  validationLoss = await validate();
  if (monitor && !validation.length) lastRetention = await timed(() => monitor.measure());
  checkpoint();
  const verdict = learningVerdict(stepLosses(metrics), rt.config.vocabSize);
  emit({
    type: "done",
    step,
    loss: lastLoss,
    validationLoss,
    elapsedSeconds: (performance.now() - t0) / 1000,
    adapterDir: o.outDir,
    verdict,
    ...(lastRetention ? { retention: lastRetention, monitorSeconds } : {}),
  });
  return { status: "done", step, adapter, trainableParams: target.parameterCount, adapterDir: o.outDir, loss: lastLoss, validationLoss, verdict, retention: lastRetention, monitorSeconds };
}

/** A run's examples: dataset file -> records -> token ids and loss masks -> training and validation sets. */
export interface RunData {
  records: DatasetRecord[];
  examples: Example[];
  trainSet: Example[];
  validation: Example[];
  truncated: Example[];
  /** Tokens per example: --max-length, at most the model's context. */
  maxLength: number;
  /** The prompt template the records use, recorded in the adapter. */
  template: string;
}

export function readRunData(o: Pick<TrainOptions, "dataFile" | "maxLength" | "validationShare" | "seed">, config: ModelConfig, tok: TextTokenizer): RunData {
  const records = readDataset(o.dataFile);
  const maxLength = Math.min(o.maxLength, config.maxPositions);
  const examples = records.map((r) => encodeRecord(r, tok, maxLength, o.dataFile, config.vocabSize));
  const { train: trainSet, validation } = splitTrainValidation(examples, o.validationShare, o.seed);
  const template = { alpaca: "alpaca", chat: "chat", text: "none" }[records[0].kind];
  return { records, examples, trainSet, validation, truncated: examples.filter((e) => e.truncated), maxLength, template };
}

/** Steps, the peak learning rate and the warmup of a run over `trainExamples` examples. */
export function stepPlan(trainExamples: number, o: Pick<TrainOptions, "batchSize" | "epochs" | "maxSteps" | "learningRate" | "warmupShare">) {
  const stepsPerEpoch = Math.ceil(trainExamples / o.batchSize);
  const totalSteps = Math.min(o.maxSteps ?? Infinity, o.epochs * stepsPerEpoch);
  const peakLr = o.learningRate ?? defaultLearningRate(o.batchSize);
  return { stepsPerEpoch, totalSteps, peakLr, warmup: defaultWarmupSteps(totalSteps, o.warmupShare) };
}

/** The order of training examples in an epoch: a function of (seed, epoch) alone, so a resume needs no RNG state. */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  return new Rng(seed * 1_000_003 + epoch + 1).shuffle(Array.from({ length: n }, (_, i) => i));
}

/** The loss of every step in metrics.jsonl: a resumed run's earlier segments count too. */
function stepLosses(metrics: string): number[] {
  return fs
    .readFileSync(metrics, "utf8")
    .split("\n")
    .filter((l) => l.includes('"type":"step"'))
    .map((l) => (JSON.parse(l) as { loss: number }).loss);
}

export function padId(tok: TextTokenizer): number {
  return tok.padId ?? tok.eosIds[0] ?? 0;
}

/** What must be equal for a checkpoint to be resumable by this run. */
export function runFingerprint(o: Pick<TrainOptions, "method" | "seed" | "batchSize" | "learningRate" | "validationShare">, examples: Example[], a: Adapter, totalSteps: number, retain: RetainSpec, retainWeight: number): string {
  const h = crypto.createHash("sha256");
  for (const e of examples) {
    h.update(Int32Array.from(e.ids)).update(e.lossMask);
    if (e.image) h.update(`image:${e.image}`); // only pictured examples: text runs keep their old fingerprints
  }
  const shape = a instanceof LoraAdapter ? [`lora-r${a.config.r}`, `alpha${a.config.alpha}`, a.config.targets.join("+")] : [a.config.numPrompts, a.config.rank];
  const knobs = [o.method ?? "excitor", o.seed, o.batchSize, totalSteps, o.learningRate ?? "", o.validationShare, ...shape, a.config.layers.join("-")];
  // Appended only when not the default, so that runs checkpointed before these options existed stay resumable.
  if (retainLabel(retain) !== retainLabel(RETAIN_DEFAULT)) knobs.push(`retain-${retainLabel(retain)}`);
  if (retainWeight > 0) knobs.push(`retain-weight-${retainWeight}`);
  return `${knobs.join("/")}/data-${h.digest("hex").slice(0, 16)}`;
}

/** The adapter's vision block: the encoder folder as seen from the adapter folder, so the pair can move together. */
function visionBlock(v: NonNullable<TrainOptions["vision"]>, outDir: string): VisionBlock {
  const rel = path.relative(path.resolve(outDir), path.resolve(v.dir)).split(path.sep).join("/");
  return { encoder: rel === "" ? "." : rel, featureLayer: v.featureLayer, numTokens: v.encoder.numTokens, hiddenSize: v.encoder.hiddenSize };
}

function validateOptions(o: TrainOptions, rt: ModelRuntime): void {
  checkTrainRanges(o); // the CLI's ranges, for callers that are not the CLI
  checkModelRanges(o, rt.config);
  checkMethodOptions(o);
  for (const l of o.layers ?? [])
    check(Number.isInteger(l) && l >= 0 && l < rt.config.numLayers, `--layers: layer ${l} does not exist (the model has layers 0..${rt.config.numLayers - 1})`);
}

/** Options that belong to another method than the run's are an error, not silently ignored. */
export function checkMethodOptions(o: Pick<TrainOptions, "method" | "numPrompts" | "rank" | "loraR" | "loraAlpha" | "loraTargets" | "layers">): void {
  const method = o.method ?? "excitor";
  const misfit = (given: unknown, flag: string, forMethod: string) =>
    check(given === undefined, `${flag} is an option of --method ${forMethod}, not of --method ${method}`);
  if (method !== "excitor") {
    misfit(o.numPrompts, "--prompts", "excitor");
    misfit(o.rank, "--rank", "excitor");
  }
  if (method !== "lora") {
    misfit(o.loraR, "--lora-r", "lora");
    misfit(o.loraAlpha, "--lora-alpha", "lora");
    misfit(o.loraTargets, "--lora-targets", "lora");
  }
  if (method === "full") check(o.layers === undefined, "--layers picks the adapted layers of --method excitor or lora; --method full trains every layer");
}
