/**
 * What a tuned model is judged on, for any Alpaca data: greedy answers to held-out
 * instructions (exact match), perplexity of the expected answers, and perplexity of plain text
 * the base model knows (its domain). `useAdapter` false asks the base model.
 */
import { alpacaPrompt } from "../data/templates";
import { encodeRecord } from "../data/encode";
import { generate } from "../generate/generate";
import type { ModelRuntime } from "../runtime";
import { scoreIds } from "../score";
import type { TextTokenizer } from "../tokenizer/tokenizer";
import type { AlpacaTriple } from "../analysis/instruction-attention";

/** Case, surrounding space and runs of space do not count; everything else must match. */
export const normalizeAnswer = (s: string): string => s.trim().replace(/\s+/g, " ").toLowerCase();

/**
 * Share of records whose greedy answer, up to the first newline or EOS, is the expected output
 * (normalized). The budget is the expected answer's length plus 8 tokens, enough to show a
 * model that does not stop.
 */
export async function exactMatch(rt: ModelRuntime, tok: TextTokenizer, records: AlpacaTriple[], useAdapter: boolean): Promise<number> {
  let hits = 0;
  for (const r of records) {
    const ids = tok.encode(alpacaPrompt(r.instruction, r.input));
    const budget = tok.encode(r.output, { bos: false, eos: false }).length + 8;
    const out = await generate(rt, tok, ids, { maxTokens: budget, temperature: 0, repetitionPenalty: 1, stop: ["\n"], useAdapter });
    if (normalizeAnswer(out.text) === normalizeAnswer(r.output)) hits++;
  }
  return hits / Math.max(1, records.length);
}

/**
 * Perplexity of the expected answers (response tokens and EOS, masked exactly as training scores
 * them) given their prompts: how close the model is to answering, even where greedy decoding
 * does not yet produce the answer exactly.
 */
export async function answerPerplexity(rt: ModelRuntime, tok: TextTokenizer, records: AlpacaTriple[], useAdapter: boolean): Promise<number> {
  let sum = 0;
  let n = 0;
  for (const r of records) {
    const ex = encodeRecord({ kind: "alpaca", ...r, line: 0 }, tok, rt.config.maxPositions, "held-out");
    const { logprobs } = await scoreIds(rt, ex.ids, useAdapter);
    logprobs.forEach((lp, i) => {
      if (ex.lossMask[i + 1]) {
        sum += lp;
        n++;
      }
    });
  }
  return Math.exp(-sum / n);
}

/** Token-level perplexity over all texts (BOS in front, EOS at the end, as in pretraining). */
export async function perplexity(rt: ModelRuntime, tok: TextTokenizer, texts: string[], useAdapter: boolean): Promise<number> {
  let sum = 0;
  let n = 0;
  for (const text of texts) {
    const { logprobs } = await scoreIds(rt, tok.encode(text, { eos: true }), useAdapter);
    for (const lp of logprobs) sum += lp;
    n += logprobs.length;
  }
  return Math.exp(-sum / n);
}
