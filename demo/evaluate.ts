/** What the demo report measures: instruction accuracy by exact match, and perplexity on the base model's own domain. */
import { alpacaPrompt } from "../engine/data/templates";
import { encodeRecord } from "../engine/data/encode";
import { generate } from "../engine/generate/generate";
import type { ModelRuntime } from "../engine/runtime";
import { scoreIds } from "../engine/score";
import type { TextTokenizer } from "../engine/tokenizer/tokenizer";
import { isCorrect, mentionsAnswer, type DemoRecord } from "./scripts/instructions";

export interface Answer {
  record: DemoRecord;
  response: string;
  /** Exact match of the first sentence. */
  correct: boolean;
  /** The answer word is in the first sentence. */
  mentions: boolean;
}

/** Greedy answers to the held-out instructions; `useAdapter` false asks the base model. */
export async function answerAll(rt: ModelRuntime, tok: TextTokenizer, records: DemoRecord[], useAdapter: boolean): Promise<Answer[]> {
  const out: Answer[] = [];
  for (const record of records) {
    const ids = tok.encode(alpacaPrompt(record.instruction, record.input));
    const r = await generate(rt, tok, ids, { maxTokens: 16, temperature: 0, repetitionPenalty: 1, stop: ["\n"], useAdapter });
    out.push({ record, response: r.text.trim(), correct: isCorrect(r.text, record), mentions: mentionsAnswer(r.text, record) });
  }
  return out;
}

export function accuracy(answers: Answer[], key: "correct" | "mentions" = "correct"): number {
  return answers.filter((a) => a[key]).length / Math.max(1, answers.length);
}

/**
 * Perplexity of the expected answers (response tokens and EOS, as training scores them) given
 * their prompts: how much closer to the answers the model has moved, even where greedy
 * decoding does not yet produce them exactly.
 */
export async function answerPerplexity(rt: ModelRuntime, tok: TextTokenizer, records: DemoRecord[], useAdapter: boolean): Promise<number> {
  let sum = 0;
  let n = 0;
  for (const record of records) {
    const ex = encodeRecord({ kind: "alpaca", instruction: record.instruction, input: record.input, output: record.output, line: 0 }, tok, rt.config.maxPositions, "heldout");
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
