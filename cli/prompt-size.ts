/**
 * What cannot fit the model's context, found without tokenizing. Tokenizing is the slow part of
 * a huge prompt (a 5 MB string takes seconds and the tokenizer may fail on it), and it runs
 * synchronously, so nothing else (a `stop`, say) is heard meanwhile. A token spells at most as
 * many characters as its longest vocabulary entry (byte-level pieces spell one UTF-8 byte per
 * character, byte fallback "<0x41>" one byte in six), so a text longer than maxPositions × that
 * cannot fit in maxPositions tokens: a bound that never rejects what would fit, checked in O(1).
 * (A normalizer that deletes or composes characters could shrink a text below the bound; a text
 * that long is not a prompt anyone means, so rejecting it is still the right answer.)
 */
import type { ChatMessage, TextTokenizer } from "../engine/tokenizer/tokenizer";

/** The most characters `maxPositions` tokens of `tok` can spell. */
export function maxPromptChars(tok: TextTokenizer, maxPositions: number): number {
  return maxPositions * tok.longestTokenChars;
}

/**
 * The conversation with its oldest exchanges dropped, after the first `keep` messages (the
 * system prompt), as `fitContext` drops them, until its text is within `maxChars`: only what
 * fitContext would drop anyway, without tokenizing it first. `counted` says whether a message's
 * text reaches the prompt (Alpaca has no system message); `extra` is other prompt text (Alpaca's
 * input). `overBy` instead when even the last message (with the kept ones) is over the bound:
 * the characters that remain.
 */
export function dropOverlong(
  history: ChatMessage[],
  maxChars: number,
  keep: number,
  counted: (m: ChatMessage) => boolean,
  extra = 0,
): { kept: ChatMessage[] } | { chars: number } {
  const size = (m: ChatMessage | undefined) => (m && counted(m) ? m.content.length : 0);
  let total = extra;
  for (const m of history) total += size(m);
  let start = keep;
  while (total > maxChars && history.length - start > 1) {
    total -= size(history[start]) + size(history[start + 1]);
    start += 2;
  }
  if (total > maxChars) return { chars: total };
  return { kept: start === keep ? history : [...history.slice(0, keep), ...history.slice(start)] };
}

/** The one-line reason a prompt of `chars` characters is rejected. */
export function overlongMessage(chars: number, maxChars: number, maxPositions: number): string {
  return `${chars} characters cannot fit the model's context of ${maxPositions} tokens (at most ${maxChars} characters)`;
}
