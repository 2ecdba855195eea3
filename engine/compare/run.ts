/**
 * `excitor compare`: the runs of plan.ts on one dataset, each trained by the same trainer the
 * product uses and judged on the same held-out set, domain text and retention set. One fresh
 * engine per run, so that no run sees another's weights (full fine-tuning changes them all).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { readDataset } from "../data/datasets";
import { defaultLayers, expectedShapes } from "../excitor/config";
import type { ModelConfig } from "../model/config";
import { openModel, type BackendChoice } from "../load";
import type { ModelRuntime } from "../runtime";
import { TextTokenizer } from "../tokenizer/tokenizer";
import type { TrainEvent } from "../train/events";
import { splitTrainValidation } from "../data/encode";
import { ExcitorInputError, check } from "../errors";
import { RETAIN_DEFAULT, baseSamples, readTexts } from "../train/retention";
import { TRAIN_DEFAULTS, train, type TrainOptions } from "../train/trainer";
import { instructionAttention, type AlpacaTriple, type LayerInstructionMass } from "../analysis/instruction-attention";
import { answerPerplexity, exactMatch, perplexity } from "./heldout";
import { comparePlan, type CompareRun } from "./plan";

export interface CompareOptions {
  modelDir: string;
  dataFile: string;
  /**
   * Alpaca records to judge answers on; without one, the data's validation split (the examples
   * every run holds out of training; the same split also picks each method's rate).
   */
  heldoutFile?: string;
  /**
   * Plain text the base model knows (JSONL `text` or .txt paragraphs), whose perplexity before and
   * after is the report's "story perplexity"; without one, 64 texts the base model writes itself
   * (another seed stream than the retention set's).
   */
  domainFile?: string;
  outDir: string;
  backend: BackendChoice;
  seed: number;
  /** The shared recipe: every run gets these epochs, batch and validation share. */
  epochs: number;
  batchSize: number;
  microBatch: number;
  /** Excitor's own settings (the demo's recipe). */
  excitor: { numPrompts: number; rank: number; layers?: number[] };
  /** --retain-weight for every method alike (the KL-to-base term works for all three); 0: off. */
  retainWeight: number;
  /** Held-out records whose attention is measured (a capture per record and model). */
  attentionRecords: number;
  signal?: AbortSignal;
  onEvent?: (e: CompareEvent) => void;
}

export type CompareEvent =
  | { type: "compare-start"; runs: number }
  | { type: "compare-run"; index: number; runs: number; method: string; config: string }
  | { type: "compare-train"; index: number; event: TrainEvent }
  | { type: "compare-done"; report: string };

export interface MethodResult {
  method: string;
  family: string;
  config: string;
  learningRate: number;
  /** The rate of its family with the lowest validation loss (the one the report's headline uses). */
  selected: boolean;
  exactMatch: number;
  answerPerplexity: number;
  storyPerplexity: { base: number; tuned: number };
  retentionKL: number;
  retentionPplRatio: number;
  validationLoss: number;
  trainableParameters: number;
  trainSeconds: number;
  steps: number;
  instructionAttention: LayerInstructionMass[];
}

export interface CompareResult {
  retainWeight: number;
  base: { exactMatch: number; answerPerplexity: number; storyPerplexity: number };
  methods: MethodResult[];
  steps: number;
  seed: number;
  heldout: number;
  domainTexts: number;
  /** Where the held-out answers and the domain text came from (files, or what stood in for them). */
  heldoutSource: string;
  domainSource: string;
}

export class CompareCancelled extends Error {}

/** The base samples standing in for domain text draw from their own stream (0 is the retention set's, 1 the replay set's). */
const DOMAIN_STREAM = 2;

export async function compareMethods(o: CompareOptions): Promise<CompareResult> {
  const tok = TextTokenizer.fromFolder(o.modelDir);
  const heldout = o.heldoutFile ? alpacaRecords(o.heldoutFile) : splitTrainValidation(alpacaRecords(o.dataFile), TRAIN_DEFAULTS.validationShare, o.seed).validation;
  check(heldout.length > 0, `${o.dataFile}: too few records to hold any out; pass --heldout FILE`, o.dataFile);
  const attentionSet = heldout.slice(0, o.attentionRecords);
  fs.mkdirSync(o.outDir, { recursive: true });

  // The base model once: its answers, its perplexities, and Excitor's size for the matched LoRA.
  const baseRt = await openModel(o.modelDir, { backend: o.backend });
  const domain = o.domainFile ? readTexts(o.domainFile, "--domain") : (await baseSamples(baseRt, tok, { seed: o.seed, stream: DOMAIN_STREAM })).map((s) => s.text);
  const base = {
    exactMatch: await exactMatch(baseRt, tok, heldout, false),
    answerPerplexity: await answerPerplexity(baseRt, tok, heldout, false),
    storyPerplexity: await perplexity(baseRt, tok, domain, false),
  };
  const model = baseRt.config;
  baseRt.dispose();

  const excitorConfig = `K ${o.excitor.numPrompts}, r ${o.excitor.rank}, layers ${o.excitor.layers?.join(",") ?? "all"}`;
  const plan = comparePlan(model, { config: excitorConfig, parameters: excitorParameterCount(model, o.excitor) });
  o.onEvent?.({ type: "compare-start", runs: plan.length });
  const methods: MethodResult[] = [];
  let retentionFile: string | undefined;
  for (const [index, run] of plan.entries()) {
    if (o.signal?.aborted) throw new CompareCancelled("compare stopped");
    o.onEvent?.({ type: "compare-run", index, runs: plan.length, method: run.method, config: run.config });
    const dir = path.join(o.outDir, "runs", `${String(index + 1).padStart(2, "0")}-${run.family}-${run.learningRate}`);
    fs.rmSync(dir, { recursive: true, force: true });
    const rt = await openModel(o.modelDir, { backend: o.backend, forTraining: true });
    try {
      const r = await trainOne(rt, tok, o, run, dir, retentionFile, (event) => o.onEvent?.({ type: "compare-train", index, event }));
      if (r.cancelled) throw new CompareCancelled("compare stopped");
      // Every run is monitored on the first run's retention set: the same base samples for all.
      retentionFile ??= path.join(dir, "retention.jsonl");
      methods.push({
        method: run.method,
        family: run.family,
        config: run.config,
        learningRate: run.learningRate,
        selected: false,
        exactMatch: await exactMatch(rt, tok, heldout, true),
        answerPerplexity: await answerPerplexity(rt, tok, heldout, true),
        storyPerplexity: { base: base.storyPerplexity, tuned: await perplexity(rt, tok, domain, true) },
        retentionKL: r.retention?.kl ?? NaN,
        retentionPplRatio: r.retention?.pplRatio ?? NaN,
        validationLoss: r.validationLoss ?? NaN,
        trainableParameters: r.trainable,
        trainSeconds: r.seconds,
        steps: r.steps,
        instructionAttention: await instructionAttention(rt, tok, attentionSet),
      });
    } finally {
      rt.dispose();
    }
  }
  for (const family of new Set(methods.map((m) => m.family))) {
    const runs = methods.filter((m) => m.family === family);
    const best = runs.reduce((a, b) => (b.validationLoss < a.validationLoss ? b : a));
    best.selected = true;
  }
  return { retainWeight: o.retainWeight, base, methods, steps: methods[0]?.steps ?? 0, seed: o.seed, heldout: heldout.length, domainTexts: domain.length, heldoutSource: o.heldoutFile ?? "the validation split", domainSource: o.domainFile ?? "the base model's own samples" };
}

interface TrainedRun {
  cancelled: boolean;
  retention?: { kl: number; pplRatio: number };
  validationLoss?: number;
  trainable: number;
  seconds: number;
  steps: number;
}

async function trainOne(rt: ModelRuntime, tok: TextTokenizer, o: CompareOptions, run: CompareRun, dir: string, retentionFile: string | undefined, onEvent: (e: TrainEvent) => void): Promise<TrainedRun> {
  let trainable = 0;
  let retention: TrainedRun["retention"];
  const options: TrainOptions = {
    ...TRAIN_DEFAULTS,
    dataFile: o.dataFile,
    outDir: dir,
    baseModel: o.modelDir,
    method: run.method,
    epochs: o.epochs,
    batchSize: o.batchSize,
    microBatch: o.microBatch,
    seed: o.seed,
    learningRate: run.learningRate,
    checkpointEvery: 0,
    retain: retentionFile ? { base: false, files: [retentionFile] } : RETAIN_DEFAULT,
    retainWeight: o.retainWeight,
    ...(run.method === "excitor" ? { numPrompts: o.excitor.numPrompts, rank: o.excitor.rank, layers: o.excitor.layers } : {}),
    ...(run.lora ? { loraR: run.lora.r, loraAlpha: run.lora.alpha, loraTargets: run.lora.targets } : {}),
    signal: o.signal,
    onEvent: (e) => {
      if (e.type === "start") trainable = e.trainableParams;
      if (e.type === "done") retention = e.retention;
      onEvent(e);
    },
  };
  const t0 = performance.now();
  const r = await train(rt, tok, options);
  return { cancelled: r.status === "cancelled", retention, validationLoss: r.validationLoss, trainable, seconds: (performance.now() - t0) / 1000, steps: r.step };
}

/** Trainable parameters of an Excitor adapter of these settings on this model (the spec's shapes). */
function excitorParameterCount(model: ModelConfig, e: CompareOptions["excitor"]): number {
  const config = { numPrompts: e.numPrompts, rank: e.rank, layers: e.layers ?? defaultLayers(model.numLayers), baseModel: "", extra: {} };
  const perLayer = Object.values(expectedShapes(model, config)).reduce((n, shape) => n + shape.reduce((a, b) => a * b, 1), 0);
  return perLayer * config.layers.length;
}

function alpacaRecords(file: string): AlpacaTriple[] {
  const records = readDataset(file);
  return records.map((r) => {
    if (r.kind !== "alpaca") throw new ExcitorInputError(`${file}:${r.line}: compare judges answers on Alpaca records (instruction, input, output); this one is ${r.kind}`, file, r.line);
    return { instruction: r.instruction, input: r.input, output: r.output };
  });
}
