import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ExcitorInputError } from "../engine/errors";
import { TextTokenizer } from "../engine/tokenizer/tokenizer";
import { cutAtOrAfter } from "../engine/tokenizer/prefix-cut";
import { CHATML_TEMPLATE, FIXTURES, tinyByteLevelTokenizer } from "./fixtures";
import { spyOnEncode } from "./helpers/encode-spy";

const STORIES_DIR = path.join(FIXTURES, "stories260k/hf");
const LLAMA2_DIR = path.join(FIXTURES, "tokenizers/llama2");

interface Reference {
  text: string;
  ids: number[];
}

function references(file: string): Reference[] {
  const refs = JSON.parse(fs.readFileSync(file, "utf8")) as Reference[];
  assert.ok(refs.length > 10, `${file} should hold reference texts`);
  return refs;
}

const cases = [
  { name: "stories260k", dir: STORIES_DIR, refs: path.join(FIXTURES, "stories260k/sentencepiece-ids.json"), vocab: 512 },
  { name: "llama2", dir: LLAMA2_DIR, refs: path.join(LLAMA2_DIR, "sentencepiece-ids.json"), vocab: 32000 },
];

/** Joins what a stream decoder emits for `ids`, checking no delta leaks a partial character. */
function streamText(tok: TextTokenizer, ids: number[], opts?: { skipSpecial?: boolean }): { text: string; deltas: string[] } {
  const d = tok.createStreamDecoder(opts);
  const deltas = ids.map((id) => d.push(id));
  deltas.push(d.flush());
  return { text: deltas.join(""), deltas };
}

for (const c of cases) {
  test(`${c.name}: ids match sentencepiece for every reference text`, () => {
    const tok = TextTokenizer.fromFolder(c.dir);
    for (const { text, ids } of references(c.refs)) {
      assert.deepEqual(tok.encode(text, { bos: false }), ids, `text ${JSON.stringify(text.slice(0, 60))}`);
    }
  });

  test(`${c.name}: special ids and default BOS`, () => {
    const tok = TextTokenizer.fromFolder(c.dir);
    assert.equal(tok.vocabSize, c.vocab);
    assert.equal(tok.bosId, 1);
    assert.equal(tok.bosToken, "<s>");
    assert.deepEqual(tok.eosIds, [2]);
    assert.equal(tok.addBos, true);
    assert.equal(tok.addEos, false);
    assert.equal(tok.padId, 2, "no pad_token: pads with EOS");
    assert.equal(tok.chatTemplate, undefined);
    const plain = tok.encode("Once upon a time", { bos: false });
    assert.deepEqual(tok.encode("Once upon a time"), [1, ...plain]);
    assert.deepEqual(tok.encode("Once upon a time", { eos: true }), [1, ...plain, 2]);
    // Special tokens written in the text map to their ids.
    assert.deepEqual(tok.encode("</s>", { bos: false }), [2]);
    assert.equal(tok.encode("<s>", { bos: false })[0], 1);
  });

  test(`${c.name}: decode round-trips what sentencepiece round-trips`, () => {
    const tok = TextTokenizer.fromFolder(c.dir);
    let roundTrips = 0;
    for (const { text, ids } of references(c.refs)) {
      // stories260k's normalizer collapses runs of spaces and drops one leading/trailing space
      // (sentencepiece's remove_extra_whitespaces); those texts cannot come back unchanged.
      const lossy = c.name === "stories260k" && /^ | $| {2}/.test(text);
      const expected = lossy ? text.replace(/ {2,}/g, " ").replace(/^ | $/g, "") : text;
      assert.equal(tok.decode(ids), expected);
      assert.equal(tok.decode([1, ...ids, 2], { skipSpecial: true }), expected);
      if (!lossy) roundTrips++;
    }
    assert.ok(roundTrips >= 20, `only ${roundTrips} texts round-tripped`);
  });

  test(`${c.name}: stream decoder deltas concatenate to decode(ids)`, () => {
    const tok = TextTokenizer.fromFolder(c.dir);
    for (const { ids } of references(c.refs)) {
      for (const seq of [ids, [1, ...ids]]) {
        const { text, deltas } = streamText(tok, seq);
        assert.equal(text, tok.decode(seq));
        for (const d of deltas) assert.ok(!d.includes("\uFFFD"), `delta ${JSON.stringify(d)} holds a partial character`);
      }
      const skipped = streamText(tok, [1, ...ids, 2], { skipSpecial: true }).text;
      assert.equal(skipped, tok.decode([1, ...ids, 2], { skipSpecial: true }));
    }
  });
}

test("stories260k: byte-fallback pieces are held back until the character is complete", () => {
  const tok = TextTokenizer.fromFolder(STORIES_DIR);
  const ids = tok.encode("a 🦙 b", { bos: false });
  // "a", "▁", four byte pieces <0xF0><0x9F><0xA6><0x99>, "▁b".
  assert.deepEqual(ids.map((id) => tok.idToToken(id)), ["▁a", "▁", "<0xF0>", "<0x9F>", "<0xA6>", "<0x99>", "▁b"]);
  const { deltas } = streamText(tok, ids);
  assert.deepEqual(deltas, ["a", " ", "", "", "", "🦙", " b", ""]);
});

test("fromFolder reads generation_config eos ids and infers add_bos from tokenizer.json", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "excitor-tok-"));
  fs.copyFileSync(path.join(STORIES_DIR, "tokenizer.json"), path.join(dir, "tokenizer.json"));
  // No tokenizer_config.json: BOS comes from the TemplateProcessing post-processor.
  fs.writeFileSync(path.join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: [2, 5] }));
  const tok = TextTokenizer.fromFolder(dir);
  assert.equal(tok.addBos, true);
  assert.equal(tok.bosId, 1);
  assert.deepEqual(tok.eosIds, [2, 5]);
  assert.equal(tok.encode("hi")[0], 1);

  // tokenizer_config with eos in {content} form, plus a number eos_token_id, add_bos off.
  fs.writeFileSync(
    path.join(dir, "tokenizer_config.json"),
    JSON.stringify({ add_bos_token: false, add_eos_token: true, eos_token: { content: "</s>", special: true } }),
  );
  fs.writeFileSync(path.join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: 7, bos_token_id: 1 }));
  const tok2 = TextTokenizer.fromFolder(dir);
  assert.equal(tok2.addBos, false);
  assert.equal(tok2.addEos, true);
  assert.deepEqual(tok2.eosIds, [2, 7]);
  const ids = tok2.encode("hi");
  assert.notEqual(ids[0], 1);
  assert.equal(ids[ids.length - 1], 2);
});

test("fromFolder: a missing or malformed tokenizer.json is an input error naming the file", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "excitor-tok-"));
  const file = path.join(dir, "tokenizer.json");
  assert.throws(
    () => TextTokenizer.fromFolder(dir),
    (e: unknown) => e instanceof ExcitorInputError && e.message.includes(file) && /not found/.test(e.message),
  );
  fs.writeFileSync(file, '{"model": {');
  assert.throws(
    () => TextTokenizer.fromFolder(dir),
    (e: unknown) => e instanceof ExcitorInputError && e.message.includes(file) && /not valid JSON/.test(e.message),
  );
  fs.writeFileSync(file, '{"version": "1.0"}');
  assert.throws(
    () => TextTokenizer.fromFolder(dir),
    (e: unknown) => e instanceof ExcitorInputError && e.message.includes(file) && e.message.includes('"model"'),
  );
  // A model type the library does not implement is refused, not read as whatever its fields suggest.
  const stories = JSON.parse(fs.readFileSync(path.join(STORIES_DIR, "tokenizer.json"), "utf8"));
  fs.writeFileSync(file, JSON.stringify({ ...stories, model: { ...stories.model, type: "Magic" } }));
  assert.throws(
    () => TextTokenizer.fromFolder(dir),
    (e: unknown) => e instanceof ExcitorInputError && e.message === `${file}: "model.type" is "Magic"; supported: BPE, Unigram, WordPiece`,
  );
  fs.writeFileSync(file, fs.readFileSync(path.join(STORIES_DIR, "tokenizer.json")));
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), "{oops");
  assert.throws(
    () => TextTokenizer.fromFolder(dir),
    (e: unknown) => e instanceof ExcitorInputError && e.message.includes("tokenizer_config.json") && /not valid JSON/.test(e.message),
  );
});

function tinyTokenizer(configChanges: Record<string, unknown> = {}): TextTokenizer {
  const { tokenizerJson, tokenizerConfig } = tinyByteLevelTokenizer();
  return TextTokenizer.fromJson(tokenizerJson, { ...tokenizerConfig, ...configChanges });
}

test("byte-level BPE: merges, special tokens as single ids, no BOS", () => {
  const tok = tinyTokenizer();
  const imStart = tok.tokenToId("<|im_start|>");
  const imEnd = tok.tokenToId("<|im_end|>");
  assert.equal(typeof imStart, "number");
  assert.equal(typeof imEnd, "number");
  assert.equal(tok.bosId, undefined);
  assert.equal(tok.addBos, false, "a ByteLevel post-processor adds no BOS");
  assert.deepEqual(tok.eosIds, [imEnd]);
  assert.equal(tok.padId, tok.tokenToId("<|endoftext|>"));
  assert.equal(tok.vocabSize, 256 + 8 + 3);

  const ids = tok.encode("hello the world");
  assert.deepEqual(
    ids.map((id) => tok.idToToken(id)),
    ["hello", "Ġthe", "Ġw", "or", "l", "d"],
  );
  const chat = tok.encode("<|im_start|>user\nhello<|im_end|>\n");
  assert.equal(chat[0], imStart);
  assert.equal(chat.filter((id) => id === imEnd).length, 1);
  assert.equal(chat.length, 1 + 4 + 1 + 1 + 1 + 1, "<|im_start|> u s e r \\n hello <|im_end|> \\n");
  assert.equal(tok.decode(chat), "<|im_start|>user\nhello<|im_end|>\n");
  assert.equal(tok.decode(chat, { skipSpecial: true }), "user\nhello\n");
});

test("byte-level BPE: stream decoder handles characters split across byte tokens", () => {
  const tok = tinyTokenizer();
  for (const text of ["hello the world", " the 🦙 日本語 Ω!", "naïve café", "<|im_start|>assistant\n🦙<|im_end|>"]) {
    const ids = tok.encode(text);
    assert.equal(tok.decode(ids), text);
    const { text: streamed, deltas } = streamText(tok, ids);
    assert.equal(streamed, text);
    for (const d of deltas) assert.ok(!d.includes("\uFFFD"));
  }
  const { deltas } = streamText(tok, tok.encode(" 🦙"));
  assert.deepEqual(deltas, [" ", "", "", "", "🦙", ""]);
  // A genuinely invalid byte at the end is released by flush, so nothing is lost.
  const d = tok.createStreamDecoder();
  assert.equal(d.push(tok.encode("a")[0] as number), "a");
  assert.equal(d.push(0xf0), ""); // id = byte here: 0xF0 leads a 4-byte sequence, incomplete
  const rest = d.flush();
  assert.ok(rest.endsWith("\uFFFD"));
});

test("applyChatTemplate renders ChatML exactly", () => {
  const tok = tinyTokenizer();
  assert.equal(tok.chatTemplate, CHATML_TEMPLATE);
  const messages = [
    { role: "system", content: "Be brief." },
    { role: "user", content: "hello" },
    { role: "assistant", content: "the world" },
  ];
  assert.equal(
    tok.applyChatTemplate(messages, { addGenerationPrompt: false }),
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\nthe world<|im_end|>\n",
  );
  assert.equal(
    tok.applyChatTemplate(messages.slice(0, 2), { addGenerationPrompt: true }),
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n",
  );
});

test("applyChatTemplate passes special token strings and picks the default named template", () => {
  const tok = tinyTokenizer({
    bos_token: { content: "<|endoftext|>" },
    chat_template: [
      { name: "tool_use", template: "TOOLS" },
      { name: "default", template: "{{ bos_token }}[{{ eos_token }}|{{ pad_token }}]{% for m in messages %}{{ m.role }}={{ m.content }};{% endfor %}{{ add_generation_prompt }}" },
    ],
  });
  assert.equal(
    tok.applyChatTemplate([{ role: "user", content: "x" }], { addGenerationPrompt: true }),
    "<|endoftext|>[<|im_end|>|<|endoftext|>]user=x;true",
  );
});

test("applyChatTemplate errors are input errors", () => {
  const none = tinyTokenizer({ chat_template: undefined });
  assert.equal(none.chatTemplate, undefined);
  assert.throws(
    () => none.applyChatTemplate([{ role: "user", content: "x" }], { addGenerationPrompt: true }),
    (e: unknown) => e instanceof ExcitorInputError && /no chat template/.test(e.message),
  );
  const strict = tinyTokenizer({
    chat_template: "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first turn must be the user') }}{% endif %}ok",
  });
  assert.equal(strict.applyChatTemplate([{ role: "user", content: "x" }], { addGenerationPrompt: false }), "ok");
  assert.throws(
    () => strict.applyChatTemplate([{ role: "assistant", content: "x" }], { addGenerationPrompt: false }),
    (e: unknown) => e instanceof ExcitorInputError && /first turn must be the user/.test(e.message),
  );
  const broken = tinyTokenizer({ chat_template: "{% for m in messages %}" });
  assert.throws(
    () => broken.applyChatTemplate([{ role: "user", content: "x" }], { addGenerationPrompt: false }),
    (e: unknown) => e instanceof ExcitorInputError,
  );
});

/** Texts of every kind the fixtures hold: sentencepiece references (byte fallback, CJK, emoji, spaces) and demo records. */
function sampleTexts(): string[] {
  const texts = [...references(cases[0]!.refs), ...references(cases[1]!.refs)].map((r) => r.text);
  const demo = fs.readFileSync(path.join(FIXTURES, "../../demo/data/train.jsonl"), "utf8").split("\n").filter(Boolean).slice(0, 40);
  for (const line of demo) {
    const r = JSON.parse(line) as { instruction: string; input: string; output: string };
    texts.push(`${r.instruction}\n\n${r.input}  ${r.output}`);
  }
  return texts;
}

const prefixCases = [
  { name: "stories260k (SentencePiece, spaces collapsed)", make: () => TextTokenizer.fromFolder(STORIES_DIR) },
  { name: "llama2 (SentencePiece, byte fallback)", make: () => TextTokenizer.fromFolder(LLAMA2_DIR) },
  { name: "demo model", make: () => TextTokenizer.fromFolder(path.join(FIXTURES, "../../demo/model")) },
  { name: "byte-level BPE", make: () => tinyTokenizer() },
];

for (const c of prefixCases) {
  test(`encodePrefix, ${c.name}: a text cut at a space encodes to the first ids of the whole text`, () => {
    const tok = c.make();
    const texts = sampleTexts();
    // The invariant encodePrefix rests on, at every place it may cut.
    for (const text of texts) {
      const whole = tok.encode(text);
      for (let b = cutAtOrAfter(text, 1); b !== undefined; b = cutAtOrAfter(text, b + 1)) {
        const part = tok.encode(text.slice(0, b));
        assert.deepEqual(part, whole.slice(0, part.length), `cut at ${b} of ${JSON.stringify(text)}`);
      }
    }
    // encodePrefix itself, on a text long enough to be cut.
    const long = texts.join(" \n ");
    const whole = tok.encode(long);
    for (const n of [1, 2, 7, 30, 100, 257, 600]) {
      const spy = spyOnEncode(tok);
      const prefix = tok.encodePrefix(long, n);
      spy.restore();
      assert.equal(prefix.complete, false);
      assert.ok(prefix.ids.length >= n, `at least ${n} ids`);
      assert.deepEqual(prefix.ids, whole.slice(0, prefix.ids.length));
      assert.ok(spy.chars() < long.length / 2, `only a prefix was tokenized (${spy.chars()} of ${long.length} characters)`);
    }
    const all = tok.encodePrefix(texts[0]!, 1_000_000, { bos: true, eos: true });
    assert.deepEqual(all, { ids: tok.encode(texts[0]!, { bos: true, eos: true }), complete: true });
  });
}

test("encodePrefix: a 5 MB text is tokenized only as far as the ids asked for", () => {
  const tok = TextTokenizer.fromFolder(LLAMA2_DIR);
  const paragraph = sampleTexts().join(" ");
  const huge = paragraph.repeat(Math.ceil(5_000_000 / paragraph.length));
  const spy = spyOnEncode(tok);
  const prefix = tok.encodePrefix(huge, 257, { bos: true });
  spy.restore();
  assert.ok(spy.chars() <= 257 * 16 * 2 + 1000, `tokenized ${spy.chars()} characters of ${huge.length}`);
  assert.deepEqual(prefix.ids.slice(0, 257), tok.encode(paragraph, { bos: true }).slice(0, 257));
});

/**
 * A Llama-2-style tokenizer (spaces become "▁", no pre-tokenizer) whose merges make "o▁w": a
 * token across the space between "hello" and "world", where a cut would change the ids.
 */
function acrossSpaceTokenizer(withAcrossMerge: boolean): TextTokenizer {
  const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  for (const ch of "▁abcdefghijklmnopqrstuvwxyz") vocab[ch] = Object.keys(vocab).length;
  const merges = [["l", "l"], ["h", "e"], ["he", "ll"], ...(withAcrossMerge ? [["o", "▁"], ["o▁", "w"]] : [])];
  for (const [a, b] of merges) vocab[a! + b!] = Object.keys(vocab).length;
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return TextTokenizer.fromJson(
    {
      version: "1.0",
      added_tokens: [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
      normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" }, { type: "Replace", pattern: { String: " " }, content: "▁" }] },
      pre_tokenizer: null,
      post_processor: null,
      decoder: { type: "Replace", pattern: { String: "▁" }, content: " " },
      model: { type: "BPE", unk_token: "<unk>", fuse_unk: true, byte_fallback: false, ignore_merges: false, vocab, merges: merges.map(([a, b]) => `${a} ${b}`) },
    },
    { bos_token: "<s>", eos_token: "</s>", add_bos_token: true },
  );
}

test("encodePrefix: a tokenizer with a token across a space is tokenized whole, so its ids stay exact", () => {
  const text = "hello world ".repeat(40).trim();
  for (const across of [true, false]) {
    const tok = acrossSpaceTokenizer(across);
    const whole = tok.encode(text);
    assert.equal(whole.some((id) => tok.idToToken(id) === "o▁w"), across);
    const spy = spyOnEncode(tok);
    const prefix = tok.encodePrefix(text, 3);
    spy.restore();
    assert.deepEqual(prefix.ids, whole.slice(0, prefix.ids.length));
    if (across) assert.deepEqual([prefix.complete, spy.chars()], [true, text.length], "no cut where a token spans the space");
    else assert.ok(!prefix.complete && spy.chars() < text.length, "cut where no token spans a space");
  }
});
