/**
 * A training run: dataset file -> records -> examples -> batches -> steps -> events and
 * checkpoints -> adapter folder. Deterministic: the same seed, data and machine give the same
 * adapter, and a run resumed from a checkpoint ends exactly where an uninterrupted one would,
 * because each epoch's order is a function of (seed, epoch) and checkpoints hold all state.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { readDataset } from "../data/datasets";
import { encodeRecord, splitTrainValidation, type Example } from "../data/encode";
import { ExcitorInputError, check } from "../errors";
import { ExcitorAdapter } from "../excitor/adapter";
import { countBaseParameters } from "../model/config";
import { Rng } from "../rng";
import type { ModelRuntime } from "../runtime";
import type { TextTokenizer } from "../tokenizer/tokenizer";
import { yieldToEventLoop } from "../event-loop";
import { chunk, makeBatch, targetTokens } from "./batches";
import { hasTrainerState, loadTrainerState, saveTrainerState } from "./checkpoint";
import type { TrainEvent } from "./events";
import { ADAMW_DEFAULTS, AdamW, clipGlobalNorm } from "./optimizer";
import { excitorTarget, fullTarget } from "./targets";
import { defaultLearningRate, defaultWarmupSteps, learningRate } from "./schedule";
import { learningVerdict, type LearningVerdict } from "./verdict";

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
   * "excitor" (default) tunes an adapter; "full" trains every base weight and writes a model
   * folder (how the built-in demo model is pretrained).
   */
  mode?: "excitor" | "full";
  /** Base model folder, recorded in adapter_config.json. */
  baseModel: string;
  signal?: AbortSignal;
  onEvent?: (e: TrainEvent) => void;
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
  /** The trained adapter (in full training, an unused one: the model folder is the result). */
  adapter: ExcitorAdapter;
  adapterDir: string;
  loss: number;
  validationLoss?: number;
  /** Whether the loss fell (done runs of 4 steps or more, Excitor mode). */
  verdict?: LearningVerdict;
}

export async function train(rt: ModelRuntime, tok: TextTokenizer, o: TrainOptions): Promise<TrainResult> {
  validateOptions(o, rt);
  const t0 = performance.now();
  const metrics = path.join(o.outDir, METRICS_FILE);
  const emit = (e: TrainEvent) => {
    fs.appendFileSync(metrics, JSON.stringify({ time: new Date().toISOString(), ...e }) + "\n");
    o.onEvent?.(e);
  };

  // dataset file -> examples
  const records = readDataset(o.dataFile);
  const maxLength = Math.min(o.maxLength, rt.config.maxPositions);
  const examples = records.map((r) => encodeRecord(r, tok, maxLength, o.dataFile));
  const { train: trainSet, validation } = splitTrainValidation(examples, o.validationShare, o.seed);
  const truncated = examples.filter((e) => e.truncated);

  const small = countBaseParameters(rt.config) < 100e6;
  const adapter = ExcitorAdapter.create(rt.config, {
    numPrompts: o.numPrompts ?? (small ? 10 : 30),
    rank: o.rank ?? (small ? 8 : 16),
    layers: o.layers,
    seed: o.seed,
    baseModel: o.baseModel,
    extra: { template: { alpaca: "alpaca", chat: "chat", text: "none" }[records[0].kind] },
  });
  const stepsPerEpoch = Math.ceil(trainSet.length / o.batchSize);
  const totalSteps = Math.min(o.maxSteps ?? Infinity, o.epochs * stepsPerEpoch);
  const peakLr = o.learningRate ?? defaultLearningRate(o.batchSize);
  const warmup = defaultWarmupSteps(totalSteps, o.warmupShare);
  const opt = new AdamW({ ...ADAMW_DEFAULTS, weightDecay: o.weightDecay });
  const full = o.mode === "full";
  const fingerprint = runFingerprint(o, examples, adapter, totalSteps);

  if (!o.resume && hasTrainerState(o.outDir))
    throw new ExcitorInputError(`${o.outDir}: already holds a training checkpoint; pass --resume to continue it, or choose a new --out folder`, o.outDir);
  const target = full ? fullTarget(rt, o.baseModel) : excitorTarget(rt, adapter);
  fs.mkdirSync(o.outDir, { recursive: true });
  let step = 0;
  if (o.resume) {
    step = loadTrainerState(o.outDir, target.tensors, opt, fingerprint);
    target.upload();
  } else fs.rmSync(metrics, { force: true });
  const params = new Map(Object.entries(target.tensors).map(([n, t]) => [n, t.data]));
  emit({
    type: "start",
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
  });
  if (truncated.length)
    emit({ type: "log", level: "warn", message: `${truncated.length} example(s) longer than ${maxLength} tokens were truncated (first: ${o.dataFile}:${truncated[0].line})` });

  const validate = async (): Promise<number | undefined> => {
    if (!validation.length) return undefined;
    let sum = 0;
    let n = 0;
    for (const part of chunk(validation, o.microBatch)) {
      const r = await rt.evalLoss(makeBatch(part, padId(tok)), true);
      sum += r.lossSum;
      n += r.tokens;
    }
    const loss = sum / n;
    emit({ type: "validation", step, loss });
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
      return { status: "cancelled", step, adapter, adapterDir: o.outDir, loss: lastLoss, validationLoss };
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
    for (const part of chunk(batch, o.microBatch)) {
      const r = await rt.lossAndGrads(makeBatch(part, padId(tok)), 1 / tokens);
      lossSum += r.lossSum;
      for (const [n, g] of r.grads) {
        const acc = grads.get(n);
        if (acc) for (let i = 0; i < g.length; i++) acc[i] += g[i];
        else grads.set(n, g);
      }
      seen += part.reduce((a, e) => a + e.ids.length - 1, 0);
    }
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
  checkpoint();
  const verdict = full ? undefined : learningVerdict(stepLosses(metrics), rt.config.vocabSize);
  emit({ type: "done", step, loss: lastLoss, validationLoss, elapsedSeconds: (performance.now() - t0) / 1000, adapterDir: o.outDir, verdict });
  return { status: "done", step, adapter, adapterDir: o.outDir, loss: lastLoss, validationLoss, verdict };
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

function padId(tok: TextTokenizer): number {
  return tok.padId ?? tok.eosIds[0] ?? 0;
}

/** What must be equal for a checkpoint to be resumable by this run. */
function runFingerprint(o: TrainOptions, examples: Example[], a: ExcitorAdapter, totalSteps: number): string {
  const h = crypto.createHash("sha256");
  for (const e of examples) h.update(Int32Array.from(e.ids)).update(e.lossMask);
  const knobs = [o.mode ?? "excitor", o.seed, o.batchSize, totalSteps, o.learningRate ?? "", o.validationShare, a.config.numPrompts, a.config.rank, a.config.layers.join("-")];
  return `${knobs.join("/")}/data-${h.digest("hex").slice(0, 16)}`;
}

function validateOptions(o: TrainOptions, rt: ModelRuntime): void {
  const posInt = (v: number | undefined, name: string) =>
    check(v === undefined || (Number.isInteger(v) && v > 0), `--${name} must be a positive integer (got ${v})`);
  posInt(o.epochs, "epochs");
  posInt(o.batchSize, "batch-size");
  posInt(o.microBatch, "micro-batch");
  posInt(o.maxSteps, "max-steps");
  posInt(o.numPrompts, "prompts");
  posInt(o.rank, "rank");
  posInt(o.maxLength, "max-length");
  check(o.learningRate === undefined || o.learningRate > 0, `--lr must be positive (got ${o.learningRate})`);
  check(Number.isInteger(o.checkpointEvery) && o.checkpointEvery >= 0, `--checkpoint-every must be a whole number (got ${o.checkpointEvery})`);
  for (const l of o.layers ?? [])
    check(Number.isInteger(l) && l >= 0 && l < rt.config.numLayers, `--layers: layer ${l} does not exist (the model has layers 0..${rt.config.numLayers - 1})`);
}
