/**
 * Sampling a set of texts from the model's own distribution, many rows in lockstep: one decode
 * step feeds every row, so a set of 64 texts costs 128 forward passes instead of 8,192. What
 * the retention monitor uses to make its sample of "what the base model knows".
 */
import type { ModelRuntime } from "../runtime";
import type { TextTokenizer } from "../tokenizer/tokenizer";
import { DEFAULT_SAMPLING, Sampler } from "./sampler";

export interface SampleSetOptions {
  /** How many texts. */
  count: number;
  /** Tokens per text at most (BOS not counted). */
  maxTokens: number;
  temperature: number;
  /** Text i is drawn with its own sampler seeded `seeds(i)`, so a text does not depend on the batch it was in. */
  seeds: (i: number) => number;
  useAdapter: boolean;
  /** Rows per lockstep batch (memory: one KV cache per row). */
  rows?: number;
  signal?: AbortSignal;
}

/**
 * Token ids of each sampled text after BOS, ending with EOS where the model ended it. Plain
 * ancestral sampling (no top-k, top-p or repetition penalty): the model's own distribution.
 */
export async function sampleSet(rt: ModelRuntime, tok: TextTokenizer, o: SampleSetOptions): Promise<number[][]> {
  if (tok.bosId === undefined) throw new Error("sampling from BOS needs a tokenizer with a BOS token");
  const eos = new Set(tok.eosIds);
  const V = rt.config.vocabSize;
  const budget = Math.min(o.maxTokens, rt.config.maxPositions - 1);
  const rows = Math.max(1, Math.min(o.rows ?? 16, o.count));
  const out: number[][] = [];
  for (let first = 0; first < o.count; first += rows) {
    const n = Math.min(rows, o.count - first);
    const samplers = Array.from({ length: n }, (_, r) => new Sampler({ ...DEFAULT_SAMPLING, temperature: o.temperature, topK: 0, topP: 1, repetitionPenalty: 1, seed: o.seeds(first + r) }));
    const texts: number[][] = Array.from({ length: n }, () => []);
    const done = new Array<boolean>(n).fill(false);
    const session = rt.startDecode(o.useAdapter, n);
    try {
      let logits = await session.feed(new Array<number>(n).fill(tok.bosId)); // [n, V]
      for (let t = 0; t < budget && done.includes(false); t++) {
        if (o.signal?.aborted) return out;
        const next: number[] = [];
        for (let r = 0; r < n; r++) {
          // A finished row keeps feeding EOS: its cache grows with the others', its picks are ignored.
          const id = done[r] ? tok.eosIds[0] ?? 0 : samplers[r].pick(logits.subarray(r * V, (r + 1) * V), []);
          if (!done[r]) {
            texts[r].push(id);
            if (eos.has(id)) done[r] = true;
          }
          next.push(id);
        }
        if (t + 1 < budget && done.includes(false)) logits = await session.feed(next);
      }
    } finally {
      session.dispose();
    }
    out.push(...texts);
  }
  return out;
}
