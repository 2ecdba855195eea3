/**
 * AdamW (decoupled weight decay, PyTorch's order of operations) and global-norm clipping on
 * host float32 arrays. Kept out of the tensor backend so that every backend trains alike and
 * the optimizer state is plain data to checkpoint.
 */
export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** The spec's defaults (LLaMA-Adapter's recipe). */
export const ADAMW_DEFAULTS: AdamWConfig = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.02 };

export interface ParamState {
  m: Float32Array;
  v: Float32Array;
}

export class AdamW {
  /** Optimizer steps taken (bias correction uses it). */
  step = 0;
  readonly state = new Map<string, ParamState>();

  constructor(readonly config: AdamWConfig) {}

  /**
   * One update of every parameter from its gradient. `decay(name)` says whether weight decay
   * applies (the spec exempts the gates).
   */
  update(params: Map<string, Float32Array>, grads: Map<string, Float32Array>, lr: number, decay: (name: string) => boolean): void {
    this.step++;
    const { beta1, beta2, eps, weightDecay } = this.config;
    const bc1 = 1 - Math.pow(beta1, this.step);
    const bc2 = 1 - Math.pow(beta2, this.step);
    for (const [name, p] of params) {
      const g = grads.get(name);
      if (!g) throw new Error(`AdamW: no gradient for ${name}`);
      let s = this.state.get(name);
      if (!s) this.state.set(name, (s = { m: new Float32Array(p.length), v: new Float32Array(p.length) }));
      const wd = decay(name) ? 1 - lr * weightDecay : 1;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i];
        s.m[i] = beta1 * s.m[i] + (1 - beta1) * gi;
        s.v[i] = beta2 * s.v[i] + (1 - beta2) * gi * gi;
        p[i] = p[i] * wd - (lr * (s.m[i] / bc1)) / (Math.sqrt(s.v[i] / bc2) + eps);
      }
    }
  }
}

/** Scales gradients in place so that their global L2 norm is at most maxNorm; returns the norm before. */
export function clipGlobalNorm(grads: Iterable<Float32Array>, maxNorm: number): number {
  const list = [...grads];
  let sq = 0;
  for (const g of list) for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
  const norm = Math.sqrt(sq);
  if (norm > maxNorm && maxNorm > 0) {
    const k = maxNorm / (norm + 1e-6);
    for (const g of list) for (let i = 0; i < g.length; i++) g[i] *= k;
  }
  return norm;
}
