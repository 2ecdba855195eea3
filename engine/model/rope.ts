/** Rotary position embedding tables (rotate-half convention, as Hugging Face LLaMA). */
import type { ModelConfig } from "./config";

/** inv_freq[i] = theta^(-2i/d) for i < d/2, with linear or llama3 scaling applied. */
export function ropeInverseFrequencies(c: ModelConfig): Float64Array {
  const half = c.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(c.ropeTheta, (2 * i) / c.headDim);
  const s = c.ropeScaling;
  if (s?.type === "linear") for (let i = 0; i < half; i++) inv[i] /= s.factor;
  if (s?.type === "factors") for (let i = 0; i < half; i++) inv[i] /= s.factors[i];
  if (s?.type === "llama3") {
    // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, a smooth blend between.
    const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositions / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen > lowWavelen) inv[i] /= s.factor;
      else if (wavelen >= highWavelen) {
        const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = (1 - smooth) * (inv[i] / s.factor) + smooth * inv[i];
      }
    }
  }
  return inv;
}

/** cos and sin for positions [start, start+count), each [count, d] with the half repeated. */
export function ropeTables(c: ModelConfig, start: number, count: number): { cos: Float32Array; sin: Float32Array } {
  const inv = ropeInverseFrequencies(c);
  const d = c.headDim;
  const half = d / 2;
  const cos = new Float32Array(count * d);
  const sin = new Float32Array(count * d);
  for (let t = 0; t < count; t++) {
    for (let i = 0; i < half; i++) {
      const a = (start + t) * inv[i];
      const ca = Math.cos(a);
      const sa = Math.sin(a);
      cos[t * d + i] = cos[t * d + i + half] = ca;
      sin[t * d + i] = sin[t * d + i + half] = sa;
    }
  }
  return { cos, sin };
}
