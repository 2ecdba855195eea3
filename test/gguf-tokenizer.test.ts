import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ExcitorInputError } from "../engine/errors";
import { readGguf, type GgufValue } from "../engine/formats/gguf";
import { TextTokenizer } from "../engine/tokenizer/tokenizer";
import { tokenizerJsonFromGguf } from "../engine/tokenizer/gguf-vocab";
import { bytesToUnicode, CHATML_TEMPLATE, FIXTURES } from "./fixtures";

const LLAMACPP_VOCAB = path.join(FIXTURES, "tokenizers/llamacpp-vocab/ggml-vocab-llama-spm.gguf");
const STORIES = path.join(FIXTURES, "stories260k");
const STORIES_GGUF = path.join(STORIES, "gguf/stories260K-f32.v3.gguf");

/** llama.cpp's tests/test-tokenizer-0.cpp: strings split on "\n__ggml_vocab_test__\n", ids one line each. */
function llamacppCases(): { text: string; ids: number[] }[] {
  const raw = fs.readFileSync(LLAMACPP_VOCAB + ".inp", "utf8");
  const sep = "\n__ggml_vocab_test__\n";
  const texts: string[] = [];
  for (let pos = 0; pos < raw.length; ) {
    const next = raw.indexOf(sep, pos);
    if (next < 0) {
      texts.push(raw.slice(pos));
      break;
    }
    texts.push(raw.slice(pos, next));
    pos = next + sep.length;
  }
  const lines = fs.readFileSync(LLAMACPP_VOCAB + ".out", "utf8").split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  assert.equal(texts.length, lines.length);
  return texts.map((text, i) => {
    const o = (lines[i] as string).trim();
    return { text, ids: o === "" ? [] : o.split(" ").map(Number) };
  });
}

test("llama.cpp's SPM vocabulary test: every string gives llama.cpp's ids through the GGUF and the tokenizer.json path, and decodes back", () => {
  const cases = llamacppCases();
  assert.equal(cases.length, 46);
  // fromFolder takes the .gguf file where a folder would go
  const gguf = TextTokenizer.fromFolder(LLAMACPP_VOCAB);
  const hf = TextTokenizer.fromFolder(path.join(FIXTURES, "tokenizers/llama2"));
  for (const c of cases) {
    // test-tokenizer-0 tokenizes with add_special = false: no BOS
    const ids = gguf.encode(c.text, { bos: false });
    assert.deepEqual(ids, c.ids, `GGUF ids of ${JSON.stringify(c.text)}`);
    assert.deepEqual(hf.encode(c.text, { bos: false }), c.ids, `tokenizer.json ids of ${JSON.stringify(c.text)}`);
    assert.equal(gguf.decode(ids), c.text, `decode of ${JSON.stringify(c.text)}`);
  }
  assert.deepEqual([gguf.bosId, gguf.eosIds, gguf.addBos, gguf.addEos, gguf.vocabSize], [1, [2], true, false, 32000]);
  assert.deepEqual(gguf.encode("Hello world"), [1, 15043, 3186]);
});

test("stories260K GGUF: sentencepiece's ids, except that llama.cpp keeps the spaces sentencepiece's normalizer collapses", () => {
  const gguf = TextTokenizer.fromGguf(STORIES_GGUF);
  const hf = TextTokenizer.fromFolder(path.join(STORIES, "hf"));
  // The same tokenizer.json without the two normalizers that drop leading, trailing and repeated
  // spaces (sentencepiece's remove_extra_whitespaces): llama.cpp's SPM never applies that rule.
  const json = JSON.parse(fs.readFileSync(path.join(STORIES, "hf/tokenizer.json"), "utf8"));
  const normalizers = json.normalizer.normalizers as { type: string; pattern?: { Regex?: string } }[];
  assert.equal(normalizers.filter((n) => n.pattern?.Regex !== undefined).length, 2);
  json.normalizer.normalizers = normalizers.filter((n) => n.pattern?.Regex === undefined);
  const keepsSpaces = TextTokenizer.fromJson(json, { bos_token: "<s>", eos_token: "</s>" });
  const refs = JSON.parse(fs.readFileSync(path.join(STORIES, "sentencepiece-ids.json"), "utf8")) as { text: string; ids: number[] }[];
  let same = 0;
  for (const r of refs) {
    const ids = gguf.encode(r.text, { bos: false });
    assert.deepEqual(ids, keepsSpaces.encode(r.text, { bos: false }), JSON.stringify(r.text));
    assert.equal(gguf.decode(ids), r.text);
    if (/^ | $| {2}/.test(r.text)) {
      assert.notDeepEqual(ids, r.ids, JSON.stringify(r.text));
    } else {
      assert.deepEqual(ids, r.ids, JSON.stringify(r.text));
      assert.deepEqual(hf.encode(r.text, { bos: false }), r.ids);
      same++;
    }
  }
  assert.equal(refs.length, 27);
  assert.equal(same, 21);
  assert.deepEqual([gguf.bosId, gguf.eosIds, gguf.padId, gguf.addBos, gguf.vocabSize], [1, [2], 0, true, 512]);
  assert.deepEqual(gguf.encode("Hello"), [1, ...hf.encode("Hello", { bos: false })]);
  assert.deepEqual(gguf.encode("Hello", { eos: true }).slice(-1), [2]);
});

/** The stories260K metadata with some keys replaced (undefined deletes). */
function storiesMeta(changes: Record<string, GgufValue | undefined> = {}): Map<string, GgufValue> {
  const meta = new Map(readStoriesMeta());
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined) meta.delete(k);
    else meta.set(k, v);
  }
  return meta;
}
let storiesMetaCache: Map<string, GgufValue> | undefined;
function readStoriesMeta(): Map<string, GgufValue> {
  storiesMetaCache ??= readGguf(STORIES_GGUF).metadata;
  return storiesMetaCache;
}

function fromMeta(meta: Map<string, GgufValue>, file = "model.gguf"): TextTokenizer {
  const f = tokenizerJsonFromGguf(meta, file);
  return TextTokenizer.fromJson(f.tokenizerJson, f.tokenizerConfig, f.generationConfig);
}

test("GGUF metadata settings: add_bos/add_eos, add_space_prefix, eot/eom stop tokens", () => {
  const base = fromMeta(storiesMeta());
  const noBos = fromMeta(storiesMeta({ "tokenizer.ggml.add_bos_token": false, "tokenizer.ggml.add_eos_token": true }));
  assert.equal(noBos.addBos, false);
  assert.deepEqual(noBos.encode("Hello"), [...base.encode("Hello", { bos: false }), 2]);
  const noPrefix = fromMeta(storiesMeta({ "tokenizer.ggml.add_space_prefix": false }));
  // no "▁" put in front: " Hello" is what "Hello" is with the prefix
  assert.deepEqual(noPrefix.encode(" Hello", { bos: false }), base.encode("Hello", { bos: false }));
  assert.notDeepEqual(noPrefix.encode("Hello", { bos: false }), base.encode("Hello", { bos: false }));
  assert.equal(noPrefix.decode(noPrefix.encode(" Hello", { bos: false })), " Hello");
  const stops = fromMeta(storiesMeta({ "tokenizer.ggml.eot_token_id": 300, "tokenizer.ggml.eom_token_id": 301 }));
  assert.deepEqual(stops.eosIds, [2, 300, 301]);
  assert.equal(stops.eosToken, "</s>");
});

test("GGUF chat template: applied from tokenizer.chat_template; without one, the folder path's error naming the file", () => {
  const tok = fromMeta(storiesMeta({ "tokenizer.chat_template": CHATML_TEMPLATE }));
  const messages = [{ role: "user", content: "Hi" }];
  assert.equal(tok.applyChatTemplate(messages, { addGenerationPrompt: true }), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  const none = TextTokenizer.fromGguf(STORIES_GGUF);
  assert.equal(none.chatTemplate, undefined);
  assert.throws(
    () => none.applyChatTemplate(messages, { addGenerationPrompt: false }),
    (e: unknown) => e instanceof ExcitorInputError && e.file === STORIES_GGUF && e.message.startsWith(`${STORIES_GGUF}: `) && /chat template/.test(e.message),
  );
});

// ---- byte-level BPE ("gpt2") --------------------------------------------------------------

/** Merges (GPT-2 byte symbols: Ġ space, Ċ newline, ĉ tab), chosen so the split of digits shows. */
const MERGES = [
  "1 2", "3 4", "12 3", "4 5", "Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "r e", "Ġ s", "Ġ w", "o r", "l l",
  "he ll", "hell o", "Ġ h", "Ġh ello", "Ġw or", "Ġwor ld", "' s", "' t", "' re", "' ve", "' ll", "Ġ Ġ", "ĠĠ ĠĠ", "Ċ Ċ",
  "Ġ ĉ", "i t", "Ġ it", "Ġ '", "Ã ©", "c af", "caf Ã©", "a f", "Ġ 1", "Ġ1 2", "Ġ d", "Ġd on", "n 't", "Ġ 3",
];
const SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
const USER_DEFINED = "<tool>";

function byteLevelVocab(): { tokens: string[]; merges: [string, string][] } {
  const tokens = bytesToUnicode().slice();
  const merges = MERGES.map((m) => m.split(" ") as [string, string]);
  for (const [a, b] of merges) if (!tokens.includes(a + b)) tokens.push(a + b);
  tokens.push(...SPECIALS, USER_DEFINED);
  return { tokens, merges };
}

function byteLevelMeta(pre: string | undefined): Map<string, GgufValue> {
  const { tokens, merges } = byteLevelVocab();
  const types = new Int32Array(tokens.length).fill(1);
  for (const s of SPECIALS) types[tokens.indexOf(s)] = 3;
  types[tokens.indexOf(USER_DEFINED)] = 4;
  const meta = new Map<string, GgufValue>([
    ["tokenizer.ggml.model", "gpt2"],
    ["tokenizer.ggml.tokens", tokens],
    ["tokenizer.ggml.token_type", types],
    ["tokenizer.ggml.merges", merges.map(([a, b]) => `${a} ${b}`)],
    ["tokenizer.ggml.bos_token_id", tokens.indexOf("<|endoftext|>")],
    ["tokenizer.ggml.eos_token_id", tokens.indexOf("<|im_end|>")],
    ["tokenizer.ggml.add_bos_token", false],
  ]);
  if (pre !== undefined) meta.set("tokenizer.ggml.pre", pre);
  return meta;
}

/** The model's tokenizer.json as its Hugging Face repository would have it (pre-tokenizer of GPT-2, Llama 3 or Qwen2). */
function byteLevelTokenizerJson(pre: "gpt-2" | "llama-bpe" | "qwen2"): object {
  const { tokens, merges } = byteLevelVocab();
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => (vocab[t] = i));
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: pre === "gpt-2" };
  const split = (regex: string) => ({ type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false });
  const regex =
    pre === "llama-bpe"
      ? String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
      : String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
  return {
    version: "1.0",
    added_tokens: [...SPECIALS, USER_DEFINED].map((content) => ({
      id: tokens.indexOf(content),
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: content !== USER_DEFINED,
    })),
    normalizer: null,
    pre_tokenizer: pre === "gpt-2" ? byteLevel : { type: "Sequence", pretokenizers: [split(regex), byteLevel] },
    post_processor: null,
    decoder: byteLevel,
    model: { type: "BPE", dropout: null, unk_token: null, fuse_unk: false, byte_fallback: false, ignore_merges: pre === "llama-bpe", vocab, merges },
  };
}

const TEXTS = [
  "",
  " ",
  "  ",
  "   x",
  "\t",
  "\n",
  "\n\n\n",
  " \n \t\n",
  "a\n\nb",
  "hello world",
  " hello world",
  "Hello World!",
  "it's theirs, we're here; they'll go, I've HE'S DON'T don't",
  "12345 123 1234567 3.14 -42 1,000,000",
  "x1 2y 12ab",
  "café naïve Ωμέγα Привет 日本語の文 한국어",
  "🦙🚀 emoji 😶‍🌫️ and ✅",
  "tabs\tand\r\nwindows lines\r\n",
  "trailing spaces   ",
  "code: if (a<=b) { return a^b|c; } // done",
  "--==>> $100 + ~5 ... !!! ???",
  "mixed<|im_start|>special<|im_end|> and <tool> user-defined<|endoftext|>",
  "   leading and    inner   runs",
  "ÀÉÎõü ß ẞ ĳ ﬁ",
];

/** Writes a GGUF file holding only metadata (version 3, no tensors). */
function writeGguf(file: string, meta: Map<string, GgufValue>): void {
  const parts: Buffer[] = [];
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    parts.push(b);
  };
  const u64 = (v: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    parts.push(b);
  };
  const str = (s: string) => {
    const b = Buffer.from(s, "utf8");
    u64(b.length);
    parts.push(b);
  };
  u32(0x46554747);
  u32(3);
  u64(0);
  u64(meta.size);
  for (const [key, v] of meta) {
    str(key);
    if (typeof v === "string") {
      u32(8);
      str(v);
    } else if (typeof v === "boolean") {
      u32(7);
      parts.push(Buffer.from([v ? 1 : 0]));
    } else if (typeof v === "number") {
      u32(4);
      u32(v);
    } else if (v instanceof Int32Array || v instanceof Float32Array) {
      u32(9);
      u32(v instanceof Int32Array ? 5 : 6);
      u64(v.length);
      parts.push(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    } else if (Array.isArray(v)) {
      u32(9);
      u32(8);
      u64(v.length);
      for (const s of v) str(s as string);
    } else throw new Error(`writeGguf: cannot write ${key}`);
  }
  fs.writeFileSync(file, Buffer.concat(parts));
}

test("gpt2 GGUF: byte-level BPE with llama.cpp's pre-tokenizer gives the tokenizer.json's ids for gpt-2, llama-bpe and qwen2", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "excitor-ggtok-"));
  try {
    for (const pre of ["gpt-2", "llama-bpe", "qwen2"] as const) {
      const file = path.join(dir, `${pre}.gguf`);
      writeGguf(file, byteLevelMeta(pre));
      const gguf = TextTokenizer.fromFolder(file);
      const hf = TextTokenizer.fromJson(byteLevelTokenizerJson(pre), { eos_token: "<|im_end|>", bos_token: "<|endoftext|>" });
      for (const text of TEXTS) {
        const ids = gguf.encode(text);
        assert.deepEqual(ids, hf.encode(text), `${pre}: ${JSON.stringify(text)}`);
        if (ids.length > 0) assert.equal(gguf.decode(ids), text, `${pre}: decode of ${JSON.stringify(text)}`);
      }
      const byToken = (t: string) => gguf.tokenToId(t);
      // the digits show the pre-tokenizer: one piece (gpt-2), groups of three (llama-bpe), single digits (qwen2)
      const digits = { "gpt-2": ["12", "34", "5"], "llama-bpe": ["123", "45"], qwen2: ["1", "2", "3", "4", "5"] }[pre];
      assert.deepEqual(gguf.encode("12345"), digits.map(byToken), pre);
      assert.deepEqual(gguf.encode("<tool>x<|im_end|>"), [byToken("<tool>"), byToken("x"), byToken("<|im_end|>")]);
      assert.equal(gguf.addBos, false); // the metadata's add_bos_token wins over llama-bpe's default
      assert.deepEqual(gguf.eosIds, [byToken("<|im_end|>")]);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // llama.cpp's default add_bos for llama3-style pre-tokenizers, when the file does not say
  const meta = byteLevelMeta("llama-bpe");
  meta.delete("tokenizer.ggml.add_bos_token");
  assert.equal(fromMeta(meta).addBos, true);
  const gpt2 = byteLevelMeta("gpt-2");
  gpt2.delete("tokenizer.ggml.add_bos_token");
  assert.equal(fromMeta(gpt2).addBos, false);
  // no pre at all: llama.cpp's "default" regexes (punctuation runs split off, digits in threes)
  const dflt = fromMeta(byteLevelMeta(undefined));
  assert.deepEqual(dflt.encode("12345"), ["123", "45"].map((t) => dflt.tokenToId(t)));
});

function assertInputError(fn: () => unknown, file: string, field: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ExcitorInputError, String(e));
    assert.ok(e.message.startsWith(`${file}: `), e.message);
    assert.match(e.message, field);
    assert.ok(!e.message.includes("\n"), e.message);
    return true;
  });
}

test("GGUF tokenizer errors: one line naming the file and the field", () => {
  const f = "/models/x.gguf";
  assertInputError(() => tokenizerJsonFromGguf(storiesMeta({ "tokenizer.ggml.model": "bert" }), f), f, /tokenizer\.ggml\.model is "bert"; supported: "llama".*"gpt2"/);
  assertInputError(() => tokenizerJsonFromGguf(storiesMeta({ "tokenizer.ggml.model": undefined }), f), f, /tokenizer\.ggml\.model is missing/);
  assertInputError(() => tokenizerJsonFromGguf(byteLevelMeta("gpt-5o"), f), f, /tokenizer\.ggml\.pre is "gpt-5o".*supported: default, llama3, .*qwen2/);
  assertInputError(() => tokenizerJsonFromGguf(storiesMeta({ "tokenizer.ggml.tokens": undefined }), f), f, /tokenizer\.ggml\.tokens is missing/);
  assertInputError(() => tokenizerJsonFromGguf(storiesMeta({ "tokenizer.ggml.tokens": [1, 2] as unknown as GgufValue }), f), f, /tokenizer\.ggml\.tokens must be an array of strings/);
  assertInputError(
    () => tokenizerJsonFromGguf(storiesMeta({ "tokenizer.ggml.scores": new Float32Array(511) }), f),
    f,
    /tokenizer\.ggml\.scores has 511 entries for 512 tokens/,
  );
  assertInputError(() => tokenizerJsonFromGguf(storiesMeta({ "tokenizer.ggml.scores": undefined }), f), f, /tokenizer\.ggml\.scores is missing/);
  assertInputError(
    () => tokenizerJsonFromGguf(storiesMeta({ "tokenizer.ggml.token_type": new Int32Array(3) }), f),
    f,
    /tokenizer\.ggml\.token_type has 3 entries for 512 tokens/,
  );
  const noMerges = byteLevelMeta("gpt-2");
  noMerges.delete("tokenizer.ggml.merges");
  assertInputError(() => tokenizerJsonFromGguf(noMerges, f), f, /tokenizer\.ggml\.merges is missing/);
  // through the file: a GGUF without a tokenizer
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "excitor-ggtok-"));
  try {
    const file = path.join(dir, "weights-only.gguf");
    writeGguf(file, new Map<string, GgufValue>([["general.architecture", "llama"]]));
    assertInputError(() => TextTokenizer.fromFolder(file), file, /tokenizer\.ggml\.model is missing/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
