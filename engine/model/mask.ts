/** The additive attention mask shared by every backend. */

/** What a masked score becomes: exp() of it is 0 in float32, and it never makes a NaN. */
export const MASKED = -1e9;

/** Additive mask [T, S], S = past + T: query t (at position past+t) sees keys 0..past+t, and at most `window` of them. */
export function causalMask(T: number, past: number, window?: number): Float32Array {
  const S = past + T;
  const m = new Float32Array(T * S);
  for (let t = 0; t < T; t++) {
    const pos = past + t;
    for (let s = 0; s < S; s++) if (s > pos || (window !== undefined && s <= pos - window)) m[t * S + s] = MASKED;
  }
  return m;
}
