/** What the demo report measures: instruction accuracy by exact match, and perplexity on the base model's own domain. */
import { alpacaPrompt } from "../engine/data/templates";
import { encodeRecord } from "../engine/data/encode";
export { answerPerplexity, perplexity } from "../engine/compare/heldout";
import { generate } from "../engine/generate/generate";
import type { ModelRuntime } from "../engine/runtime";
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
 * Where the answers look: per layer, the attention that the answer position which must produce
 * the story word (the token just before it in the expected answer) puts on that word where it
 * stands in the story, mean over heads and records; in the base model and in the tuned model.
 * The paper's "self-adaptive allocation of additional attention to input instructions", made
 * concrete for this task.
 */
export async function answerWordAttention(rt: ModelRuntime, tok: TextTokenizer, records: DemoRecord[]): Promise<{ layer: number; base: number; tuned: number }[]> {
  const H = rt.config.numHeads;
  const sums: { layer: number; base: number; tuned: number }[] = [];
  let counted = 0;
  for (const record of records) {
    const ex = encodeRecord({ kind: "alpaca", instruction: record.instruction, input: record.input, output: record.output, line: 0 }, tok, rt.config.maxPositions, "heldout");
    const ids = Array.from(ex.ids);
    const start = ex.lossMask.indexOf(1);
    const isAnswer = (i: number) => tok.decode([ids[i]]).trim() === record.answer;
    const target = ids.findIndex((_, i) => i >= start && isAnswer(i));
    const keys = ids.map((_, i) => i).filter((i) => i < start && isAnswer(i));
    if (target < 0 || keys.length === 0) continue; // the answer word is split into several tokens
    const M = ids.length;
    const q = target - 1;
    // The base model's own pass, and the tuned model's (whose layer inputs differ too).
    const { base } = await rt.attentionProbs(ids, false);
    const { tuned } = await rt.attentionProbs(ids, true);
    const mass = (p: Float32Array) => {
      let m = 0;
      for (let h = 0; h < H; h++) for (const k of keys) m += p[(h * M + q) * M + k];
      return m / H;
    };
    base.forEach((b, l) => {
      sums[l] ??= { layer: l, base: 0, tuned: 0 };
      sums[l].base += mass(b);
      sums[l].tuned += mass(tuned[l]);
    });
    counted++;
  }
  return sums.map((s) => ({ layer: s.layer, base: s.base / Math.max(1, counted), tuned: s.tuned / Math.max(1, counted) }));
}
