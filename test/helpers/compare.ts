/** How far apart two arrays of numbers are: what the agreement tests bound. */
import * as assert from "node:assert/strict";

/** max |a[i] − b[i]|; the lengths must match. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** max |a − b| / max |b|: agreement relative to the reference's scale (gradients). */
export function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const scale = Math.max(...Array.from(b, Math.abs));
  assert.ok(scale > 0, "a reference that is all zeros proves nothing");
  return maxAbsDiff(a, b) / scale;
}
