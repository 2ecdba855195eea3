/**
 * Where a long text may be cut so that tokenizing the part before the cut gives exactly the first
 * ids of tokenizing the whole text. Training keeps at most max-length tokens of a record, and
 * tokenizing a 5 MB record whole takes half a minute and gigabytes (a Llama 2 tokenizer.json has
 * no pre-tokenizer, so BPE runs over the record as one piece).
 *
 * A cut goes just before a space (U+0020) that follows a character which is neither whitespace
 * nor one of the tokenizers' own space and newline symbols. It is exact when (checked once per
 * tokenizer by `canCutPrefixes`):
 * - the model is BPE: BPE only merges neighbouring symbols into vocabulary tokens, picking merges
 *   by rank and then by position. While no token and no merge spans the cut (no token has a
 *   space symbol right after a non-space symbol), the merges left of the cut are those of the
 *   left text alone, and byte fallback works token by token;
 * - no added (special) token spans a cut, so the text splits around special tokens the same way;
 * - the pre-tokenizer splits the prefix as it splits the whole text before the cut: the same
 *   pieces, except that the last one may continue past the cut (checked at every cut of a probe
 *   text; a tokenizer without pre-tokenizer has one piece, e.g. Llama 2 and Mistral). A piece
 *   that continues is only safe without `ignore_merges` (which would take a prefix piece that
 *   happens to be a vocabulary token whole, where the whole piece goes through the merges).
 * Where any condition fails the text is tokenized whole: correct, only slow.
 */
import type { Tokenizer as HfTokenizer } from "@huggingface/tokenizers" with { "resolution-mode": "import" };

/** The symbols a space becomes (SentencePiece "▁", byte-level "Ġ"), and the plain space. */
const SPACE_SYMBOLS = new Set([" ", "\u2581", "\u0120"]);
/** Whitespace as the tokenizers write it: these may stand right before a space symbol in a token. */
const WHITESPACE_SYMBOLS = new Set([...SPACE_SYMBOLS, "\t", "\n", "\r", "\v", "\f", "\u010A", "\u0109", "\u010B", "\u010C", "\u010D"]);

/** A probe of the usual character classes: letters, digits, punctuation, quotes, non-Latin script, runs of whitespace. */
const PROBE =
  "Hello world, it's 12 345 6789.5 ok! (a) \"q\" x'y  z\n w\t v — über Straße 日本語 🙂 A.B C's x2 3x end.";

/** Whether the text may be cut at `b`: a space after a character that is no whitespace and no space symbol. */
function isCut(text: string, b: number): boolean {
  if (b <= 0 || text.charCodeAt(b) !== 32) return false;
  const before = text[b - 1] as string;
  return !WHITESPACE_SYMBOLS.has(before) && !/\s/.test(before);
}

/** The first cut at or after `from`, or undefined when there is none (the text is then tokenized whole). */
export function cutAtOrAfter(text: string, from: number): number | undefined {
  for (let b = text.indexOf(" ", Math.max(1, from)); b >= 0; b = text.indexOf(" ", b + 1)) {
    if (isCut(text, b)) return b;
  }
  return undefined;
}

/** Whether some piece of `s` has a space symbol right after a symbol that is not whitespace. */
function spansCut(s: string): boolean {
  for (let i = 1; i < s.length; i++) {
    if (SPACE_SYMBOLS.has(s[i] as string) && !WHITESPACE_SYMBOLS.has(s[i - 1] as string)) return true;
  }
  return false;
}

/**
 * Whether the conditions above hold for one tokenizer; false: texts are tokenized whole.
 * `tokenizerJson` is the parsed tokenizer.json the library was built from (for its merges).
 */
export function canCutPrefixes(tokenizerJson: Record<string, unknown>, tok: HfTokenizer): boolean {
  const model = tokenizerJson["model"] as Record<string, unknown>;
  if (model["type"] !== "BPE") return false;
  const added = tokenizerJson["added_tokens"];
  if (Array.isArray(added) && added.some((t) => typeof t?.content === "string" && spansCut(t.content))) {
    return false;
  }

  const piecesOf = (text: string): string[] => {
    const normalized = tok.normalizer ? tok.normalizer.normalize(text) : text;
    return tok.pre_tokenizer ? tok.pre_tokenizer.pre_tokenize(normalized, { section_index: 0 }) : [normalized];
  };
  let continues = false;
  try {
    const whole = piecesOf(PROBE);
    for (let b = cutAtOrAfter(PROBE, 1); b !== undefined; b = cutAtOrAfter(PROBE, b + 1)) {
      const prefix = piecesOf(PROBE.slice(0, b));
      const k = prefix.length;
      if (k === 0 || k > whole.length) return false;
      for (let i = 0; i < k - 1; i++) if (prefix[i] !== whole[i]) return false;
      const last = prefix[k - 1] as string;
      const spanning = whole[k - 1] as string;
      if (!spanning.startsWith(last)) return false;
      if (spanning !== last) continues = true;
    }
  } catch {
    return false; // a normalizer or pre-tokenizer the library cannot run on its own
  }

  const vocab = tok.get_vocab(true);
  if (continues) {
    for (const token of vocab.keys()) {
      // typeof: the library leaves holes where added tokens' ids skip ahead
      if (typeof token === "string" && spansCut(token)) return false;
    }
    if (model["ignore_merges"] === true) return false;
    const merges = Array.isArray(model["merges"]) ? (model["merges"] as unknown[]) : [];
    for (const m of merges) {
      const joined = Array.isArray(m) ? m.join("") : typeof m === "string" ? m.replace(" ", "") : "";
      if (spansCut(joined)) return false;
    }
  }
  // fuse_unk joins neighbouring unknown tokens; the token after a cut starts with a space symbol, known if the vocabulary has one.
  return !(model["fuse_unk"] === true && ![...SPACE_SYMBOLS].some((s) => vocab.has(s)));
}
