/** Random training batches for the engine agreement tests. */
import { Rng } from "../../engine/rng";
import type { TrainBatch } from "../../engine/runtime";

/**
 * Two right-padded rows with prompt tokens masked, as the trainer makes them, and uneven weights;
 * with `soft`, random target distributions too.
 */
export function randomBatch(rng: Rng, V: number, soft = false): TrainBatch {
  const B = 2;
  const T = 9;
  const batch: TrainBatch = {
    batch: B,
    seqLen: T,
    ids: Int32Array.from({ length: B * T }, () => 3 + rng.int(V - 3)),
    targets: Int32Array.from({ length: B * T }, () => 3 + rng.int(V - 3)),
    weights: Float32Array.from({ length: B * T }, (_, i) => (i % T < 3 || i >= B * T - 2 ? 0 : i % 2 ? 1 : 0.5)),
  };
  if (soft) batch.soft = softRows(rng, B * T, V);
  return batch;
}

/** n random probability rows of length V (softmax of random logits), [n, V] row-major. */
export function softRows(rng: Rng, n: number, V: number): Float32Array {
  const out = new Float32Array(n * V);
  for (let i = 0; i < n; i++) {
    let z = 0;
    for (let v = 0; v < V; v++) z += out[i * V + v] = Math.exp(2 * rng.normal());
    for (let v = 0; v < V; v++) out[i * V + v] /= z;
  }
  return out;
}
