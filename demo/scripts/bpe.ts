/**
 * Trains the demo model's tokenizer: SentencePiece-style BPE (spaces become "▁", which starts
 * each word; byte fallback for any character it never saw), written as a Hugging Face
 * `tokenizer.json` that @huggingface/tokenizers (and the Python `tokenizers`) load. Ids follow
 * LLaMA's layout: <unk> <s> </s>, the 256 byte pieces, single characters, then merges.
 */
export interface TrainedTokenizer {
  tokenizerJson: object;
  tokenizerConfig: object;
  vocabSize: number;
  merges: number;
}

const SPECIALS = ["<unk>", "<s>", "</s>"];

/**
 * Piece -> count. Each space-separated word becomes "▁" + its characters and is cut where
 * letters meet digits or punctuation (SentencePiece's split by script), so no merge ever joins
 * a word to its punctuation: "stone." is "▁stone" + ".", the same "▁stone" as mid-sentence,
 * which a model can copy from anywhere in its context.
 */
function wordCounts(texts: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const t of texts)
    for (const w of t.replace(/ {2,}/g, " ").trim().split(/(?= )|(?=\n)/))
      for (const piece of ("▁" + w.replace(/^ /, "")).match(/▁?(?:[A-Za-z]+|[0-9]+|[^A-Za-z0-9▁]+)|▁/g) ?? []) counts.set(piece, (counts.get(piece) ?? 0) + 1);
  return counts;
}

export function trainBpe(texts: readonly string[], vocabSize: number, alwaysChars = ""): TrainedTokenizer {
  const counts = wordCounts(texts);
  const vocab = new Map<string, number>();
  const add = (tok: string) => vocab.has(tok) || vocab.set(tok, vocab.size);
  SPECIALS.forEach(add);
  for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  const chars = new Set<string>(["▁", ...alwaysChars]);
  for (const w of counts.keys()) for (const ch of w) chars.add(ch);
  [...chars].sort().forEach(add);

  // Each distinct word as its current symbols; merges are learned within words only.
  const words = [...counts].map(([w, n]) => ({ syms: [...w], n }));
  const merges: [string, string][] = [];
  while (vocab.size < vocabSize) {
    const pairs = new Map<string, number>();
    for (const { syms, n } of words)
      for (let i = 0; i + 1 < syms.length; i++) {
        const key = syms[i] + "\u0000" + syms[i + 1];
        pairs.set(key, (pairs.get(key) ?? 0) + n);
      }
    let best = "";
    let bestN = 1; // a pair seen once is not worth a token
    for (const [k, n] of pairs) if (n > bestN || (n === bestN && best !== "" && k < best)) [best, bestN] = [k, n];
    if (!best) break;
    const [a, b] = best.split("\u0000");
    merges.push([a, b]);
    add(a + b);
    for (const w of words) {
      const out: string[] = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (i + 1 < w.syms.length && w.syms[i] === a && w.syms[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(w.syms[i]);
      }
      w.syms = out;
    }
  }

  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const tokenizerJson = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((s, i) => special(i, s)),
    normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" }, { type: "Replace", pattern: { String: " " }, content: "▁" }] },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "<s>", type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [{ type: "Replace", pattern: { String: "▁" }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }],
    },
    model: {
      type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const tokenizerConfig = {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: "<s>",
    eos_token: "</s>",
    unk_token: "<unk>",
    pad_token: null,
    clean_up_tokenization_spaces: false,
    legacy: true,
    model_max_length: 256,
    tokenizer_class: "LlamaTokenizer",
  };
  return { tokenizerJson, tokenizerConfig, vocabSize: vocab.size, merges: merges.length };
}
