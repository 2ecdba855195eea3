/**
 * `excitor serve` against hostile stdin, as an editor (or a bug in one) could send it: whatever a
 * line holds, the engine answers it with one `error` event (carrying the line's id when it has a
 * usable one), keeps the generation in flight, writes only JSON on stdout and keeps serving.
 * A deterministic fuzz run (seeded mutations of valid requests) and one test per case that once
 * killed the process or was silently accepted.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { Rng } from "../engine/rng";
import { tempDir, writeTinyModel } from "./helpers/tiny-model";

const REPO = path.resolve(__dirname, "../..");
const MODEL = path.join(REPO, "demo/model");
/** A guard against a hang, not a measured time: a failing run ends here rather than never. */
const GUARD = { timeout: 180_000 };

type Event = { type: string; id?: number; message?: string; text?: string; finishReason?: string; tokens?: number; [k: string]: unknown };

/** One `excitor serve` process on the demo model, with its stdout read as events. */
class Serve {
  readonly events: Event[] = [];
  readonly notJson: string[] = [];
  private readonly child: ChildProcess;
  private readonly waiters: (() => void)[] = [];
  private exit: number | string | null | undefined = undefined;
  readonly closed: Promise<number | string | null>;

  constructor(model: string) {
    this.child = spawn(process.execPath, [path.join(REPO, "dist/bundle/excitor.js"), "serve", "--model", model], { stdio: ["pipe", "pipe", "pipe"] });
    let buf = "";
    this.child.stdout!.setEncoding("utf8");
    this.child.stdout!.on("data", (d: string) => {
      buf += d;
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          this.events.push(JSON.parse(line) as Event);
        } catch {
          this.notJson.push(line);
        }
      }
      this.wake();
    });
    this.child.stderr!.resume();
    this.closed = new Promise((resolve) =>
      this.child.on("close", (code, signal) => {
        this.exit = signal ?? code;
        this.wake();
        resolve(this.exit);
      }),
    );
    this.child.stdin!.on("error", () => {}); // writes after a crash must not fail the test runner itself
  }

  send(line: string | object): void {
    this.child.stdin!.write((typeof line === "string" ? line : JSON.stringify(line)) + "\n");
  }

  /** The first event that satisfies `pred` (already seen or still to come); rejects if the process ends first. */
  async next(pred: (e: Event) => boolean, what: string): Promise<Event> {
    for (;;) {
      const found = this.events.find(pred);
      if (found) return found;
      if (this.exit !== undefined) throw new Error(`the engine ended (${this.exit}) before ${what}; stdout: ${JSON.stringify(this.events).slice(-400)}`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  done(id: number): Promise<Event> {
    return this.next((e) => e.id === id && (e.type === "done" || e.type === "error" || e.type === "attention"), `the answer to request ${id}`);
  }

  /** Ends stdin and returns the exit code. */
  async end(): Promise<number | string | null> {
    this.child.stdin!.end();
    return this.closed;
  }

  kill(): void {
    if (this.exit === undefined) this.child.kill();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

async function withServe(body: (s: Serve) => Promise<void>, model = MODEL): Promise<void> {
  const s = new Serve(model);
  try {
    await s.next((e) => e.type === "ready", "ready");
    await body(s);
    assert.deepEqual(s.notJson, [], "stdout holds only JSON lines");
  } finally {
    s.kill();
  }
}

const user = (content: string) => [{ role: "user", content }];
const GEN = { op: "generate", messages: user("Tell me a story."), template: "alpaca", useAdapter: false, temperature: 0, topP: 1, maxTokens: 20 };

/** After the case under test: a valid request is still answered, and end of input ends the process cleanly. */
async function stillServes(s: Serve, id: number): Promise<void> {
  s.send({ id, ...GEN, maxTokens: 3 });
  const e = await s.done(id);
  assert.equal(e.type, "done", `a valid request after the bad ones is answered: ${JSON.stringify(e)}`);
  assert.equal(await s.end(), 0);
}

// ------------------------------------------------------------------ the cases one by one

test("a `null` line while a generation runs: an error without id, and the generation completes", GUARD, async () => {
  await withServe(async (s) => {
    s.send({ id: 1, ...GEN, maxTokens: 60 });
    await s.next((e) => e.id === 1 && e.type === "text", "the first streamed text");
    s.send("null");
    const err = await s.next((e) => e.type === "error" && e.id === undefined, "the error for `null`");
    assert.match(err.message!, /expected a request object .*got null/);
    assert.equal((await s.done(1)).type, "done");
    await stillServes(s, 2);
  });
});

test("generate without maxTokens gets the default budget, not an empty answer", GUARD, async () => {
  await withServe(async (s) => {
    const { maxTokens: _, ...noBudget } = GEN;
    s.send({ id: 1, ...noBudget });
    const e = await s.done(1);
    assert.equal(e.type, "done", JSON.stringify(e));
    assert.ok((e.tokens as number) > 0 && (e.text as string).length > 0, `an answer: ${JSON.stringify(e)}`);
  });
});

test("an answer budget past the model's context is answered as far as the context goes, not refused", GUARD, async () => {
  // The editor's setting (up to 8192) is not tied to one model; the demo model's context is 256.
  await withServe(async (s) => {
    s.send({ id: 1, ...GEN, maxTokens: 5000 });
    const e = await s.done(1);
    assert.equal(e.type, "done", JSON.stringify(e));
    assert.ok((e.tokens as number) + (e.promptTokens as number) <= 256, JSON.stringify(e));
  });
});

/** Requests that must be refused, with the field the message must name. */
const REFUSED: [string, object, RegExp][] = [
  ["attention without prompt", { op: "attention", template: "alpaca", response: " Tom" }, /^attention\.prompt: missing, expected a non-empty string$/],
  ["attention with an empty prompt", { op: "attention", prompt: "  ", template: "alpaca", response: " Tom" }, /^attention\.prompt: expected a non-empty string, got "  "$/],
  ["template \"bogus\"", { ...GEN, template: "bogus" }, /^generate\.template: expected "chat" or "alpaca", got "bogus"$/],
  ["temperature \"hot\"", { ...GEN, temperature: "hot" }, /^generate\.temperature: expected a number between 0 and 5, got "hot"$/],
  ["useAdapter \"no\"", { ...GEN, useAdapter: "no" }, /^generate\.useAdapter: expected true or false, got "no"$/],
  ["an unknown role", { ...GEN, messages: [{ role: "wizard", content: "hi" }] }, /^generate\.messages\[0\]\.role: expected .*"user".*, got "wizard"$/],
  ["empty messages", { ...GEN, messages: [] }, /^generate\.messages: expected a non-empty list of messages/],
];

for (const [name, req, why] of REFUSED) {
  test(`${name}: an error naming the field, with the request's id, and the engine goes on`, GUARD, async () => {
    await withServe(async (s) => {
      s.send({ id: 5, ...req });
      const e = await s.done(5);
      assert.equal(e.type, "error", `refused: ${JSON.stringify(e).slice(0, 200)}`);
      assert.match(e.message!, why);
      assert.equal(s.events.filter((x) => x.id === 5).length, 1, "exactly one event answers it");
      await stillServes(s, 6);
    });
  });
}

/**
 * The tiny test model with a context of 8192 and no end-of-text token: a generation there runs
 * until it is stopped (or 8000 tokens), so a stop sent after a huge line is sure to find it running.
 */
function endlessModel(): string {
  const dir = writeTinyModel(path.join(tempDir("excitor-serve-fuzz-"), "endless"), { layers: 1 });
  const edit = (file: string, change: (text: string) => string) => fs.writeFileSync(path.join(dir, file), change(fs.readFileSync(path.join(dir, file), "utf8")));
  edit("config.json", (t) => JSON.stringify({ ...JSON.parse(t), max_position_embeddings: 8192 }));
  edit("tokenizer.json", (t) => t.replaceAll('"</s>"', '"<sep>"'));
  edit("tokenizer_config.json", (t) => JSON.stringify({ ...JSON.parse(t), eos_token: undefined }));
  return dir;
}

test("text the tokenizer maps past the model's vocabulary is an error naming the token, for generate and attention", GUARD, async () => {
  // A tokenizer with a token (id 5000) past the weights' 334 rows, as when a tokenizer gained tokens its model never did.
  const dir = writeTinyModel(path.join(tempDir("excitor-serve-fuzz-"), "small-vocab"), { layers: 1 });
  const tokFile = path.join(dir, "tokenizer.json");
  const tok = JSON.parse(fs.readFileSync(tokFile, "utf8"));
  tok.added_tokens.push({ id: 5000, content: "hello", single_word: false, lstrip: false, rstrip: false, normalized: false, special: false });
  fs.writeFileSync(tokFile, JSON.stringify(tok));
  await withServe(async (s) => {
    s.send({ id: 1, ...GEN, messages: user("hello") });
    const e = await s.done(1);
    assert.equal(e.type, "error", JSON.stringify(e));
    assert.match(e.message!, /^generate\.messages: the tokenizer gives token ".+" the id \d+, outside the model's vocabulary \(0\.\.333; vocab_size in config\.json\)$/);
    s.send({ id: 2, op: "attention", prompt: "hello", response: "x", template: "none" });
    const a = await s.done(2);
    assert.equal(a.type, "error", JSON.stringify(a).slice(0, 200));
    assert.match(a.message!, /^attention\.prompt: the tokenizer gives token/);
  }, dir);
});

test("a 5 MB prompt is refused at once while a generation runs, and a stop sent after it still stops that generation", GUARD, async () => {
  await withServe(async (s) => {
    s.send({ id: 1, ...GEN, temperature: 1, seed: 5, maxTokens: 8000 });
    await s.next((e) => e.id === 1 && e.type === "text", "the first streamed text");
    s.send({ id: 2, ...GEN, messages: user("x".repeat(5_000_000)) });
    s.send({ id: 3, op: "stop", target: 1 });
    const refused = await s.done(2);
    assert.equal(refused.type, "error");
    assert.match(refused.message!, /^generate\.messages: .*5000000 characters cannot fit the model's context of 8192 tokens/);
    const gen = await s.done(1);
    assert.equal(gen.finishReason, "aborted", "the stop reached the generation");
    assert.ok(s.events.indexOf(refused) < s.events.indexOf(gen), "the refusal did not wait for the generation (it was neither queued nor tokenized)");
    await stillServes(s, 4);
  }, endlessModel());
});

// ------------------------------------------------------------------ fuzz

interface Case {
  line: string;
  /** The id its error must carry; undefined: the error must carry none. */
  id?: number;
}

/** Wrong values of every kind, JSON-representable; none fits a number, flag, list or choice field. */
const JUNK: unknown[] = [null, "", "NaN", "Infinity", "-Infinity", "1e999", "0x10", " 3", "hot", [], [1, 2], {}, { a: 1 }, [[[[]]]]];
/** Fields that take any string: junk for them is anything but a string. */
const TEXT_FIELDS = ["prompt", "response", "input"];
const BAD_NUMBERS: Record<string, unknown[]> = {
  temperature: [-1, -1e-9, 5.5, 1e309 /* JSON turns it into null */, "0.5", true],
  topP: [0, -0.1, 1.0001, 1e300, "1"],
  maxTokens: [0, -5, 1.5, 2 ** 20 + 1, 1e308, 2 ** 53, "20"],
  seed: [-1, 0.5, 2 ** 32, 1e300, "7"],
};

function fuzzCases(rng: Rng, firstId: number, count: number): Case[] {
  const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)] as T;
  const cases: Case[] = [];
  let nextId = firstId;
  const valid = (): Record<string, unknown> => {
    const kind = rng.int(3);
    if (kind === 0) return { id: nextId++, ...GEN, seed: rng.int(1000) };
    if (kind === 1) return { id: nextId++, op: "attention", prompt: "Name a cat.", response: " Tom", template: "alpaca" };
    return { id: nextId++, op: "stop", target: rng.int(10) };
  };
  const withId = (r: Record<string, unknown>): Case => ({ line: JSON.stringify(r), id: r.id as number });
  const mutations: (() => Case)[] = [
    // a required field removed
    () => {
      const r = valid();
      delete r[r.op === "generate" ? "messages" : r.op === "attention" ? "prompt" : "target"];
      return withId(r);
    },
    () => {
      const r = valid();
      delete r.op;
      return withId(r);
    },
    // a field of the wrong type (every field but id)
    () => {
      const r = valid();
      const key = pick(Object.keys(r).filter((k) => k !== "id"));
      r[key] = pick(TEXT_FIELDS.includes(key) ? JUNK.filter((j) => typeof j !== "string") : JUNK);
      return withId(r);
    },
    // numbers out of range, huge, or spelled as strings
    () => {
      const r = { id: nextId++, ...GEN } as Record<string, unknown>;
      const k = pick(Object.keys(BAD_NUMBERS));
      r[k] = pick(BAD_NUMBERS[k] as unknown[]);
      return withId(r);
    },
    // unknown ops
    () => withId({ ...valid(), op: pick(["dance", "", "GENERATE", "generate ", "stop\u0000", "__proto__", "constructor", "toString"]) }),
    // an unknown field (a typo of a real one, or a prototype name)
    () => withId({ ...valid(), [pick(["maxToken", "temp", "Messages", "useadapter", "constructor", "__proto__", "extra"])]: pick([1, "x", null, {}]) }),
    // broken conversations
    () => {
      const broken = pick<unknown>([
        [{ role: "bot", content: "hi" }],
        [{ role: "User", content: "hi" }],
        [{ role: null, content: "hi" }],
        [{ role: "user", content: 5 }],
        [{ role: "user", content: null }],
        [{ role: "user", content: ["hi"] }],
        [{ role: "user" }],
        [{ role: "user", content: "hi", name: "x" }],
        [{ role: "user", content: "hi" }, { role: "assistant", content: "yo" }],
        [{ role: "system", content: "be nice" }],
        ["hi"],
        [null],
        [[{ role: "user", content: "hi" }]],
        "hi",
        { role: "user", content: "hi" },
      ]);
      return withId({ id: nextId++, ...GEN, messages: broken });
    },
    // ids that are no ids: the error carries none
    () => ({ line: JSON.stringify({ ...valid(), id: pick<unknown>([-1, 1.5, "7", null, 1e300, 2 ** 53, [3], { id: 3 }, true]) }) }),
    // a generate or attention request without an id
    () => {
      const r = valid();
      if (r.op === "stop") r.op = "generate";
      delete r.id;
      return { line: JSON.stringify(r) };
    },
    // not JSON
    () => {
      const good = JSON.stringify(valid());
      return { line: pick([good.slice(0, 1 + rng.int(good.length - 2)), good + "}", good.replace(/"/g, "'"), "{id: 1}", "NaN", "undefined", "{\"id\":1,}", "[", "\u0000", "{\"a\":1}{\"b\":2}", "-", "01"]) };
    },
    // not an object
    () => ({ line: pick(["null", "0", "-3.5", "1e999", "true", "false", "\"generate\"", "[]", "[null]", JSON.stringify([valid()]), "[[[[[]]]]]"]) }),
    // deep nesting, where a field or the whole line should be
    () => {
      const depth = 1000 + rng.int(20000);
      if (rng.int(2)) return { line: "[".repeat(depth) + "]".repeat(depth) };
      const id = nextId++;
      return { line: `{"id":${id},"op":"generate","messages":${"[".repeat(depth)}${"]".repeat(depth)}}`, id };
    },
    // huge strings: in a field of the wrong kind, or a prompt over the model's context
    () => {
      const big = pick(["x", "é", "\u{1F600}", " ", "<s>"]).repeat(4000 + rng.int(200_000));
      if (rng.int(2)) return withId({ id: nextId++, ...GEN, template: big });
      return rng.int(2) ? withId({ id: nextId++, ...GEN, messages: user(big) }) : withId({ id: nextId++, op: "attention", prompt: big, response: " Tom" });
    },
  ];
  while (cases.length < count) cases.push(pick(mutations)());
  return cases;
}

test("fuzz: 240 malformed lines around a real generation each get exactly one error, the generation completes and the engine keeps serving", GUARD, async () => {
  const cases = fuzzCases(new Rng(20240613), 1000, 240);
  await withServe(async (s) => {
    const half = cases.length / 2;
    for (const c of cases.slice(0, half)) s.send(c.line);
    s.send({ id: 1, ...GEN, maxTokens: 40 });
    for (const c of cases.slice(half)) s.send(c.line);
    const gen = await s.done(1);
    assert.equal(gen.type, "done", `the real generation completed: ${JSON.stringify(gen).slice(0, 200)}`);
    const streamed = s.events.filter((e) => e.id === 1 && e.type === "text").map((e) => e.text).join("");
    assert.equal(streamed, gen.text, "its streamed text adds up to its answer");
    // A final valid request after every malformed line: once it is answered, so are they (answers come in order or at once).
    s.send({ id: 2, ...GEN, maxTokens: 3 });
    assert.equal((await s.done(2)).type, "done");
    for (const c of cases.filter((c) => c.id !== undefined)) {
      const answers = s.events.filter((e) => e.id === c.id);
      assert.equal(answers.length, 1, `one event for ${c.line.slice(0, 120)}: ${JSON.stringify(answers).slice(0, 300)}`);
      assert.equal(answers[0]!.type, "error", `an error for ${c.line.slice(0, 120)}`);
      assert.ok(answers[0]!.message!.length > 0 && !answers[0]!.message!.includes("\n"), "a one-line message");
    }
    const anonymous = s.events.filter((e) => e.type === "error" && e.id === undefined);
    assert.equal(anonymous.length, cases.filter((c) => c.id === undefined).length, "one error without id for each line without a usable id");
    const stray = s.events.filter((e) => e.type !== "ready" && e.type !== "error" && e.id !== 1 && e.id !== 2);
    assert.deepEqual(stray, [], "nothing but errors answers the malformed lines");
    assert.equal(await s.end(), 0);
  });
});
