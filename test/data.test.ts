import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ExcitorInputError } from "../engine/errors";
import { Rng } from "../engine/rng";
import { readDataset, type DatasetRecord } from "../engine/data/datasets";
import { firstInvalidUtf8 } from "../engine/data/utf8";
import { encodeChatPrompt, encodeRecord, splitTrainValidation, type Example } from "../engine/data/encode";
import { alpacaPrompt } from "../engine/data/templates";
import { TextTokenizer } from "../engine/tokenizer/tokenizer";
import { readTexts } from "../engine/train/retention";
import { scoreIds } from "../engine/score";
import type { ModelRuntime } from "../engine/runtime";
import { alpacaConversationIds } from "../cli/prompt";
import { CHATML_TEMPLATE, FIXTURES, tinyByteLevelTokenizer } from "./fixtures";
import { spyOnEncode } from "./helpers/encode-spy";

const STORIES_DIR = path.join(FIXTURES, "stories260k/hf");
const stories = TextTokenizer.fromFolder(STORIES_DIR);

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "excitor-data-"));
}

/** Writes `content` to a fresh temp folder and returns the file's path. */
function writeTemp(name: string, content: string): string {
  const file = path.join(tmpDir(), name);
  fs.writeFileSync(file, content);
  return file;
}

/** The decoded text of each maximal run of target tokens. */
function targetSpans(tok: TextTokenizer, ex: Example): string[] {
  const spans: string[] = [];
  let run: number[] = [];
  ex.ids.forEach((id, t) => {
    if (ex.lossMask[t] === 1) run.push(id);
    else if (run.length > 0) {
      spans.push(tok.decode(run));
      run = [];
    }
  });
  if (run.length > 0) spans.push(tok.decode(run));
  return spans;
}

/** Asserts `fn` throws an ExcitorInputError whose message contains every fragment. */
function assertInputError(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ExcitorInputError, `expected ExcitorInputError, got ${String(e)}`);
    for (const f of fragments) assert.ok(e.message.includes(f), `"${e.message}" should contain "${f}"`);
    assert.ok(!e.message.includes("\n"), "one-line message");
    return true;
  });
}

// ---------------------------------------------------------------- templates

test("Alpaca templates are exactly the spec's", () => {
  assert.equal(
    alpacaPrompt("Give three tips.", "for staying healthy"),
    "Below is an instruction that describes a task, paired with an input that provides further context. " +
      "Write a response that appropriately completes the request.\n\n### Instruction:\nGive three tips.\n\n" +
      "### Input:\nfor staying healthy\n\n### Response:",
  );
  const without =
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" +
    "### Instruction:\nGive three tips.\n\n### Response:";
  assert.equal(alpacaPrompt("Give three tips."), without);
  assert.equal(alpacaPrompt("Give three tips.", ""), without);
  // User text is inserted literally, even when it looks like a placeholder.
  assert.ok(alpacaPrompt("use {input} and $&", "x").includes("### Instruction:\nuse {input} and $&\n\n### Input:\nx\n\n"));
});

// ---------------------------------------------------------------- encoding

const alpacaRec: DatasetRecord = {
  kind: "alpaca",
  instruction: "Tell a story about Lily.",
  input: "",
  output: "Once upon a time, there was a little girl named Lily.",
  line: 4,
};

test("Alpaca: BOS + tokens(prompt + output) + EOS, prompt tokens masked", () => {
  const ex = encodeRecord(alpacaRec, stories, 512, "data.jsonl");
  const prompt = alpacaPrompt(alpacaRec.instruction);
  const expected = [...stories.encode(prompt + alpacaRec.output, { bos: true }), 2];
  assert.deepEqual(ex.ids, expected);
  assert.equal(ex.ids[0], 1);
  assert.equal(ex.ids[ex.ids.length - 1], stories.eosIds[0]);
  const promptLen = stories.encode(prompt, { bos: true }).length;
  assert.ok(promptLen > 10 && promptLen < ex.ids.length - 1);
  assert.equal(ex.lossMask.length, ex.ids.length);
  assert.deepEqual([...ex.lossMask], ex.ids.map((_, t) => (t < promptLen ? 0 : 1)));
  assert.equal(ex.truncated, false);
  assert.equal(ex.line, 4);
  // (decoding a span drops the leading "▁" of its first piece, as sentencepiece does)
  assert.equal(targetSpans(stories, ex).join(""), alpacaRec.output + "</s>");
});

test("Alpaca with input uses the with-input template", () => {
  const rec: DatasetRecord = { ...alpacaRec, input: "a girl" };
  const ex = encodeRecord(rec, stories, 512, "data.jsonl");
  const promptLen = stories.encode(alpacaPrompt(rec.instruction, "a girl"), { bos: true }).length;
  assert.equal(ex.lossMask.indexOf(1), promptLen);
  assert.ok(stories.decode(ex.ids).includes("### Input:\na girl\n\n### Response:"));
});

test("truncation keeps maxLen tokens and reports it; a prompt filling maxLen is an input error", () => {
  const full = encodeRecord(alpacaRec, stories, 512, "data.jsonl");
  const promptLen = full.lossMask.indexOf(1);
  const cut = encodeRecord(alpacaRec, stories, promptLen + 3, "data.jsonl");
  assert.equal(cut.truncated, true);
  assert.deepEqual(cut.ids, full.ids.slice(0, promptLen + 3));
  assert.deepEqual([...cut.lossMask], [...full.lossMask.slice(0, promptLen + 3)]);
  const exact = encodeRecord(alpacaRec, stories, full.ids.length, "data.jsonl");
  assert.equal(exact.truncated, false);
  assertInputError(
    () => encodeRecord(alpacaRec, stories, promptLen - 5, "data.jsonl"),
    "data.jsonl:4:",
    `prompt is ${promptLen} tokens`,
    `max length ${promptLen - 5}`,
    "no response token left",
  );
  assertInputError(() => encodeRecord(alpacaRec, stories, promptLen, "data.jsonl"), "data.jsonl:4:", "no response token left");
  assertInputError(
    () => encodeRecord({ ...alpacaRec, line: 2, fromArray: true }, stories, 8, "data.json"),
    "data.json: record 2:",
  );
});

function tiny(configChanges: Record<string, unknown> = {}): TextTokenizer {
  const { tokenizerJson, tokenizerConfig } = tinyByteLevelTokenizer();
  return TextTokenizer.fromJson(tokenizerJson, { ...tokenizerConfig, ...configChanges });
}

const conversation: DatasetRecord = {
  kind: "chat",
  line: 9,
  messages: [
    { role: "system", content: "the rules" },
    { role: "user", content: "hello" },
    { role: "assistant", content: "hello the world" },
    { role: "user", content: "the world?" },
    { role: "assistant", content: "world 🦙" },
  ],
};

test("chat template: exactly the assistant turns (and their end marker) are targets", () => {
  const tok = tiny();
  const ex = encodeRecord(conversation, tok, 512, "chat.jsonl");
  const rendered = tok.applyChatTemplate(conversation.messages, { addGenerationPrompt: false });
  assert.deepEqual(ex.ids, tok.encode(rendered));
  assert.equal(tok.decode(ex.ids), rendered);
  assert.deepEqual(targetSpans(tok, ex), ["hello the world<|im_end|>\n", "world 🦙<|im_end|>\n"]);
  // Nothing of the system/user turns or of the assistant headers is a target.
  const header = tok.encode("<|im_start|>assistant\n");
  const firstTarget = ex.lossMask.indexOf(1);
  assert.deepEqual(ex.ids.slice(firstTarget - header.length, firstTarget), header);
  assert.ok(!tok.decode(ex.ids.slice(0, firstTarget)).includes("hello the world"));
  const targets = ex.lossMask.reduce((a, b) => a + b, 0);
  assert.equal(targets, tok.encode("hello the world<|im_end|>\n").length + tok.encode("world 🦙<|im_end|>\n").length);
  assert.equal(ex.line, 9);
  // The generation prompt for the next turn is the rendered text with the assistant header.
  assert.deepEqual(
    encodeChatPrompt(conversation.messages.slice(0, 2), tok),
    tok.encode(tok.applyChatTemplate(conversation.messages.slice(0, 2), { addGenerationPrompt: true })),
  );
});

test("chat template: BOS is prepended only when the template does not write it", () => {
  const base = JSON.parse(fs.readFileSync(path.join(STORIES_DIR, "tokenizer.json"), "utf8")) as object;
  const config = JSON.parse(fs.readFileSync(path.join(STORIES_DIR, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
  const llama2Style =
    "{% for m in messages %}{% if m['role'] == 'user' %}{{ bos_token + '[INST] ' + m['content'] + ' [/INST]' }}" +
    "{% else %}{{ ' ' + m['content'] + ' ' + eos_token }}{% endif %}{% endfor %}";
  const rec: DatasetRecord = {
    kind: "chat",
    line: 1,
    messages: [
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Lily was happy." },
    ],
  };
  const withBos = TextTokenizer.fromJson(base, { ...config, chat_template: llama2Style });
  const ex = encodeRecord(rec, withBos, 512, "d.jsonl");
  assert.equal(ex.ids[0], 1);
  assert.notEqual(ex.ids[1], 1, "no double BOS");
  assert.equal(ex.ids[ex.ids.length - 1], 2);
  // (this tokenizer's normalizer drops the space before </s>, like sentencepiece's remove_extra_whitespaces)
  assert.deepEqual(targetSpans(withBos, ex), ["Lily was happy.</s>"]);

  const noBosInText = TextTokenizer.fromJson(base, { ...config, chat_template: llama2Style.replace("bos_token + ", "") });
  const ex2 = encodeRecord(rec, noBosInText, 512, "d.jsonl");
  assert.deepEqual(ex2.ids, ex.ids, "add_bos_token puts the BOS the template left out");
});

test("no chat template: a single turn trains exactly like Alpaca; longer chats use ### blocks", () => {
  const single: DatasetRecord = {
    kind: "chat",
    line: 4,
    messages: [
      { role: "user", content: alpacaRec.instruction },
      { role: "assistant", content: alpacaRec.output },
    ],
  };
  const a = encodeRecord(alpacaRec, stories, 512, "d.jsonl");
  const c = encodeRecord(single, stories, 512, "d.jsonl");
  assert.deepEqual(c.ids, a.ids);
  assert.deepEqual([...c.lossMask], [...a.lossMask]);
  assert.deepEqual(encodeChatPrompt(single.messages.slice(0, 1), stories), stories.encode(alpacaPrompt(alpacaRec.instruction), { bos: true }));

  const ex = encodeRecord(conversation, stories, 512, "d.jsonl");
  assert.equal(ex.ids[0], 1);
  assert.deepEqual(targetSpans(stories, ex), ["hello the world</s>", "world 🦙</s>"]);
  assert.equal(
    stories.decode(ex.ids, { skipSpecial: true }),
    // Each chunk is tokenized on its own, so sentencepiece puts "▁" before the second one.
    "the rules\n\n### User:\nhello\n\n### Assistant:\nhello the world" + " ### User:\nthe world?\n\n### Assistant:\nworld 🦙",
  );
  const prompt = encodeChatPrompt([...conversation.messages, { role: "user", content: "Bye" }], stories);
  assert.deepEqual(prompt.slice(0, ex.ids.length), ex.ids);
  assert.equal(stories.decode(prompt.slice(ex.ids.length)), "### User:\nBye\n\n### Assistant:\n");
});

// ---------------------------------------------------------------- datasets

test("reads Alpaca JSONL, chat JSONL and ShareGPT with line numbers, skipping blank lines", () => {
  const file = writeTemp(
    "mixed.jsonl",
    "\uFEFF" +
      [
        JSON.stringify({ instruction: "Say hi", output: "Hi" }),
        "",
        JSON.stringify({ instruction: "Add", input: "1+1", output: "2" }),
        "   ",
        JSON.stringify({ messages: [{ role: "user", content: "a" }, { role: "assistant", content: "b" }] }),
        JSON.stringify({
          conversations: [
            { from: "system", value: "s" },
            { from: "human", value: "q" },
            { from: "gpt", value: "r" },
            { from: "User", value: "q2" },
            { from: "model", value: "r2" },
            { from: "assistant", value: "r3" },
          ],
        }),
      ].join("\r\n") +
      "\n",
  );
  const recs = readDataset(file);
  assert.deepEqual(recs, [
    { kind: "alpaca", instruction: "Say hi", input: "", output: "Hi", line: 1 },
    { kind: "alpaca", instruction: "Add", input: "1+1", output: "2", line: 3 },
    { kind: "chat", messages: [{ role: "user", content: "a" }, { role: "assistant", content: "b" }], line: 5 },
    {
      kind: "chat",
      line: 6,
      messages: [
        { role: "system", content: "s" },
        { role: "user", content: "q" },
        { role: "assistant", content: "r" },
        { role: "user", content: "q2" },
        { role: "assistant", content: "r2" },
        { role: "assistant", content: "r3" },
      ],
    },
  ]);
});

test("reads a JSON array; records are numbered and errors say 'record N'", () => {
  const file = writeTemp(
    "alpaca.json",
    JSON.stringify([{ instruction: "a", input: null, output: "b" }, { messages: [{ role: "assistant", content: "c" }] }], null, 2),
  );
  const recs = readDataset(file);
  assert.deepEqual(recs, [
    { kind: "alpaca", instruction: "a", input: "", output: "b", line: 1, fromArray: true },
    { kind: "chat", messages: [{ role: "assistant", content: "c" }], line: 2, fromArray: true },
  ]);
  const bad = writeTemp("bad.json", JSON.stringify([{ instruction: "a", output: "b" }, { instruction: "a", output: "" }]));
  assertInputError(() => readDataset(bad), "bad.json: record 2:", '"output" is missing or empty');
  const broken = writeTemp("broken.json", '[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "a",, "output": "b"}\n]');
  assertInputError(() => readDataset(broken), "broken.json:3:", "malformed JSON");
  assertInputError(() => readDataset(writeTemp("empty.json", " [ ] ")), "empty.json: dataset is empty");
});

test("dataset errors name the file, the line and the field", () => {
  const cases: Array<{ lines: string[]; fragments: string[] }> = [
    { lines: ['{"instruction": "a", "output": "b"}', '{"instruction": "a", "output": }'], fragments: [":2:", "malformed JSON"] },
    { lines: ['{"instruction": "a", "output": "b"}', "", "[1, 2]"], fragments: [":3:", "not a JSON object", "array"] },
    { lines: ['"just a string"'], fragments: [":1:", "not a JSON object", "string"] },
    { lines: ['{"prompt": "a", "completion": "b"}'], fragments: [":1:", "unknown record shape", "prompt, completion"] },
    { lines: ['{"instruction": "a", "output": 5}'], fragments: [":1:", '"output" must be a string', "number"] },
    { lines: ['{"instruction": ["a"], "output": "b"}'], fragments: [":1:", '"instruction" must be a string', "array"] },
    { lines: ['{"instruction": "a", "input": 3, "output": "b"}'], fragments: [":1:", '"input" must be a string'] },
    { lines: ['{"output": "b"}'], fragments: [":1:", '"instruction" is missing'] },
    { lines: ["", '{"instruction": "a"}'], fragments: [":2:", "no response", '"output" is missing or empty'] },
    { lines: ['{"instruction": "a", "output": "   "}'], fragments: [":1:", "no response"] },
    { lines: ['{"messages": "hi"}'], fragments: [":1:", '"messages" must be an array'] },
    { lines: ['{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": 7}]}'], fragments: [":1:", '"messages[1].content" must be a string'] },
    { lines: ['{"messages": [{"content": "a"}]}'], fragments: [":1:", '"messages[0].role" must be a string'] },
    { lines: ['{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}]}'], fragments: [":1:", "no response", "assistant"] },
    { lines: ['{"conversations": [{"from": "human", "value": "a"}]}'], fragments: [":1:", "no response", "conversations"] },
    { lines: ['{"conversations": [{"from": "bot", "value": "a"}]}'], fragments: [":1:", '"conversations[0].from" is "bot"'] },
    { lines: ['{"conversations": [{"from": "gpt", "value": null}]}'], fragments: [":1:", '"conversations[0].value" must be a string', "null"] },
    { lines: ['{"conversations": [5]}'], fragments: [":1:", '"conversations[0]" must be an object'] },
    { lines: ['{"conversations": []}'], fragments: [":1:", '"conversations" is an empty list'] },
    // Chat roles are checked as ShareGPT's are: a template would render "bot" or "User" as they stand.
    { lines: ['{"instruction": "a", "output": "b"}', '{"messages": [{"role": "bot", "content": "a"}, {"role": "assistant", "content": "b"}]}'], fragments: [":2:", '"messages[0].role" is "bot"', "expected one of system, user, assistant, tool"] },
    { lines: ['{"messages": [{"role": "User", "content": "a"}, {"role": "assistant", "content": "b"}]}'], fragments: [":1:", '"messages[0].role" is "User"'] },
    { lines: ['{"messages": [{"role": "user"}, {"role": "assistant", "content": "b"}]}'], fragments: [":1:", '"messages[0].content" must be a string, but it is missing'] },
    { lines: ['{"messages": [{"role": "user", "content": "a"}, {"content": "b"}]}'], fragments: [":1:", '"messages[1].role" must be a string, but it is missing'] },
    { lines: ['{"messages": [{"role": "user", "content": "a"}, null]}'], fragments: [":1:", '"messages[1]" must be an object', "null"] },
    { lines: ['{"messages": []}'], fragments: [":1:", '"messages" is an empty list'] },
  ];
  for (const c of cases) {
    const file = writeTemp("data.jsonl", c.lines.join("\n"));
    assertInputError(() => readDataset(file), file, ...c.fragments);
    try {
      readDataset(file);
    } catch (e) {
      assert.ok(e instanceof ExcitorInputError);
      assert.equal(e.file, file);
      assert.equal(e.line, Number(c.fragments[0]?.slice(1, -1)));
    }
  }
});

test("bytes that are not UTF-8 are an error naming the file and line; a byte order mark and any valid text are read", () => {
  const dir = tmpDir();
  try {
    const write = (name: string, ...parts: (string | number[])[]): string => {
      const file = path.join(dir, name);
      fs.writeFileSync(file, Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(p)))));
      return file;
    };
    const ok = '{"instruction": "a", "output": "b"}\n';
    // Latin-1 "café" on line 3, a stray byte in a JSON array's second line, a sequence cut off at the end of the file.
    const latin1 = write("latin1.jsonl", ok, ok, '{"instruction": "caf', [0xe9], '", "output": "b"}\n');
    assertInputError(() => readDataset(latin1), `${latin1}:3:`, "not UTF-8", "0xE9");
    const array = write("array.json", '[\n  {"instruction": "a", "output": "b', [0xff], '"}\n]');
    assertInputError(() => readDataset(array), `${array}:2:`, "0xFF");
    assertInputError(() => readDataset(write("cut.jsonl", ok, '{"instruction": "a", "output": "', [0xe2, 0x82])), "cut.jsonl:2:", "0xE2");
    // Overlong forms and UTF-16 surrogates are not UTF-8 either.
    assertInputError(() => readDataset(write("overlong.jsonl", '{"instruction": "', [0xc0, 0xaf], '", "output": "b"}')), "overlong.jsonl:1:", "0xC0");
    assertInputError(() => readDataset(write("surrogate.jsonl", ok, ok, ok, '{"instruction": "', [0xed, 0xa0, 0x80], '", "output": "b"}')), "surrogate.jsonl:4:", "0xED");
    try {
      readDataset(latin1);
    } catch (e) {
      assert.ok(e instanceof ExcitorInputError);
      assert.deepEqual([e.file, e.line], [latin1, 3]);
    }
    // The offset the line is counted to is where a strict decoder first fails, on any bytes.
    const rng = new Rng(11);
    for (let n = 0; n < 3000; n++) {
      const bytes = Uint8Array.from({ length: 1 + rng.int(8) }, () => [0x41, 0x80, 0xbf, 0xc2, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0x9f, 0xa0][rng.int(12)] as number);
      const at = firstInvalidUtf8(bytes);
      const strict = (b: Uint8Array): boolean => {
        try {
          new TextDecoder("utf-8", { fatal: true }).decode(b);
          return true;
        } catch {
          return false;
        }
      };
      assert.equal(at === -1, strict(bytes), `${[...bytes]}`);
      if (at >= 0) assert.ok(strict(bytes.subarray(0, at)), `${[...bytes]}: all before ${at} is valid`);
    }
    const bom = write("bom.jsonl", [0xef, 0xbb, 0xbf], '{"instruction": "café 日本 🙂 \uFFFD", "output": "b"}\n');
    assert.deepEqual(readDataset(bom), [{ kind: "alpaca", instruction: "café 日本 🙂 \uFFFD", input: "", output: "b", line: 1 }]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("missing file and empty dataset", () => {
  const dir = tmpDir();
  const missing = path.join(dir, "nope.jsonl");
  assertInputError(() => readDataset(missing), missing, "file not found");
  assertInputError(() => readDataset(dir), dir, "folder");
  const blank = writeTemp("blank.jsonl", "\n  \n\n");
  assertInputError(() => readDataset(blank), `${blank}: dataset is empty`);
  assertInputError(() => readDataset(writeTemp("zero.jsonl", "")), "zero.jsonl: dataset is empty");
});

test("encoding errors from a dataset name the file and line", () => {
  const file = writeTemp("long.jsonl", ["", "", JSON.stringify({ instruction: "x ".repeat(200), output: "ok" })].join("\n"));
  const [rec] = readDataset(file);
  assert.ok(rec);
  assertInputError(() => encodeRecord(rec, stories, 64, file), `${file}:3:`, "max length 64");
  const strict = tiny({ chat_template: "{{ raise_exception('roles must alternate') }}" });
  assertInputError(() => encodeRecord(conversation, strict, 512, "c.jsonl"), "c.jsonl:9:", "roles must alternate");
});

// ---------------------------------------------------------------- long records

/** Demo records and longer ones made of them, of every kind: Alpaca, text, chat with and without a template. */
function longAndShortRecords(): DatasetRecord[] {
  const demo = readDataset(path.join(FIXTURES, "../../demo/data/train.jsonl")).slice(0, 12) as Extract<DatasetRecord, { kind: "alpaca" }>[];
  const story = demo.map((r) => `${r.input} ${r.output}`).join("\n\n");
  const recs: DatasetRecord[] = [...demo];
  demo.slice(0, 4).forEach((r, i) => {
    recs.push({ ...r, output: `${r.output} ${story}` });
    recs.push({ kind: "text", text: story.slice(i * 100), line: i });
    recs.push({
      kind: "chat",
      line: i,
      messages: [
        { role: "system", content: r.instruction },
        { role: "user", content: r.input },
        { role: "assistant", content: story.slice(0, 700 * (i + 1)) },
        { role: "user", content: "And then?" },
        { role: "assistant", content: story },
      ],
    });
  });
  return recs;
}

/** A huge max length leaves nothing to cut: the whole record is tokenized, as before prefixes existed. */
const WHOLE = 10_000_000;

test("encodeRecord keeps exactly the ids and mask of the whole record's tokens, cut to max length", () => {
  const chatml = tiny({ chat_template: CHATML_TEMPLATE });
  for (const tok of [stories, chatml]) {
    let cut = 0;
    for (const rec of longAndShortRecords()) {
      const wholeSpy = spyOnEncode(tok);
      const whole = encodeRecord(rec, tok, WHOLE, "d.jsonl");
      wholeSpy.restore();
      const promptLen = whole.lossMask.indexOf(1);
      for (const maxLen of [promptLen + 1, promptLen + 7, 64, 200, 513, whole.ids.length, whole.ids.length + 1]) {
        if (maxLen <= promptLen || maxLen < 2) continue;
        const spy = spyOnEncode(tok);
        const ex = encodeRecord(rec, tok, maxLen, "d.jsonl");
        spy.restore();
        const n = Math.min(maxLen, whole.ids.length);
        assert.deepEqual(ex.ids, whole.ids.slice(0, n), `${rec.kind} record, max length ${maxLen}`);
        assert.deepEqual([...ex.lossMask], [...whole.lossMask.slice(0, n)], `${rec.kind} record, max length ${maxLen}`);
        assert.equal(ex.truncated, whole.ids.length > maxLen);
        if (spy.chars() < wholeSpy.chars()) cut++;
      }
    }
    assert.ok(cut >= 10, `only ${cut} records were tokenized in part`);
  }
});

test("a 5 MB record is encoded from a prefix: the tokenizer sees a few thousand characters, the ids are the whole record's", () => {
  const chatml = tiny({ chat_template: CHATML_TEMPLATE });
  const story = "Once upon a time, there was a little girl named Lily. She liked to play in the park with her red ball. ";
  const huge = story.repeat(Math.ceil(5_000_000 / story.length));
  const normal = story.repeat(40); // starts like the huge text, long enough for 256 tokens
  const cases: Array<[TextTokenizer, (text: string) => DatasetRecord]> = [
    [stories, (output) => ({ ...alpacaRec, output })],
    [stories, (text) => ({ kind: "text", text, line: 1 })],
    [chatml, (text) => ({ kind: "text", text, line: 1 })],
    [stories, (content) => ({ ...conversation, messages: [...conversation.messages.slice(0, 4), { role: "assistant", content }] })],
    [chatml, (content) => ({ ...conversation, messages: [{ role: "user", content: "hi" }, { role: "assistant", content }, ...conversation.messages] })],
  ];
  for (const [tok, record] of cases) {
    const spy = spyOnEncode(tok);
    const ex = encodeRecord(record(huge), tok, 256, "big.jsonl");
    spy.restore();
    // Each sequence encodeRecord tokenizes (at most one per message and a few more) stops near 257 tokens × the longest token.
    assert.ok(spy.chars() < 100_000, `the tokenizer saw ${spy.chars()} characters of a ${huge.length}-character record`);
    assert.equal(ex.truncated, true);
    const reference = encodeRecord(record(normal), tok, 256, "big.jsonl");
    assert.deepEqual(ex.ids, reference.ids);
    assert.deepEqual([...ex.lossMask], [...reference.lossMask]);
  }
  // A prompt of 5 MB is reported as too long without tokenizing it whole.
  const spy = spyOnEncode(stories);
  assertInputError(() => encodeRecord({ ...alpacaRec, instruction: huge }, stories, 256, "big.jsonl"), "big.jsonl:4:", "prompt is more than 256 tokens", "max length 256");
  spy.restore();
  assert.ok(spy.chars() < 100_000);
});

test("texts of hundreds of thousands of tokens or paragraphs do not overflow the call stack", async () => {
  const tok = tiny();
  // Some 200,000 byte tokens: the tiny tokenizer merges none of these characters.
  const message = "xq".repeat(100_000);
  const ids = alpacaConversationIds([{ role: "user", content: message }, { role: "assistant", content: "ok" }, { role: "user", content: "and?" }], tok);
  assert.ok(ids.length > 200_000);
  const rt = { config: { maxPositions: 300_000 }, tokenLogprobs: async (part: number[]) => new Float32Array(part.length - 1) };
  const scored = await scoreIds(rt as unknown as ModelRuntime, ids, false);
  assert.equal(scored.logprobs.length, ids.length - 1);
  const dir = tmpDir();
  try {
    const file = path.join(dir, "paragraphs.txt");
    fs.writeFileSync(file, "a paragraph\n\n".repeat(200_000));
    assert.equal(readTexts(file, "--retain").length, 200_000);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------- rng and split

test("Rng: same seed same sequence, different seeds differ, values in range", () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const seqA = Array.from({ length: 100 }, () => a.next());
  assert.deepEqual(Array.from({ length: 100 }, () => b.next()), seqA);
  for (const x of seqA) assert.ok(x >= 0 && x < 1);
  assert.notDeepEqual(Array.from({ length: 5 }, () => new Rng(43).next()), seqA.slice(0, 5));
  assert.notEqual(new Rng(0).next(), new Rng(1).next());
  const r = new Rng(7);
  const ints = Array.from({ length: 1000 }, () => r.int(6));
  for (const i of ints) assert.ok(Number.isInteger(i) && i >= 0 && i < 6);
  assert.equal(new Set(ints).size, 6);
  assert.throws(() => r.int(0), RangeError);
  assert.throws(() => new Rng(Number.NaN), RangeError);
});

test("Rng: normal() has mean 0 and variance 1", () => {
  const r = new Rng(3);
  const n = 20000;
  const xs = Array.from({ length: n }, () => r.normal());
  const mean = xs.reduce((s, x) => s + x, 0) / n;
  const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / n;
  assert.ok(Math.abs(mean) < 0.03, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 0.05, `variance ${variance}`);
  for (const x of xs) assert.ok(Number.isFinite(x));
});

test("Rng: state() / fromState() continue the same sequence", () => {
  const r = new Rng(123);
  r.next();
  r.normal();
  r.int(10);
  const s = r.state();
  assert.ok(Number.isInteger(s) && s >= 0 && s <= 0xffffffff);
  const r2 = Rng.fromState(JSON.parse(JSON.stringify(s)) as number);
  const draw = (g: Rng) => [g.next(), g.normal(), g.int(1000), g.normal(), g.next()];
  assert.deepEqual(draw(r2), draw(r));
  assert.equal(r2.state(), r.state());
  assert.throws(() => Rng.fromState(-1), RangeError);
  assert.throws(() => Rng.fromState(1.5), RangeError);
});

test("Rng: shuffle is a seeded permutation", () => {
  const items = Array.from({ length: 50 }, (_, i) => i);
  const s1 = new Rng(5).shuffle(items.slice());
  const s2 = new Rng(5).shuffle(items.slice());
  assert.deepEqual(s1, s2);
  assert.notDeepEqual(s1, items);
  assert.deepEqual(s1.slice().sort((a, b) => a - b), items);
  const arr = [1, 2, 3];
  assert.equal(new Rng(1).shuffle(arr), arr, "shuffles in place");
});

test("splitTrainValidation: deterministic, sized by share, train never empty", () => {
  const items = Array.from({ length: 40 }, (_, i) => `r${i}`);
  const a = splitTrainValidation(items, 0.1, 17);
  const b = splitTrainValidation(items, 0.1, 17);
  assert.deepEqual(a, b);
  assert.equal(a.validation.length, 4);
  assert.equal(a.train.length, 36);
  assert.deepEqual([...a.train, ...a.validation].sort(), items.slice().sort());
  // Both parts keep file order.
  const idx = (s: string) => Number(s.slice(1));
  assert.deepEqual(a.validation.map(idx), a.validation.map(idx).sort((x, y) => x - y));
  assert.notDeepEqual(splitTrainValidation(items, 0.1, 18).validation, a.validation);
  assert.notDeepEqual(a.validation, items.slice(0, 4), "validation is a random pick, not the head");

  assert.equal(splitTrainValidation(items.slice(0, 10), 0.25, 1).validation.length, 3); // round(2.5)
  assert.equal(splitTrainValidation(items.slice(0, 10), 0.01, 1).validation.length, 1); // at least one
  assert.deepEqual(
    [splitTrainValidation(items.slice(0, 5), 0.99, 1).train.length, splitTrainValidation(items.slice(0, 5), 0.99, 1).validation.length],
    [1, 4],
  );
  const two = splitTrainValidation(["x", "y"], 0.5, 3);
  assert.equal(two.train.length, 1);
  assert.equal(two.validation.length, 1);
  assert.deepEqual(splitTrainValidation(["x"], 0.5, 3), { train: ["x"], validation: [] });
  assert.deepEqual(splitTrainValidation(items, 0, 3), { train: items, validation: [] });
  assertInputError(() => splitTrainValidation(items, 1, 3), "validation share");
  assertInputError(() => splitTrainValidation(items, -0.1, 3), "validation share");
});
