/** Full-training gradients against central finite differences, on the coordinate of largest gradient of each named weight. */
import * as assert from "node:assert/strict";
import { makeBatch } from "../../engine/train/batches";
import type { Adapter } from "../../engine/adapters";
import type { ModelRuntime, TrainBatch } from "../../engine/runtime";

/**
 * Calls beginFullTraining on `rt`, takes the gradients of one short example, and checks them
 * against (loss(w + ε) − loss(w − ε)) / 2ε for each of `names`. `useAdapter`: which weights the
 * loss reads after setBaseWeights (the trained copy on an engine that keeps the base).
 */
export async function checkFullGradients(rt: ModelRuntime, names: string[], useAdapter: boolean, label: string): Promise<void> {
  const weights = rt.beginFullTraining();
  const ex = [1, 40, 51, 62, 73, 40, 2];
  const batch = makeBatch([{ ids: ex, lossMask: Uint8Array.from(ex.map((_, i) => (i > 0 ? 1 : 0))), truncated: false, line: 1 }], 0);
  const { grads } = await rt.lossAndGrads(batch, 1);
  const values = new Map([...weights].map(([n, t]) => [n, t.data]));
  for (const name of names) {
    const g = grads.get(name)!;
    assert.equal(g.length, weights.get(name)!.data.length, `${name}: gradient in the checkpoint's layout`);
    const i = Array.from(g.keys()).sort((a, b) => Math.abs(g[b]) - Math.abs(g[a]))[0];
    const fd = await centralDifference(values.get(name)!, i, () => rt.setBaseWeights(values), async () => (await rt.evalLoss(batch, useAdapter)).lossSum);
    assert.ok(Math.abs(fd - g[i]) <= 0.03 * Math.abs(g[i]) + 2e-3, `${name}[${i}]: ${label} ${g[i]} vs finite difference ${fd}`);
  }
}

/**
 * (loss(θ_i + ε) − loss(θ_i − ε)) / 2ε for entry i of one of an adapter's tensors, uploading the
 * adapter around each evaluation; the entry is restored (and uploaded) afterwards.
 */
export function adapterFiniteDifference(rt: ModelRuntime, adapter: Adapter, batch: TrainBatch, data: Float32Array, i: number): Promise<number> {
  return centralDifference(data, i, () => rt.setAdapter(adapter), async () => (await rt.evalLoss(batch, true)).lossSum);
}

/** (loss(x_i + ε) − loss(x_i − ε)) / 2ε, uploading `data` before each loss; x_i is restored and uploaded after. */
async function centralDifference(data: Float32Array, i: number, upload: () => void, loss: () => Promise<number>, eps = 1e-2): Promise<number> {
  const orig = data[i];
  const at = async (v: number) => {
    data[i] = v;
    upload();
    return loss();
  };
  const fd = ((await at(orig + eps)) - (await at(orig - eps))) / (2 * eps);
  data[i] = orig;
  upload();
  return fd;
}
