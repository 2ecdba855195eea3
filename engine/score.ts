/** Log-probabilities of a token sequence and perplexity of a text, in windows the model's context allows. */
import type { ImageFeatures, ModelRuntime } from "./runtime";

export interface ScoreResult {
  ids: number[];
  /** logprobs[i] = log p(ids[i+1] | ids[0..i]). */
  logprobs: number[];
  /** exp(−mean logprob). */
  perplexity: number;
}

/**
 * Texts longer than the context are scored in consecutive windows of `window` tokens, each
 * conditioned only on itself (the simple, reproducible choice; a stride would cost more passes).
 */
export async function scoreIds(rt: ModelRuntime, ids: number[], useAdapter: boolean, window = rt.config.maxPositions, image?: ImageFeatures): Promise<ScoreResult> {
  const logprobs: number[] = [];
  for (let start = 0; start + 1 < ids.length; start += window - 1) {
    const part = ids.slice(start, start + window);
    // A loop, not push(...): a window of a long-context model can pass the engine's argument limit.
    for (const lp of await rt.tokenLogprobs(part, useAdapter, image)) logprobs.push(lp);
  }
  const mean = logprobs.reduce((a, b) => a + b, 0) / Math.max(1, logprobs.length);
  return { ids, logprobs, perplexity: Math.exp(-mean) };
}
