/** Whether token ids fit a model's embedding table; a module of its own so that callers need not load the tokenizer library. */
import type { TextTokenizer } from "./tokenizer";

/**
 * What is wrong when ids do not fit a model of `vocabSize` tokens (undefined when they do): they
 * would read past its embedding table. With the tokenizer that made them the message names the
 * token, since the fault is then a tokenizer with more tokens than the model.
 */
export function idsOutsideVocabulary(ids: readonly number[], vocabSize: number, tok?: TextTokenizer): string | undefined {
  const bad = ids.find((id) => id < 0 || id >= vocabSize);
  if (bad === undefined) return undefined;
  const range = `the model's vocabulary (0..${vocabSize - 1}; vocab_size in config.json)`;
  return tok === undefined ? `id ${bad} is outside ${range}` : `the tokenizer gives token ${JSON.stringify(tok.idToToken(bad) ?? "")} the id ${bad}, outside ${range}`;
}
