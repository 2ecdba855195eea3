/**
 * The quantized section of `npm run bench` (`--only quantized` alone): on TinyLlama-1.1B's shape
 * with random weights, written as Q8_0 and Q4_0 GGUF files by the project's writer,
 * - peak RSS to train (the spec's Excitor adapter, batch 1 × seq 256) and to chat (greedy
 *   decoding) with frozen weights held as f32, q8 and q4, and training tokens/s at each;
 * - greedy decode tokens/s of the engine (weights as stored in the file) against llama.cpp
 *   (node-llama-cpp's prebuilt CPU binary) on the same file, with the same threads.
 * Every measurement runs in a process of its own, one at a time, so each peak is its own.
 */
import * as os from "node:os";
import * as path from "node:path";
import { runLlamaCpp } from "./llama-cpp";
import { quantizedMarkdown, PRECISION_RUN, PRECISIONS, type Precision, type QuantFile, type QuantMeasures } from "./quantized-table";
import { randomGguf } from "./random-gguf";
import { CONFIGS, type WorkerResult, type WorkerSpec } from "./spec";
import { runWorker } from "./worker-run";

const repo = path.resolve(__dirname, "../..");
const BASE = CONFIGS.find((c) => c.shape.name === "tinyllama-1.1b")!;

/** TinyLlama-1.1B's shape, its spec's training workload. */
export const QUANT_SHAPE = BASE.shape;
const TRAIN: WorkerSpec = { ...BASE.spec, genRuns: 0 };
/** Chat: the base model's greedy decoding, as llama.cpp runs the file; 32 tokens after a 16-token prompt. */
const CHAT: WorkerSpec = { ...BASE.spec, trainSteps: 0, genPrompt: 16, genTokens: 32, genRuns: 3, genBase: true };

export function runQuantized(log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): QuantMeasures {
  const threads = os.availableParallelism();
  const files: Record<QuantFile, string> = { Q8_0: randomGguf(QUANT_SHAPE, "Q8_0", undefined, log), Q4_0: randomGguf(QUANT_SHAPE, "Q4_0", undefined, log) };
  const worker = path.join(repo, "dist", "bench", "engine-worker.js");
  const engine = (p: Precision, spec: WorkerSpec, what: string): WorkerResult => {
    log(`quantized: excitor onnxruntime, ${what} at ${p}...`);
    const run = PRECISION_RUN[p];
    return runWorker(process.execPath, [worker, files[run.file], "ort", JSON.stringify({ ...spec, weights: run.weights })], { EXCITOR_THREADS: String(threads) });
  };
  const train = {} as Record<Precision, WorkerResult>;
  const chat = {} as Record<Precision, WorkerResult>;
  for (const p of PRECISIONS) train[p] = engine(p, TRAIN, "training");
  for (const p of PRECISIONS) chat[p] = engine(p, CHAT, "decoding");
  // llama.cpp decodes the engine's prompt length and token count; the ids themselves do not change its speed.
  const spec = { threads, prompt: Array.from({ length: CHAT.genPrompt }, (_, i) => 300 + 97 * i), genTokens: CHAT.genTokens, runs: CHAT.genRuns };
  const llamaCpp = {} as QuantMeasures["llamaCpp"];
  for (const f of ["Q8_0", "Q4_0"] as QuantFile[]) {
    log(`quantized: llama.cpp, decoding ${f}...`);
    llamaCpp[f] = runLlamaCpp(files[f], spec);
  }
  return { threads, train, chat, llamaCpp };
}

/** Runs the section and returns its Markdown, headed. */
export function quantizedSection(): { md: string; measures: QuantMeasures } {
  const load = () => os.loadavg()[0].toFixed(1);
  const before = load();
  const m = runQuantized();
  const s = QUANT_SHAPE;
  const head =
    `Quantized weights — ${s.name} shape (dim ${s.hidden}, ${s.layers} layers, ${s.heads}/${s.kvHeads} heads, MLP ${s.intermediate}, vocab ${s.vocab}), random weights; ` +
    `training batch ${TRAIN.batch} × seq ${TRAIN.seq}, K ${TRAIN.numPrompts}, r ${TRAIN.rank}, ${TRAIN.adapted.length} layers, median of ${TRAIN.trainSteps} steps; ` +
    `decoding ${CHAT.genTokens} tokens after ${CHAT.genPrompt}, median of ${CHAT.genRuns} runs; ${m.threads} threads for both engines; ` +
    `load average (1 min) ${before} before, ${load()} after, on ${os.cpus().length} cores`;
  return { md: `${head}\n\n${quantizedMarkdown(m)}`, measures: m };
}
