/**
 * `npm run bench`: training and generation throughput of the engine on a fixed tiny LLaMA
 * (random weights; dim 256, 4 layers, 8 heads / 4 kv heads, vocab 2048), Excitor on every layer
 * (K 10, r 8). Training: batch 4 × seq 128 = 512 tokens per optimizer step. Generation: 16-token
 * prompt, 64 new tokens, greedy, KV cache. Prints medians of several runs and the backend.
 */
import * as path from "node:path";
import { openModel, type BackendChoice } from "../engine/load";
import { ExcitorAdapter } from "../engine/excitor/adapter";
import { argmax } from "../engine/generate/sampler";
import { Rng } from "../engine/rng";
import type { ModelRuntime, TrainBatch } from "../engine/runtime";
import { tempDir, writeTinyModel } from "../test/helpers/tiny-model";

const CONFIG = { hidden: 256, layers: 4, heads: 8, kvHeads: 4, intermediate: 688, vocab: 2048, seed: 1, scale: 0.05 };
const B = 4;
const T = 128;
const TRAIN_RUNS = Number(process.env.BENCH_TRAIN_RUNS ?? 7);
const GEN_RUNS = Number(process.env.BENCH_GEN_RUNS ?? 5);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Training tokens/s of `rt`, one sample per step. */
async function trainThroughput(rt: ModelRuntime, adapter: ExcitorAdapter, batch: TrainBatch): Promise<number[]> {
  rt.prepareTraining(adapter);
  await rt.lossAndGrads(batch, 1); // warm-up: kernels compiled, memory allocated
  const out: number[] = [];
  for (let i = 0; i < TRAIN_RUNS; i++) {
    const t0 = performance.now();
    await rt.lossAndGrads(batch, 1);
    out.push((B * T) / ((performance.now() - t0) / 1000));
  }
  return out;
}

async function main(): Promise<void> {
  const backend = (process.argv[2] ?? "auto") as BackendChoice;
  const dir = writeTinyModel(path.join(tempDir("excitor-bench-"), "model"), CONFIG);
  const rng = new Rng(0);
  const ids = Int32Array.from({ length: B * T }, () => 3 + rng.int(CONFIG.vocab - 3));
  const targets = Int32Array.from({ length: B * T }, () => 3 + rng.int(CONFIG.vocab - 3));
  const weights = Float32Array.from({ length: B * T }, (_, i) => (i % T < 16 ? 0 : 1));
  const batch: TrainBatch = { batch: B, seqLen: T, ids, targets, weights };

  // Peer in the same run: the low-memory path (no W copies; tfjs's own transposed-matmul backward).
  const slow = await openModel(dir, { backend, forTraining: true, fastBackward: false });
  const adapter = ExcitorAdapter.create(slow.config, { numPrompts: 10, rank: 8, seed: 0 });
  adapter.layers.forEach((l) => l.gate.data.fill(0.1));
  const lowMemory = await trainThroughput(slow, adapter, batch);
  slow.dispose();
  const rt = await openModel(dir, { backend, forTraining: true });
  const train = await trainThroughput(rt, adapter, batch);

  const gen: number[] = [];
  const prompt = Array.from(ids.subarray(0, 16));
  for (let i = 0; i < GEN_RUNS + 1; i++) {
    const s = rt.startDecode(true);
    let logits = await s.feed(prompt);
    const t0 = performance.now();
    for (let n = 0; n < 64; n++) logits = await s.feed([argmax(logits)]);
    if (i > 0) gen.push(64 / ((performance.now() - t0) / 1000));
    s.dispose();
  }

  console.log(`backend: ${rt.backend} (${rt.backendNote})`);
  console.log(`model: dim ${CONFIG.hidden}, ${CONFIG.layers} layers, ${CONFIG.heads}/${CONFIG.kvHeads} heads, vocab ${CONFIG.vocab}; Excitor K 10, r 8 on all layers (${adapter.parameterCount} trainable)`);
  const range = (xs: number[]) => `[min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)}]`;
  console.log(`training   (batch ${B} x seq ${T}, forward + backward): median ${median(train).toFixed(0)} tokens/s over ${TRAIN_RUNS} steps ${range(train)}`);
  console.log(`  peer: --low-memory backward, same run: median ${median(lowMemory).toFixed(0)} tokens/s ${range(lowMemory)}; ratio ${(median(train) / median(lowMemory)).toFixed(2)}x`);
  console.log(`generation (greedy, KV cache, 64 tokens after a 16-token prompt): median ${median(gen).toFixed(1)} tokens/s over ${GEN_RUNS} runs [min ${Math.min(...gen).toFixed(1)}, max ${Math.max(...gen).toFixed(1)}]`);
  rt.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
