/**
 * One project engine on one model, in a process of its own so that its peak memory is its
 * own: `node dist/bench/engine-worker.js <model dir> <backend> '<json spec>'`. Measures
 * training steps as the trainer runs them (loss and gradients, AdamW, upload) and greedy
 * KV-cached generation, and prints one JSON line (the same fields as bench/peer_torch.py).
 */
import { openModel, type BackendChoice } from "../engine/load";
import { ExcitorAdapter } from "../engine/excitor/adapter";
import { argmax } from "../engine/generate/sampler";
import { Rng } from "../engine/rng";
import { weightedTokens, type TrainBatch } from "../engine/runtime";
import { AdamW, ADAMW_DEFAULTS } from "../engine/train/optimizer";
import { excitorTarget } from "../engine/train/targets";
import type { WorkerSpec, WorkerResult } from "./spec";

async function main(): Promise<void> {
  const [dir, backend, specJson] = process.argv.slice(2);
  const s = JSON.parse(specJson) as WorkerSpec;
  let rt;
  try {
    rt = await openModel(dir, { backend: backend as BackendChoice, forTraining: s.trainSteps > 0, weights: s.weights });
  } catch (e) {
    const out: WorkerResult = { backend, train: [], gen: [], peakRssBytes: process.resourceUsage().maxRSS * 1024, error: (e as Error).message };
    console.log(JSON.stringify(out));
    return;
  }
  const adapter = ExcitorAdapter.create(rt.config, { numPrompts: s.numPrompts, rank: s.rank, layers: s.adapted, seed: 0 });
  adapter.layers.forEach((l) => l.gate.data.fill(0.1)); // open gates: every Excitor tensor gets gradient, as in training

  const rng = new Rng(1);
  const V = rt.config.vocabSize;
  const { batch: B, seq: T } = s;
  const batch: TrainBatch = {
    batch: B,
    seqLen: T,
    ids: Int32Array.from({ length: B * T }, () => 3 + rng.int(V - 3)),
    targets: Int32Array.from({ length: B * T }, () => 3 + rng.int(V - 3)),
    weights: Float32Array.from({ length: B * T }, (_, i) => (i % T < 16 ? 0 : 1)),
  };
  const tokens = weightedTokens(batch);

  const train: number[] = [];
  if (s.trainSteps > 0) {
    // The trainer's own pieces (engine/train): the target, its parameters, AdamW, the upload.
    const target = excitorTarget(rt, adapter);
    const opt = new AdamW(ADAMW_DEFAULTS);
    const params = new Map(Object.entries(target.tensors).map(([n, t]) => [n, t.data]));
    const step = async () => {
      const { grads } = await rt.lossAndGrads(batch, 1 / tokens);
      opt.update(params, grads, 1e-3, target.decay);
      target.upload();
    };
    await step(); // warm-up: graphs compiled, memory allocated
    for (let i = 0; i < s.trainSteps; i++) {
      const t0 = performance.now();
      await step();
      train.push((B * T) / ((performance.now() - t0) / 1000));
    }
  } else rt.setAdapter(adapter);

  const gen: number[] = [];
  const prompt = Array.from(batch.ids.subarray(0, s.genPrompt));
  for (let run = 0; run <= s.genRuns && s.genRuns > 0; run++) {
    const d = rt.startDecode(!s.genBase);
    let logits = await d.feed(prompt);
    const t0 = performance.now();
    for (let n = 0; n < s.genTokens; n++) logits = await d.feed([argmax(logits)]);
    if (run > 0) gen.push(s.genTokens / ((performance.now() - t0) / 1000)); // run 0 warms up
    d.dispose();
  }
  const out: WorkerResult = { backend: rt.backend, note: rt.backendNote, train, gen, peakRssBytes: process.resourceUsage().maxRSS * 1024 };
  rt.dispose();
  console.log(JSON.stringify(out));
}

void main();
