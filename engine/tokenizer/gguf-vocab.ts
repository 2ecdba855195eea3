/**
 * A GGUF file's tokenizer (its `tokenizer.ggml.*` metadata) as the Hugging Face tokenizer.json /
 * tokenizer_config.json / generation_config.json that tokenizes exactly as llama.cpp does
 * (src/llama-vocab.cpp), so a GGUF file goes everywhere a model folder's tokenizer goes.
 *
 * - "llama" (llama.cpp's SPM): llama.cpp merges neighbouring symbols whose concatenation is a
 *   token, highest token score first, leftmost on ties; an unknown character becomes its
 *   <0xXX> byte tokens. That is BPE whose merges are every (left, right) split of every token
 *   into two tokens, ranked by the merged token's score, with byte fallback: built here the way
 *   transformers' GGUF converter does (integrations/ggml.py, GGUFTokenizerSkeleton), with the
 *   space prefix of `tokenizer.ggml.add_space_prefix`. Where two different merges have equal
 *   scores llama.cpp takes the leftmost and BPE the lower rank, which can differ; Llama's
 *   vocabulary has such ties only among its whitespace-run tokens.
 * - "gpt2" (llama.cpp's BPE): byte-level BPE from tokens + merges, pre-tokenized by the regexes
 *   llama.cpp uses for `tokenizer.ggml.pre`, applied one after the other, each splitting the
 *   pieces of the one before and keeping what it does not match (Hugging Face: a Sequence of
 *   "Isolated" Splits), then GPT-2's byte mapping.
 *
 * Special tokens as llama.cpp's `tokenize` with parse_special: control and unknown tokens are
 * special added tokens, user-defined ones plain added tokens (llama.cpp always splits those out).
 */
import { ExcitorInputError } from "../errors";
import type { GgufValue } from "../formats/gguf";
import type { JsonObject } from "../json-file";

export interface GgufTokenizerFiles {
  tokenizerJson: JsonObject;
  tokenizerConfig: JsonObject;
  generationConfig: JsonObject;
}

/** `tokenizer.ggml.token_type` values (llama.h llama_token_type). */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

const K = "tokenizer.ggml.";

/** llama.cpp's pre-tokenizer regexes (llm_tokenizer_bpe), verbatim. */
const GPT2 = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`;
const LLAMA3 = String.raw`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN2 = String.raw`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const TEKKEN = String.raw`[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

interface PreTokenizer {
  regexes: string[];
  /** A piece that is a token whole is taken whole (llama.cpp's ignore_merges). */
  ignoreMerges?: boolean;
  /** llama.cpp's add_bos default for this pre-tokenizer (false otherwise). */
  addBos?: boolean;
  /** llama.cpp drops the BOS id for this pre-tokenizer. */
  noBos?: boolean;
}

/** `tokenizer.ggml.pre` names → llama.cpp's pre-tokenizer for them (llama_vocab::impl::load). */
const PRE_TOKENIZERS: [string[], PreTokenizer][] = [
  [["default"], { regexes: [String.raw`[\p{P}\$\+<=>\^~\|]+`, GPT2, String.raw`\p{N}+`, "[0-9][0-9][0-9]"] }],
  [["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"], { regexes: [LLAMA3], ignoreMerges: true, addBos: true }],
  [["dbrx", "smaug-bpe"], { regexes: [LLAMA3] }],
  [["glm4", "chatglm-bpe"], { regexes: [LLAMA3], noBos: true }],
  [
    ["gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "exaone4", "mpt", "olmo", "jais", "trillion", "granite-docling"],
    { regexes: [GPT2] },
  ],
  [["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan", "solar-open"], { regexes: [QWEN2] }],
  [["starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b", "mellum2"], { regexes: [String.raw`\p{N}`, GPT2] }],
  [["tekken"], { regexes: [TEKKEN], ignoreMerges: true, addBos: true }],
];

/** The `tokenizer.ggml.pre` values supported here. */
export const SUPPORTED_PRE = PRE_TOKENIZERS.flatMap(([names]) => names);

/** The tokenizer files equivalent to a GGUF file's tokenizer metadata; `file` names it in errors. */
export function tokenizerJsonFromGguf(meta: Map<string, GgufValue>, file: string): GgufTokenizerFiles {
  const bad = (msg: string) => new ExcitorInputError(`${file}: ${msg}`, file);
  const model = meta.get(K + "model");
  if (model === undefined) throw bad(`${K}model is missing; the file has no tokenizer`);
  if (model !== "llama" && model !== "gpt2")
    throw bad(`${K}model is ${JSON.stringify(model)}; supported: "llama" (SentencePiece BPE) and "gpt2" (byte-level BPE)`);
  const tokens = readTokens(meta, bad);
  const n = tokens.length;
  const types = readNumbers(meta, K + "token_type", n, bad);

  let built: { json: JsonObject; addBos: boolean; bos?: number; eos?: number; unk?: number };
  if (model === "llama") {
    const scores = readNumbers(meta, K + "scores", n, bad);
    if (scores === undefined) throw bad(`${K}scores is missing; a "llama" tokenizer needs its token scores`);
    const addSpacePrefix = readBool(meta, K + "add_space_prefix", bad) ?? true;
    built = { json: spmTokenizerJson(tokens, scores, addSpacePrefix), addBos: true, bos: 1, eos: 2, unk: 0 };
  } else {
    const preName = meta.get(K + "pre") ?? "default"; // llama.cpp: missing means "default"
    const pre = PRE_TOKENIZERS.find(([names]) => names.includes(preName as string))?.[1];
    if (pre === undefined) throw bad(`${K}pre is ${JSON.stringify(preName)}, which is not supported; supported: ${SUPPORTED_PRE.join(", ")}`);
    const merges = readMerges(meta, bad);
    built = { json: byteLevelTokenizerJson(tokens, merges, pre), addBos: pre.addBos ?? false, bos: pre.noBos ? undefined : 11, eos: 11 };
  }

  const json = built.json;
  json["added_tokens"] = addedTokens(tokens, types);
  const id = (key: string, fallback: number | undefined) => readId(meta, K + key, n, fallback, bad);
  const bos = id("bos_token_id", built.bos);
  const eos = id("eos_token_id", built.eos);
  const unk = id("unknown_token_id", built.unk);
  const pad = id("padding_token_id", undefined);
  const stops = [eos, id("eot_token_id", undefined), id("eom_token_id", undefined)].filter((v): v is number => v !== undefined);
  if (model === "llama" && unk !== undefined) (json["model"] as JsonObject)["unk_token"] = tokens[unk];

  const text = (i: number | undefined) => (i === undefined ? null : tokens[i]);
  const tokenizerConfig: JsonObject = {
    bos_token: text(bos),
    eos_token: text(eos),
    unk_token: text(unk),
    pad_token: text(pad),
    add_bos_token: readBool(meta, K + "add_bos_token", bad) ?? built.addBos,
    add_eos_token: readBool(meta, K + "add_eos_token", bad) ?? false,
    clean_up_tokenization_spaces: false,
  };
  const template = meta.get("tokenizer.chat_template");
  if (template !== undefined) {
    if (typeof template !== "string") throw bad(`tokenizer.chat_template must be a string`);
    tokenizerConfig["chat_template"] = template;
  }
  const generationConfig: JsonObject = { eos_token_id: stops };
  if (bos !== undefined) generationConfig["bos_token_id"] = bos;
  return { tokenizerJson: json, tokenizerConfig, generationConfig };
}

/** SentencePiece-BPE as llama.cpp runs it; see the file comment. */
function spmTokenizerJson(tokens: string[], scores: ArrayLike<number>, addSpacePrefix: boolean): JsonObject {
  const normalizers: JsonObject[] = [];
  if (addSpacePrefix) normalizers.push({ type: "Prepend", prepend: "\u2581" });
  normalizers.push({ type: "Replace", pattern: { String: " " }, content: "\u2581" });
  const decoders: JsonObject[] = [
    { type: "Replace", pattern: { String: "\u2581" }, content: " " },
    { type: "ByteFallback" },
    { type: "Fuse" },
  ];
  if (addSpacePrefix) decoders.push({ type: "Strip", content: " ", start: 1, stop: 0 });
  return bpeTokenizerJson(tokens, mergesFromScores(tokens, scores), {
    normalizer: { type: "Sequence", normalizers },
    pre_tokenizer: null,
    decoder: { type: "Sequence", decoders },
    byteFallback: true,
    ignoreMerges: false,
  });
}

/**
 * transformers' GGUFTokenizerSkeleton: for each token in id order, every split into two tokens
 * (sorted by the pieces' scores, higher first), then all of them stably sorted by the merged
 * token's score, higher first.
 */
function mergesFromScores(tokens: string[], scores: ArrayLike<number>): [string, string][] {
  const score = new Map<string, number>();
  tokens.forEach((t, i) => score.set(t, scores[i] as number));
  const merges: { left: string; right: string; score: number }[] = [];
  for (const [token, s] of score) {
    const chars = Array.from(token);
    const local: { left: string; right: string; score: number }[] = [];
    for (let i = 1; i < chars.length; i++) {
      const left = chars.slice(0, i).join("");
      const right = chars.slice(i).join("");
      if (score.has(left) && score.has(right)) local.push({ left, right, score: s });
    }
    local.sort((a, b) => (score.get(b.left) as number) - (score.get(a.left) as number) || (score.get(b.right) as number) - (score.get(a.right) as number));
    merges.push(...local);
  }
  merges.sort((a, b) => b.score - a.score);
  return merges.map((m) => [m.left, m.right]);
}

function byteLevelTokenizerJson(tokens: string[], merges: [string, string][], pre: PreTokenizer): JsonObject {
  const splits: JsonObject[] = pre.regexes.map((r) => ({ type: "Split", pattern: { Regex: r }, behavior: "Isolated", invert: false }));
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };
  return bpeTokenizerJson(tokens, merges, {
    normalizer: null,
    pre_tokenizer: { type: "Sequence", pretokenizers: [...splits, byteLevel] },
    decoder: byteLevel,
    byteFallback: false,
    ignoreMerges: pre.ignoreMerges ?? false,
  });
}

interface BpeParts {
  normalizer: JsonObject | null;
  pre_tokenizer: JsonObject | null;
  decoder: JsonObject;
  byteFallback: boolean;
  ignoreMerges: boolean;
}

/** A BPE tokenizer.json; no post-processor, as TextTokenizer adds BOS/EOS itself. */
function bpeTokenizerJson(tokens: string[], merges: [string, string][], p: BpeParts): JsonObject {
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    normalizer: p.normalizer,
    pre_tokenizer: p.pre_tokenizer,
    post_processor: null,
    decoder: p.decoder,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: p.byteFallback,
      byte_fallback: p.byteFallback,
      ignore_merges: p.ignoreMerges,
      vocab: vocabObject(tokens),
      merges,
    },
  };
}

/** token → id; without a prototype, so tokens such as "__proto__" are plain keys. */
function vocabObject(tokens: string[]): Record<string, number> {
  const vocab = Object.create(null) as Record<string, number>;
  tokens.forEach((t, i) => (vocab[t] = i));
  return vocab;
}

function addedTokens(tokens: string[], types: ArrayLike<number> | undefined): JsonObject[] {
  const out: JsonObject[] = [];
  if (types === undefined) return out;
  tokens.forEach((content, id) => {
    const type = types[id];
    const special = type === TOKEN_TYPE.control || type === TOKEN_TYPE.unknown;
    if (!special && type !== TOKEN_TYPE.userDefined) return;
    out.push({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special });
  });
  return out;
}

type Bad = (msg: string) => ExcitorInputError;

/** `tokenizer.ggml.tokens`: llama.cpp names empty tokens "[EMPTY_<id>]" and refuses duplicates. */
function readTokens(meta: Map<string, GgufValue>, bad: Bad): string[] {
  const v = meta.get(K + "tokens");
  if (v === undefined) throw bad(`${K}tokens is missing; the file has no vocabulary`);
  if (!Array.isArray(v) || v.some((t) => typeof t !== "string")) throw bad(`${K}tokens must be an array of strings`);
  if (v.length === 0) throw bad(`${K}tokens is empty`);
  const tokens = (v as string[]).map((t, i) => (t === "" ? `[EMPTY_${i}]` : t));
  const seen = new Map<string, number>();
  tokens.forEach((t, i) => {
    const first = seen.get(t);
    if (first !== undefined) throw bad(`${K}tokens has ${JSON.stringify(t)} twice (ids ${first} and ${i})`);
    seen.set(t, i);
  });
  return tokens;
}

/** A per-token number array (scores, token types): one entry per token. */
function readNumbers(meta: Map<string, GgufValue>, key: string, n: number, bad: Bad): ArrayLike<number> | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  const ok = v instanceof Float32Array || v instanceof Int32Array || (Array.isArray(v) && v.every((x) => typeof x === "number"));
  if (!ok) throw bad(`${key} must be an array of numbers`);
  const arr = v as ArrayLike<number>;
  if (arr.length !== n) throw bad(`${key} has ${arr.length} entries for ${n} tokens`);
  return arr;
}

function readMerges(meta: Map<string, GgufValue>, bad: Bad): [string, string][] {
  const key = K + "merges";
  const v = meta.get(key);
  if (v === undefined) throw bad(`${key} is missing; a "gpt2" tokenizer needs its merges`);
  if (!Array.isArray(v) || v.some((m) => typeof m !== "string")) throw bad(`${key} must be an array of strings`);
  return (v as string[]).map((m, i) => {
    const at = m.indexOf(" ", 1); // as llama.cpp: the first space after the first character
    if (at < 0) throw bad(`${key}[${i}] is ${JSON.stringify(m)}, not two tokens separated by a space`);
    return [m.slice(0, at), m.slice(at + 1)];
  });
}

function readBool(meta: Map<string, GgufValue>, key: string, bad: Bad): boolean | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") throw bad(`${key} must be a boolean (got ${JSON.stringify(String(v))})`);
  return v;
}

/** A special token id; as llama.cpp, one outside the vocabulary leaves the default (which must fit too). */
function readId(meta: Map<string, GgufValue>, key: string, n: number, fallback: number | undefined, bad: Bad): number | undefined {
  const v = meta.get(key);
  if (v !== undefined && (typeof v !== "number" || !Number.isInteger(v))) throw bad(`${key} must be an integer`);
  if (typeof v === "number" && v >= 0 && v < n) return v;
  return fallback !== undefined && fallback < n ? fallback : undefined;
}
