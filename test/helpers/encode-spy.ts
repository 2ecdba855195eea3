/** Counts the text a tokenizer is asked to tokenize: the seam that shows a huge record is not tokenized whole. */
import type { TextTokenizer } from "../../engine/tokenizer/tokenizer";

/** Wraps `tok.encode` on this instance; `chars()` is the total length of the texts passed since. */
export function spyOnEncode(tok: TextTokenizer): { chars: () => number; restore: () => void } {
  const original = tok.encode;
  let chars = 0;
  tok.encode = function (text, opts) {
    chars += text.length;
    return original.call(this, text, opts);
  };
  return { chars: () => chars, restore: () => void (tok.encode = original) };
}
