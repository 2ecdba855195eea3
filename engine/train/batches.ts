/** Examples -> padded next-token batches for ModelRuntime.lossAndGrads. */
import type { Example } from "../data/encode";
import type { TrainBatch } from "../runtime";
import type { ImageTable } from "./images";

/**
 * Rows are right-padded to the longest example: with a causal mask, padding after the
 * last real token cannot change any real position, and its weight is 0.
 */
export function makeBatch(examples: readonly Example[], padId: number, images?: ImageTable): TrainBatch {
  const B = examples.length;
  const T = Math.max(...examples.map((e) => e.ids.length - 1));
  const ids = new Int32Array(B * T).fill(padId);
  const targets = new Int32Array(B * T).fill(padId);
  const weights = new Float32Array(B * T);
  examples.forEach((e, b) => {
    for (let t = 0; t + 1 < e.ids.length; t++) {
      ids[b * T + t] = e.ids[t];
      targets[b * T + t] = e.ids[t + 1];
      weights[b * T + t] = e.lossMask[t + 1];
    }
  });
  const image = images?.batch(examples);
  return { batch: B, seqLen: T, ids, targets, weights, ...(image ? { image } : {}) };
}

/** Target tokens in the examples (the loss is their mean). */
export function targetTokens(examples: readonly Example[]): number {
  let n = 0;
  for (const e of examples) for (let t = 1; t < e.lossMask.length; t++) n += e.lossMask[t];
  return n;
}

export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
