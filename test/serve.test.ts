/**
 * `excitor serve` through the extension's client (ServeClient), as the chat and the attention
 * panel use it: streamed text that adds up to the answer, a stop that ends generation in the
 * engine, attention reports, malformed requests ignored, and a bad model folder reported.
 */
import { after, test } from "node:test";
import * as assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as path from "node:path";
import { nodeLauncher } from "../extension/engine-process";
import { EngineStartError, ServeClient } from "../extension/serve-client";
import { openModel } from "../engine/load";
import { LoraAdapter } from "../engine/lora/adapter";
import { Rng } from "../engine/rng";
import { tempDir, writeTinyModel } from "./helpers/tiny-model";

const REPO = path.resolve(__dirname, "../..");
const launcher = nodeLauncher(REPO, () => ({ threads: 0 }));
const model = writeTinyModel(path.join(tempDir("excitor-serve-"), "model"), { layers: 2 });
const logs: string[] = [];
const client = new ServeClient(launcher, model, null, "tfjs-wasm", (l) => logs.push(l));
after(() => client.dispose());

const generateReq = { messages: [{ role: "user" as const, content: "Tell me about cats." }], template: "alpaca" as const, useAdapter: false, temperature: 0, topP: 1, maxTokens: 40 };

test("ready says what the engine loaded", async () => {
  const ready = await client.ready;
  assert.equal(ready.model, model);
  assert.equal(ready.adapter, null);
  assert.equal(ready.adapterMethod, null);
  assert.equal(ready.numLayers, 2);
  assert.equal(ready.template, "alpaca", "no chat template and no adapter: Alpaca");
  assert.equal(ready.hasChatTemplate, false);
});

test("generation streams pieces that add up to the answer", async () => {
  const pieces: string[] = [];
  const { done } = client.generate(generateReq, (t) => pieces.push(t));
  const end = await done;
  assert.ok(pieces.length >= 2, "streamed in several pieces");
  assert.equal(pieces.join(""), end.text);
  assert.ok(end.tokens > 0);
  assert.ok(["eos", "length"].includes(end.finishReason));
  // Greedy is deterministic: the same request gives the same answer.
  const again = await client.generate(generateReq, () => {}).done;
  assert.equal(again.text, end.text);
});

test("stop ends generation in the engine: it reports 'aborted' before the token budget", async () => {
  let gen: { id: number; done: Promise<{ finishReason: string; tokens: number }> } | undefined = undefined;
  let stopped = false;
  gen = client.generate({ ...generateReq, temperature: 1, seed: 5, maxTokens: 200 }, () => {
    if (!stopped && gen) {
      stopped = true;
      client.stop(gen.id);
    }
  });
  const end = await gen.done;
  assert.equal(end.finishReason, "aborted");
  assert.ok(end.tokens < 200, `stopped after ${end.tokens} tokens`);
});

test("attention: the report covers prompt and response, every layer and head", async () => {
  const { report, responseText } = await client.attention({ prompt: "Name a cat.", response: " Tom", template: "alpaca" });
  assert.equal(responseText.trim(), "Tom");
  assert.equal(report.layers.length, 2);
  assert.equal(report.tokens.length, report.response[1]);
  assert.equal(report.instruction[0], 1, "the instruction starts after BOS");
  assert.equal(report.instruction[1], report.response[0]);
  const M = report.tokens.length;
  const probs = report.layers[1].base[0][M - 1];
  assert.ok(Math.abs(probs.reduce((a, b) => a + b, 0) - 1) < 1e-4, "each row is a distribution");
  assert.equal(report.instructionMass.length, 2);
});

test("a malformed request line is ignored and the engine keeps serving", async () => {
  const raw = spawn(process.execPath, [path.join(REPO, "dist/bundle/excitor.js"), "serve", "--model", model], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  raw.stdout.on("data", (d) => (out += d));
  raw.stderr.on("data", (d) => (err += d));
  raw.stdin.write("this is not json\n");
  raw.stdin.write(JSON.stringify({ id: 7, op: "generate", ...generateReq, maxTokens: 3 }) + "\n");
  raw.stdin.write(JSON.stringify({ id: 8, op: "dance" }) + "\n");
  await new Promise<void>((resolve) => {
    const check = () => (out.includes('"id":8') ? resolve() : setTimeout(check, 50));
    check();
  });
  raw.stdin.end();
  const code = await new Promise((r) => raw.on("close", r));
  assert.equal(code, 0);
  const events = out.trim().split("\n").map((l) => JSON.parse(l));
  assert.ok(events.some((e) => e.id === 7 && e.type === "done"));
  assert.ok(events.some((e) => e.id === 8 && e.type === "error" && /unknown op "dance"/.test(e.message)));
  assert.match(err, /ignored a line that is not JSON/);
});

test("a bad model folder rejects with the engine's one-line message", async () => {
  const bad = new ServeClient(launcher, path.join(REPO, "no-such-model"), null, "tfjs-wasm", () => {});
  await assert.rejects(bad.ready, (e: unknown) => e instanceof EngineStartError && e.message.includes("no-such-model") && e.message.includes("not found"));
  await assert.rejects(bad.generate(generateReq, () => {}).done, /ended|not found/);
});

test("a LoRA adapter (PEFT's layout) serves like an Excitor one: ready names its method, and it changes the answers", async () => {
  const adapterDir = path.join(tempDir("excitor-serve-lora-"), "lora");
  const rt = await openModel(model, { backend: "tfjs" });
  const lora = LoraAdapter.create(rt.config, { seed: 2, template: "alpaca" });
  rt.dispose();
  const rng = new Rng(5);
  for (const p of lora.pairs) for (let i = 0; i < p.B.data.length; i++) p.B.data[i] = rng.normal() * 0.5;
  lora.save(adapterDir);
  const withLora = new ServeClient(launcher, model, adapterDir, "tfjs-wasm", (l) => logs.push(l));
  try {
    const ready = await withLora.ready;
    assert.equal(ready.adapter, adapterDir);
    assert.equal(ready.adapterMethod, "lora");
    assert.equal(ready.template, "alpaca", "the template recorded in the adapter");
    const base = await withLora.generate({ ...generateReq, useAdapter: false }, () => undefined).done;
    const tuned = await withLora.generate({ ...generateReq, useAdapter: true }, () => undefined).done;
    assert.notEqual(tuned.text, base.text);
  } finally {
    withLora.dispose();
  }
});
