/** Picks the next token from logits: repetition penalty, then greedy or temperature/top-k/top-p sampling. */
import { Rng } from "../rng";

export interface SamplingOptions {
  /** 0 means greedy (argmax). */
  temperature: number;
  /** Nucleus: keep the smallest set of tokens whose probability reaches topP (1 = off). */
  topP: number;
  /** Keep the topK most likely tokens (0 = off). */
  topK: number;
  /** CTRL-style penalty on tokens already in the context (1 = off). */
  repetitionPenalty: number;
  seed: number;
}

export const DEFAULT_SAMPLING: SamplingOptions = { temperature: 0.7, topP: 0.9, topK: 40, repetitionPenalty: 1.1, seed: 0 };

export class Sampler {
  private readonly rng: Rng;
  constructor(private readonly opts: SamplingOptions) {
    this.rng = new Rng(opts.seed);
  }

  /** `logits` [V] is modified in place; `context` holds the ids seen so far. */
  pick(logits: Float32Array, context: readonly number[]): number {
    const { temperature, topK, topP, repetitionPenalty } = this.opts;
    if (repetitionPenalty !== 1)
      for (const id of new Set(context)) {
        const l = logits[id];
        logits[id] = l > 0 ? l / repetitionPenalty : l * repetitionPenalty;
      }
    if (!(temperature > 0)) return argmax(logits);
    if (!(topK > 0 && topK < logits.length) && !(topP < 1)) return this.pickFromAll(logits, temperature);

    let order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]);
    if (topK > 0 && topK < order.length) order = order.slice(0, topK);
    const max = logits[order[0]];
    const probs = order.map((id) => Math.exp((logits[id] - max) / temperature));
    const total = probs.reduce((a, b) => a + b, 0);
    let keep = order.length;
    if (topP < 1) {
      let cum = 0;
      for (let i = 0; i < order.length; i++) {
        cum += probs[i] / total;
        if (cum >= topP) {
          keep = i + 1;
          break;
        }
      }
    }
    const kept = probs.slice(0, keep).reduce((a, b) => a + b, 0);
    let u = this.rng.next() * kept;
    for (let i = 0; i < keep; i++) {
      u -= probs[i];
      if (u < 0) return order[i];
    }
    return order[keep - 1];
  }

  /** Plain sampling at a temperature from the whole vocabulary: no ordering needed (as the base model's retention samples draw). */
  private pickFromAll(logits: Float32Array, temperature: number): number {
    let max = -Infinity;
    for (const l of logits) if (l > max) max = l;
    let total = 0;
    for (const l of logits) total += Math.exp((l - max) / temperature);
    let u = this.rng.next() * total;
    for (let id = 0; id < logits.length; id++) {
      u -= Math.exp((logits[id] - max) / temperature);
      if (u < 0) return id;
    }
    return argmax(logits);
  }
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}
