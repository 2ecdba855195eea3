/**
 * The `excitor` command line, run as a real child process: the output contracts that external
 * tools rely on (score / generate / tokenize), training with resume after a SIGKILL, and the
 * error path (exit 2, one `excitor: error:` line, nothing half-written).
 */
import { after, test } from "node:test";
import * as assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as readline from "node:readline";
import { ExcitorInputError } from "../engine/errors";
import { buildProgram } from "../cli/main";
import { FIXTURES, tinyByteLevelTokenizer } from "./fixtures";
import { maxAbsDiff } from "./helpers/compare";
import { tempDir, writeAlpaca, writeTinyModel } from "./helpers/tiny-model";
import { BIN, assertUserError, excitor as run, type CliResult } from "./helpers/cli";

const GOLDEN = path.join(FIXTURES, "golden/mha");
const STORIES = path.join(FIXTURES, "stories260k");

const excitor = (args: string[], input?: string): CliResult => run(args, input, 60_000);

// One tiny model and dataset for everything that trains (16 records: 15 train, 1 validation).
const root = tempDir("excitor-cli-");
const tiny = writeTinyModel(path.join(root, "model"), { layers: 2 });
const data = writeAlpaca(
  path.join(root, "data.jsonl"),
  Array.from({ length: 16 }, (_, i) => ({ instruction: `Name animal ${i}.`, output: ["cat", "dog", "owl", "fox"][i % 4] })),
);
const TRAIN = ["--model", tiny, "--data", data, "--batch-size", "2", "--micro-batch", "2", "--lr", "0.01", "--seed", "3", "--json"];
const trained = path.join(root, "trained");
after(() => fs.rmSync(root, { recursive: true, force: true }));

for (const withAdapter of [false, true]) {
  test(`score --ids --json on golden/mha ${withAdapter ? "with" : "without"} the adapter matches the reference`, () => {
    const want = JSON.parse(fs.readFileSync(path.join(GOLDEN, withAdapter ? "expected-excitor.json" : "expected-base.json"), "utf8"));
    const args = ["score", "--model", path.join(GOLDEN, "model"), "--ids", want.ids.join(","), "--json"];
    const r = excitor(withAdapter ? [...args, "--adapter", path.join(GOLDEN, "adapter")] : args);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.endsWith("\n") && r.stdout.trimEnd().split("\n").length === 1, "exactly one JSON line");
    const got = JSON.parse(r.stdout);
    assert.deepEqual(got.ids, want.ids);
    assert.ok(maxAbsDiff(got.logprobs, want.logprobs) < 1e-4);
    assert.ok(got.perplexity > 1);
  });
}

test("score --text tokenizes with BOS; without --json it prints perplexity and token count", () => {
  const r = excitor(["score", "--model", path.join(STORIES, "hf"), "--text", "Once upon a time", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const got = JSON.parse(r.stdout);
  assert.equal(got.ids[0], 1);
  assert.equal(got.logprobs.length, got.ids.length - 1);
  const plain = excitor(["score", "--model", path.join(STORIES, "hf"), "--text", "Once upon a time"]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, /perplexity\s+\d/);
  assert.match(plain.stdout, new RegExp(`tokens\\s+${got.ids.length}\\b`));
});

test("generate from an empty prompt at temperature 0 prints exactly llama2.c's greedy text", () => {
  const r = excitor(["generate", "--model", path.join(STORIES, "hf"), "--prompt", "", "--max-tokens", "256", "--temperature", "0"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  assert.ok(r.stdout.endsWith("\n"));
  assert.equal(r.stdout.trimEnd(), fs.readFileSync(path.join(STORIES, "expected-greedy.txt"), "utf8").trimEnd());
});

test("tokenize --json gives BOS + sentencepiece's ids; --no-bos drops BOS", () => {
  const text = "Hello, my dog is cute";
  const cases: { text: string; ids: number[] }[] = JSON.parse(fs.readFileSync(path.join(STORIES, "sentencepiece-ids.json"), "utf8"));
  const want = cases.find((c) => c.text === text)!.ids;
  const r = excitor(["tokenize", "--model", path.join(STORIES, "hf"), "--text", text, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { ids: [1, ...want] });
  assert.deepEqual(JSON.parse(excitor(["tokenize", "--model", path.join(STORIES, "hf"), "--text", text, "--json", "--no-bos"]).stdout), { ids: want });
});

test("info shows the architecture and backend; with --adapter the trainable parameters", () => {
  const r = excitor(["info", "--model", path.join(GOLDEN, "model")]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /architecture\s+LlamaForCausalLM/);
  assert.match(r.stdout, /backend\s+\S+/);
  const j = JSON.parse(excitor(["info", "--model", path.join(GOLDEN, "model"), "--adapter", path.join(GOLDEN, "adapter"), "--json"]).stdout);
  assert.equal(j.architecture, "LlamaForCausalLM");
  assert.equal(j.layers, 3);
  assert.equal(typeof j.backendNote, "string");
  // K=5, r=3, layers 1,2 of C=48, H=4: 2 × (5·48 + 3·48 + 48·3 + 4).
  assert.equal(j.adapter.trainableParameters, 1064);
  const a = excitor(["info", "--model", path.join(GOLDEN, "model"), "--adapter", path.join(GOLDEN, "adapter")]);
  assert.match(a.stdout, /trainable parameters\s+1,064/);
});

test("train --json prints start/step/done events and writes the adapter; generate --adapter uses it", () => {
  const r = excitor(["train", ...TRAIN, "--out", trained, "--max-steps", "4", "--checkpoint-every", "2"]);
  assert.equal(r.code, 0, r.stderr);
  const events = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
  const types = events.map((e) => e.type);
  assert.equal(types[0], "start");
  assert.equal(events[0].backend, "onnxruntime-cpu");
  assert.match(events[0].backendNote, /^onnxruntime [\d.]+ on the CPU, \d+ threads?/, "the start event says why this backend runs");
  assert.equal(types.filter((t) => t === "step").length, 4);
  assert.equal(types.at(-1), "done");
  for (const f of ["adapter_config.json", "adapter_model.safetensors", "metrics.jsonl", "retention.jsonl"]) assert.ok(fs.existsSync(path.join(trained, f)), f);
  // The forgetting monitor, on by default: its set in start, a measure in every validation and in done.
  assert.equal(events[0].method, "excitor");
  assert.equal(events[0].retention.samples, 64);
  assert.equal(events[0].retention.source, "base");
  const validations = events.filter((e) => e.type === "validation");
  assert.ok(validations.length > 0 && validations.every((v) => typeof v.retention.kl === "number" && typeof v.retention.pplRatio === "number"));
  assert.deepEqual(events.at(-1).retention, validations.at(-1).retention);

  const g = excitor(["generate", "--model", tiny, "--adapter", trained, "--prompt", "Name animal 3.", "--template", "alpaca", "--max-tokens", "8", "--temperature", "0"]);
  assert.equal(g.code, 0, g.stderr);
  assert.ok(g.stdout.endsWith("\n"));
});

test("train without --json shows progress on stderr and a summary", () => {
  const r = excitor(["train", ...TRAIN.filter((a) => a !== "--json"), "--out", path.join(root, "plain"), "--max-steps", "2"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /step 2\/2/);
  assert.match(r.stderr, /validation loss/);
  assert.match(r.stderr, /step 0: validation loss [\d.]+ \| kept knowledge: KL 0\.0000 · ppl ×1\.00\n/, "at step 0 the tuned model is the base");
  assert.match(r.stderr, /step 2: validation loss [\d.]+ \| kept knowledge: KL \d+\.\d{4} · ppl ×\d+\.\d{2}\n/);
  assert.match(r.stderr, /forgetting monitor: 64 retention samples \([\d,]+ tokens, base\)/);
  assert.match(r.stdout, /kept knowledge\s+KL \d+\.\d{4} · ppl ×\d+\.\d{2} \(measuring it took \d+\.\d s\)\n/);
  assert.match(r.stderr, /\nbackend: onnxruntime [\d.]+ on the CPU/, "the header says which backend runs and why");
  assert.match(r.stdout, /steps\s+2\n/);
  assert.match(r.stdout, /trainable params\s+[\d,]+ \(/);
  assert.ok(r.stdout.includes(path.join(root, "plain")));
});

test("train --retain none: no retention set, no kept-knowledge line, and the summary says it was not measured", () => {
  const out = path.join(root, "no-retain");
  const r = excitor(["train", ...TRAIN.filter((a) => a !== "--json"), "--out", out, "--max-steps", "2", "--retain", "none"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!r.stderr.includes("kept knowledge"));
  assert.match(r.stdout, /kept knowledge\s+not measured \(--retain none\)/);
  assert.ok(!fs.existsSync(path.join(out, "retention.jsonl")));
});

test("train --retain FILE measures on the user's text; a bad file is a one-line error naming file:line", () => {
  const txt = path.join(root, "keep.txt");
  fs.writeFileSync(txt, "The owl sat in the tree.\n\nA fox ran home.\n");
  const r = excitor(["train", ...TRAIN, "--out", path.join(root, "retain-file"), "--max-steps", "2", "--retain", txt]);
  assert.equal(r.code, 0, r.stderr);
  const start = JSON.parse(r.stdout.split("\n")[0]);
  assert.deepEqual([start.retention.samples, start.retention.source], [2, "file"]);
  const bad = path.join(root, "keep.jsonl");
  fs.writeFileSync(bad, '{"text": "fine"}\n{"txt": "typo"}\n');
  assertUserError(excitor(["train", ...TRAIN.filter((a) => a !== "--json"), "--out", path.join(root, "retain-bad"), "--max-steps", "1", "--retain", bad]), `${bad}:2`, '"text"');
  assertUserError(excitor(["train", ...TRAIN.filter((a) => a !== "--json"), "--out", path.join(root, "retain-none-base"), "--retain", "none,base"]), "--retain", "none");
});

test("train: options of another method are errors, and unknown LoRA targets are named", () => {
  const plain = TRAIN.filter((a) => a !== "--json");
  assertUserError(excitor(["train", ...plain, "--out", path.join(root, "m1"), "--method", "lora", "--prompts", "30"]), "--prompts", "--method lora");
  assertUserError(excitor(["train", ...plain, "--out", path.join(root, "m2"), "--method", "lora", "--rank", "4"]), "--rank", "--method lora");
  assertUserError(excitor(["train", ...plain, "--out", path.join(root, "m3"), "--lora-r", "4"]), "--lora-r", "--method excitor");
  assertUserError(excitor(["train", ...plain, "--out", path.join(root, "m4"), "--method", "full", "--lora-targets", "q_proj"]), "--lora-targets", "--method full");
  assertUserError(excitor(["train", ...plain, "--out", path.join(root, "m5"), "--method", "full", "--layers", "0"]), "--layers", "--method full");
  assertUserError(excitor(["train", ...plain, "--out", path.join(root, "m6"), "--method", "lora", "--lora-targets", "q_proj,wq"]), "--lora-targets", '"wq"');
  assertUserError(excitor(["train", ...plain, "--out", path.join(root, "m7"), "--method", "dora"]), "dora");
  for (let i = 1; i <= 7; i++) assert.ok(!fs.existsSync(path.join(root, `m${i}`)), "nothing is written");
});

test("train --method lora writes a PEFT adapter folder that generate, chat, score, attention and info load", () => {
  const out = path.join(root, "lora");
  const r = excitor(["train", ...TRAIN, "--out", out, "--max-steps", "4", "--method", "lora", "--lora-r", "4", "--lora-alpha", "8", "--lora-targets", "q_proj,v_proj,o_proj"]);
  assert.equal(r.code, 0, r.stderr);
  const events = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.equal(events[0].method, "lora");
  assert.equal(events[0].trainableParams, 2 * 4 * (32 + 32) + 2 * 4 * (32 + 16) + 2 * 4 * (32 + 32), "A [4, in] and B [out, 4] of q, v and o in 2 layers");
  assert.ok(events.at(-1).retention.kl >= 0);
  const config = JSON.parse(fs.readFileSync(path.join(out, "adapter_config.json"), "utf8"));
  assert.equal(config.peft_type, "LORA");
  assert.equal(config.r, 4);
  assert.equal(config.lora_alpha, 8);
  assert.deepEqual(config.target_modules, ["q_proj", "v_proj", "o_proj"]);
  assert.ok(fs.existsSync(path.join(out, "adapter_model.safetensors")));

  const g = excitor(["generate", "--model", tiny, "--adapter", out, "--prompt", "Name animal 3.", "--template", "alpaca", "--max-tokens", "4", "--temperature", "0"]);
  assert.equal(g.code, 0, g.stderr);
  const c = excitor(["chat", "--model", tiny, "--adapter", out, "--max-tokens", "3", "--temperature", "0"], "hello\n/exit\n");
  assert.equal(c.code, 0, c.stderr);
  const sc = excitor(["score", "--model", tiny, "--adapter", out, "--text", "Name animal 3.", "--json"]);
  assert.equal(sc.code, 0, sc.stderr);
  const att = excitor(["attention", "--model", tiny, "--adapter", out, "--prompt", "Name animal 3.", "--template", "none", "--response", "cat"]);
  assert.equal(att.code, 0, att.stderr);
  assert.match(att.stdout, /^0\s.*\(LoRA: no gates\)$/m);
  const info = excitor(["info", "--model", tiny, "--adapter", out]);
  assert.equal(info.code, 0, info.stderr);
  assert.match(info.stdout, /LoRA/);
});

test("train --method full writes a model folder that generate opens with --model", () => {
  const out = path.join(root, "full");
  const r = excitor(["train", ...TRAIN.filter((a) => a !== "--json"), "--out", out, "--max-steps", "3", "--method", "full"]);
  assert.equal(r.code, 0, r.stderr);
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]) assert.ok(fs.existsSync(path.join(out, f)), f);
  assert.ok(!fs.existsSync(path.join(out, "adapter_config.json")), "a model, not an adapter");
  assert.match(r.stdout, /model\s+\S+ \(use it with --model\)/);
  assert.match(r.stdout, /trainable params\s+[\d,]+ \(every weight\)/);
  const g = excitor(["generate", "--model", out, "--prompt", "Name animal 3.", "--template", "alpaca", "--max-tokens", "4", "--temperature", "0"]);
  assert.equal(g.code, 0, g.stderr);
});

test("attention prints per-layer instruction mass, and the full report with --json", () => {
  const args = ["attention", "--model", tiny, "--adapter", trained, "--prompt", "Name animal 3.", "--template", "none"];
  const r = excitor([...args, "--response", "cat", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.layers.length, 2);
  assert.equal(report.instructionMass.length, 2);
  assert.ok(report.response[1] > report.response[0]);
  const t = excitor(args); // response generated by the tuned model
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /^layer\s+base\s+tuned/m);
});

test("chat keeps going through /reset and ends at /exit or end of input", () => {
  const r = excitor(["chat", "--model", tiny, "--adapter", trained, "--max-tokens", "4", "--temperature", "0"], "hello\n/reset\nagain\n/exit\nnever read\n");
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.includes("(history cleared)"));
  const eof = excitor(["chat", "--model", tiny, "--max-tokens", "4"], "hi\n");
  assert.equal(eof.code, 0, eof.stderr);

  // A tokenizer with a chat template (ChatML, byte-level BPE) on the same tiny weights.
  const chatml = writeTinyModel(path.join(root, "chatml"));
  const { tokenizerJson, tokenizerConfig } = tinyByteLevelTokenizer();
  fs.writeFileSync(path.join(chatml, "tokenizer.json"), JSON.stringify(tokenizerJson));
  fs.writeFileSync(path.join(chatml, "tokenizer_config.json"), JSON.stringify(tokenizerConfig));
  const t = excitor(["chat", "--model", chatml, "--system", "Be brief.", "--max-tokens", "3", "--temperature", "0"], "hello\nand again\n");
  assert.equal(t.code, 0, t.stderr);
  const g = excitor(["generate", "--model", chatml, "--template", "chat", "--prompt", "hello", "--max-tokens", "3", "--temperature", "0"]);
  assert.equal(g.code, 0, g.stderr);
});

test("a run killed with SIGKILL and resumed ends bit-identical to an uninterrupted one", async () => {
  const args = [...TRAIN, "--max-steps", "16", "--checkpoint-every", "1"];
  const whole = path.join(root, "whole");
  assert.equal(excitor(["train", ...args, "--out", whole]).code, 0);

  const resumed = path.join(root, "resumed");
  const child = spawn(process.execPath, [BIN, "train", ...args, "--out", resumed], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
  let checkpoints = 0;
  const seen: string[] = [];
  for await (const line of readline.createInterface({ input: child.stdout })) {
    const e = JSON.parse(line);
    seen.push(e.type);
    if (e.type === "checkpoint" && ++checkpoints === 3) {
      child.kill("SIGKILL");
      break;
    }
  }
  assert.equal(await exited, "SIGKILL");
  assert.ok(!seen.includes("done"));

  const again = excitor(["train", ...args, "--out", resumed, "--resume"]);
  assert.equal(again.code, 0, again.stderr);
  const start = JSON.parse(again.stdout.split("\n")[0]);
  assert.ok(start.resumedFromStep >= 3 && start.resumedFromStep < 16, `resumed from ${start.resumedFromStep}`);
  const a = fs.readFileSync(path.join(whole, "adapter_model.safetensors"));
  const b = fs.readFileSync(path.join(resumed, "adapter_model.safetensors"));
  assert.ok(a.equals(b), "adapter_model.safetensors differs");
});

test("--stdin-control: a line \"stop\" ends training at a step boundary with a checkpoint; so does the end of stdin", async () => {
  for (const how of ["stop line", "end of input"] as const) {
    const out = path.join(root, `stdin-${how.replace(/ /g, "-")}`);
    const child = spawn(process.execPath, [BIN, "train", ...TRAIN, "--max-steps", "60", "--stdin-control", "--out", out], { stdio: ["pipe", "pipe", "pipe"] });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const seen: { type: string; step?: number }[] = [];
    for await (const line of readline.createInterface({ input: child.stdout })) {
      const e = JSON.parse(line);
      seen.push(e);
      if (e.type === "step" && e.step === 2) {
        if (how === "stop line") child.stdin.write("stop\n");
        else child.stdin.end();
      }
    }
    assert.equal(await exited, 130, how);
    const cancelled = seen.find((e) => e.type === "cancelled");
    assert.ok(cancelled && cancelled.step! >= 2 && cancelled.step! < 60, `${how}: ${JSON.stringify(seen.slice(-3))}`);
    assert.ok(fs.existsSync(path.join(out, "checkpoint")), how);
  }
  // Without the flag, stdin is not read: a closed stdin does not stop a run.
  const r = excitor(["train", ...TRAIN, "--max-steps", "3", "--out", path.join(root, "stdin-ignored")], "");
  assert.equal(r.code, 0, r.stderr);
});

test("--stdin-control: when the editor goes away (stdin ends and stdout breaks at once, as in a window reload), training still stops with a checkpoint", async () => {
  const out = path.join(root, "driver-gone");
  const child = spawn(process.execPath, [BIN, "train", ...TRAIN, "--max-steps", "400", "--stdin-control", "--out", out], { stdio: ["pipe", "pipe", "pipe"] });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  for await (const line of readline.createInterface({ input: child.stdout })) {
    if (JSON.parse(line).step !== 2) continue;
    // What the editor's death does to the engine: its stdout has no reader and its stdin ends.
    child.stdout.destroy();
    child.stderr.destroy();
    child.stdin.end();
    break;
  }
  // Before the fix, the first write into the broken pipe ended the process with 0 and no checkpoint.
  assert.equal(await exited, 130);
  const events = fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const cancelled = events.find((e) => e.type === "cancelled");
  assert.ok(cancelled && cancelled.step >= 2 && cancelled.step < 400, JSON.stringify(events.at(-1)));
  assert.ok(fs.existsSync(path.join(out, "checkpoint")), "a checkpoint to resume from");
});

test("Ctrl-C stops training at a step boundary: exit 130, a checkpoint, and --resume finishes the run", async () => {
  const out = path.join(root, "interrupted");
  const child = spawn(process.execPath, [BIN, "train", ...TRAIN, "--max-steps", "60", "--out", out], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const seen: { type: string; step?: number }[] = [];
  for await (const line of readline.createInterface({ input: child.stdout })) {
    const e = JSON.parse(line);
    seen.push(e);
    if (e.type === "step" && e.step === 2) child.kill("SIGINT");
  }
  assert.equal(await exited, 130);
  const cancelled = seen.find((e) => e.type === "cancelled");
  assert.ok(cancelled && cancelled.step! >= 2 && cancelled.step! < 60, JSON.stringify(seen.slice(-3)));
  assert.ok(fs.existsSync(path.join(out, "adapter_model.safetensors")));
  const changed = excitor(["train", ...TRAIN, "--max-steps", "60", "--out", out, "--resume", "--seed", "9"]);
  assert.equal(changed.code, 2, "changed settings are refused on resume");
  assert.match(changed.stderr, /made with other data or settings/);
  const again = excitor(["train", ...TRAIN, "--max-steps", "60", "--out", out, "--resume"]);
  assert.equal(again.code, 0, again.stderr);
  const events = again.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(events[0].resumedFromStep, cancelled!.step);
  assert.equal(events.at(-1).type, "done");
  assert.equal(events.at(-1).step, events[0].totalSteps);
});

test("Ctrl-C stops generation in the engine: exit 130 long before the token budget", async () => {
  const child = spawn(process.execPath, [BIN, "generate", "--model", path.join(STORIES, "hf"), "--prompt", "", "--max-tokens", "100000", "--temperature", "0.8"], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  let text = "";
  let sent = false;
  child.stdout.on("data", (d: Buffer) => {
    text += d.toString();
    if (!sent && text.length > 40) {
      sent = true;
      child.kill("SIGINT");
    }
  });
  assert.equal(await exited, 130);
  assert.ok(text.length > 40 && text.length < 100_000, `${text.length} characters`);
});

test("bad model input: missing folder, unknown architecture, adapter for another model", () => {
  assertUserError(excitor(["score", "--model", path.join(root, "nope"), "--ids", "1,2"]), path.join(root, "nope"));

  const gpt2 = writeTinyModel(path.join(root, "gpt2"), { architecture: "GPT2LMHeadModel" });
  assertUserError(excitor(["info", "--model", gpt2]), path.join(gpt2, "config.json"), "GPT2LMHeadModel");

  const other = path.join(FIXTURES, "golden/gqa/adapter");
  assertUserError(excitor(["score", "--model", path.join(GOLDEN, "model"), "--adapter", other, "--ids", "1,2,3"]), "adapter_config.json", "another model");

  // Same layer count, different width: the tensor shapes do not fit.
  const narrow = writeTinyModel(path.join(root, "narrow"), { layers: 3 });
  const r = excitor(["generate", "--model", narrow, "--adapter", path.join(GOLDEN, "adapter"), "--max-tokens", "2"]);
  assertUserError(r, "adapter_model.safetensors", "[5,48]", "[5,32]");
  assert.equal(r.stdout, "");
});

test("bad dataset: each error names the file (and line) and leaves no adapter behind", () => {
  const cases: { name: string; text: string | Buffer; mentions: string[] }[] = [
    { name: "malformed.jsonl", text: '{"instruction":"a","output":"b"}\n{"instruction": oops\n', mentions: ["malformed.jsonl:2", "malformed JSON"] },
    { name: "latin1.jsonl", text: Buffer.from('{"instruction":"a","output":"b"}\n{"instruction":"caf\u00e9","output":"b"}\n', "latin1"), mentions: ["latin1.jsonl:2", "not UTF-8"] },
    { name: "role.jsonl", text: '{"messages":[{"role":"bot","content":"a"},{"role":"assistant","content":"b"}]}\n', mentions: ["role.jsonl:1", '"messages[0].role" is "bot"'] },
    { name: "empty.jsonl", text: "", mentions: ["empty.jsonl", "empty"] },
    { name: "noresponse.jsonl", text: '{"instruction":"a","output":"b"}\n{"instruction":"c"}\n', mentions: ["noresponse.jsonl:2", "no response"] },
    { name: "long.jsonl", text: JSON.stringify({ instruction: "x".repeat(400), output: "y" }) + "\n", mentions: ["long.jsonl:1", "max length"] },
  ];
  for (const c of cases) {
    const file = path.join(root, c.name);
    fs.writeFileSync(file, c.text);
    const out = path.join(root, `out-${c.name}`);
    const r = excitor(["train", "--model", tiny, "--data", file, "--out", out, "--max-steps", "1"]);
    assertUserError(r, file, ...c.mentions);
    const left = fs.existsSync(out) ? fs.readdirSync(out) : [];
    assert.ok(!left.some((f) => f.startsWith("adapter_")), `${c.name}: ${left.join(", ")}`);
  }
});

test("bad command lines: non-numeric and out-of-range numbers, unknown options and commands, missing options", () => {
  const gen = ["generate", "--model", tiny];
  assertUserError(excitor([...gen, "--max-tokens", "abc"]), '--max-tokens: "abc" is not a number');
  assertUserError(excitor([...gen, "--max-tokens", "0"]), "--max-tokens");
  assertUserError(excitor([...gen, "--temperature", "hot"]), "--temperature");
  assertUserError(excitor(["train", "--model", tiny, "--data", data, "--out", path.join(root, "x"), "--layers", "0,a"]), "--layers");
  assertUserError(excitor([...gen, "--bogus"]), "unknown option '--bogus'");
  assertUserError(excitor([...gen, "--template", "fancy"]), "fancy");
  assertUserError(excitor(["--backend", "quantum", "info", "--model", tiny]), "quantum");
  assertUserError(excitor(["score", "--ids", "1,2"]), "--model");
  assertUserError(excitor(["score", "--model", tiny]), "--ids");
  assertUserError(excitor(["score", "--model", path.join(GOLDEN, "model"), "--ids", "1,999"]), "999");
  assertUserError(excitor(["frobnicate"]), "frobnicate");
  assertUserError(excitor([]));
});

test("every number option of every command has a range, and its message states it", () => {
  let numbers = 0;
  for (const cmd of buildProgram(() => {}).commands) {
    for (const opt of cmd.options) {
      const parse = opt.parseArg as ((value: string, previous: unknown) => unknown) | undefined;
      let sample: unknown;
      try {
        sample = parse?.("1", undefined);
      } catch {
        continue; // a choice (--method, --template), not a number
      }
      if (typeof sample !== "number" && !(Array.isArray(sample) && typeof sample[0] === "number")) continue; // not a number or id list
      numbers++;
      assert.throws(
        () => parse!("1e300", undefined),
        (e: unknown) => e instanceof ExcitorInputError && new RegExp(`^${opt.long}: "1e300" must be (between|greater than|at least)`).test(e.message),
        `${cmd.name()} ${opt.long} takes 1e300`,
      );
    }
  }
  assert.ok(numbers >= 30, `${numbers} number options found`);
});

test("numbers too large for any model, or for this one, are user errors naming the option", () => {
  const out = path.join(root, "ranges");
  const train = ["train", "--model", tiny, "--data", data, "--out", out, "--max-steps", "1"];
  assertUserError(excitor([...train, "--rank", "1000000000"]), '--rank: "1000000000" must be between 1 and 4096');
  assertUserError(excitor([...train, "--prompts", "1e8"]), '--prompts: "1e8" must be between 1 and 1024');
  assertUserError(excitor([...train, "--method", "lora", "--lora-r", "1e9"]), '--lora-r: "1e9" must be between 1 and 4096');
  // The tiny model's hidden size is 32: a larger Excitor rank is refused once config.json is read.
  assertUserError(excitor([...train, "--rank", "64"]), "--rank: 64 must be at most the model's hidden size, 32");
  assertUserError(excitor(["generate", "--model", tiny, "--max-tokens", "1e9"]), '--max-tokens: "1e9" must be between 1 and 131072');
  assertUserError(excitor(["generate", "--model", tiny, "--seed", "-1"]), '--seed: "-1" must be between 0 and 4294967295');
  assert.ok(!fs.existsSync(path.join(out, "adapter_model.safetensors")));
});

test("a token id the model has no embedding for is reported against the option or record that gave it", () => {
  // A tokenizer with one token more than the model: "<extra>" gets the id just past the embedding table.
  const narrow = writeTinyModel(path.join(root, "narrow-vocab"), { layers: 1 });
  const tokenizerFile = path.join(narrow, "tokenizer.json");
  const tokenizer = JSON.parse(fs.readFileSync(tokenizerFile, "utf8"));
  const vocab = JSON.parse(fs.readFileSync(path.join(narrow, "config.json"), "utf8")).vocab_size as number;
  tokenizer.added_tokens.push({ id: vocab, content: "<extra>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  fs.writeFileSync(tokenizerFile, JSON.stringify(tokenizer));
  const outside = `the tokenizer gives token "<extra>" the id ${vocab}, outside the model's vocabulary (0..${vocab - 1}`;
  assertUserError(excitor(["score", "--model", narrow, "--text", "<extra> ab"]), `--text: ${outside}`);
  const file = path.join(root, "extra.txt");
  fs.writeFileSync(file, "ab <extra>");
  assertUserError(excitor(["score", "--model", narrow, "--file", file]), `--file: ${outside}`);
  assertUserError(excitor(["generate", "--model", narrow, "--prompt", "a <extra>", "--max-tokens", "1"]), `--prompt: ${outside}`);
  assertUserError(excitor(["attention", "--model", narrow, "--prompt", "ab", "--response", "<extra>"]), `--response: ${outside}`);
  const chat = excitor(["chat", "--model", narrow, "--max-tokens", "1"], "<extra>\n");
  assert.equal(chat.code, 0, chat.stderr);
  assert.match(chat.stderr, /^excitor: error: that message: the tokenizer gives token "<extra>"/m);
  const records = writeAlpaca(path.join(root, "extra.jsonl"), [{ instruction: "Say <extra>.", output: "ab" }, { instruction: "a", output: "b" }]);
  const r = excitor(["train", "--model", narrow, "--data", records, "--out", path.join(root, "narrow-out"), "--max-steps", "1"]);
  assertUserError(r, `${records}:1: ${outside}`);
});

test("--help works for the program and every command", () => {
  for (const cmd of [[], ["train"], ["generate"], ["chat"], ["score"], ["tokenize"], ["attention"], ["info"]]) {
    const r = excitor([...cmd, "--help"]);
    assert.equal(r.code, 0, `${cmd.join(" ")} --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^Usage: excitor ${cmd[0] ?? ""}`));
    assert.match(r.stdout, /--backend/);
  }
});

test("train --preset quick scales the run to the data and says at the end whether the model learned", () => {
  const out = path.join(root, "preset-quick");
  const r = excitor(["train", "--model", tiny, "--data", data, "--out", out, "--preset", "quick", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  // 15 training examples at batch 8: 2 steps an epoch, so 60 epochs for Quick's 120 steps, at the capped rate.
  assert.match(r.stderr, /quick preset: 15 training examples → 60 epochs, 120 steps of 8; a short run.s rate \(the method.s 2\.8e-4 is for runs of ~8,130 steps\); K 30, r 16, learning rate 0\.03/);
  const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  const start = events.find((e) => e.type === "start");
  assert.deepEqual([start.totalSteps, start.effectiveBatch, start.learningRate], [120, 8, 0.03]);
  const done = events.find((e) => e.type === "done");
  assert.equal(done.verdict.learned, true, done.verdict.message);
  assert.match(done.verdict.message, /^The model learned: training loss \d+\.\d\d → \d+\.\d\d, −\d+ %\.$/);
});

test("a run whose loss stays flat says in words that the model did not learn", () => {
  const out = path.join(root, "flat");
  const r = excitor(["train", "--model", tiny, "--data", data, "--out", out, "--batch-size", "2", "--epochs", "2", "--lr", "1e-7"]);
  assert.equal(r.code, 0, r.stderr);
  // The random tiny model scores about ln V on anything, and a rate of 1e-7 moves nothing.
  assert.match(r.stdout, /^learned {10}The model did not learn this data: the training loss stayed near chance .*; a uniform guess over [\d,]+ tokens scores \d\.\d\d\)\. Try more examples/m);
});

test("npx excitor prints nothing but its own output (no npm warnings) for --help, info and chat", () => {
  const npx = (args: string[], input?: string) => spawnSync("npx", ["--no-install", "excitor", ...args], { cwd: path.resolve(__dirname, "../.."), encoding: "utf8", input, timeout: 120_000 });
  const help = npx(["--help"]);
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^Usage: excitor /);
  assert.equal(help.stderr, "");
  const info = npx(["info", "--model", "demo/model"]);
  assert.equal(info.status, 0, info.stderr);
  assert.equal(info.stderr, "");
  const chat = npx(["chat", "--model", "demo/model"], "/help\n/exit\n");
  assert.equal(chat.status, 0, chat.stderr);
  assert.equal(chat.stderr, "");
  assert.match(chat.stdout, /^ {2}\/input TEXT/);
});
