/** Training: it learns, it is deterministic, and a cancelled-then-resumed run ends where an uninterrupted one does. */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { FIXTURES } from "./fixtures";
import { openModel } from "../engine/load";
import { TextTokenizer } from "../engine/tokenizer/tokenizer";
import { ExcitorAdapter } from "../engine/excitor/adapter";
import { LoraAdapter } from "../engine/lora/adapter";
import { loadAdapter } from "../engine/adapters";
import { parseRetain } from "../engine/train/retention";
import { train, TRAIN_DEFAULTS, METRICS_FILE, type TrainOptions } from "../engine/train/trainer";
import type { TrainEvent } from "../engine/train/events";
import { learningRate } from "../engine/train/schedule";
import { tempDir, writeAlpaca, writeTinyModel } from "./helpers/tiny-model";

const NAMES = ["Lily", "Tom", "Sue", "Ben", "Max", "Anna", "Sam", "Mia"];
const THINGS = ["cat", "dog", "ball", "tree", "car", "cake", "bird", "box"];

/** "Say it again": the response copies the input, which needs attention to the instruction. */
function copyTask(file: string, n: number): string {
  const recs = Array.from({ length: n }, (_, i) => {
    const s = `${NAMES[i % 8]} saw a ${THINGS[(i * 3) % 8]}`;
    return { instruction: "Say it again.", input: s, output: s };
  });
  return writeAlpaca(file, recs);
}

test("50 steps on a copy task at least halve the training loss of a real pretrained LLaMA (stories260K)", async () => {
  const model = path.join(FIXTURES, "stories260k/hf");
  const rt = await openModel(model, { forTraining: true });
  const tok = TextTokenizer.fromFolder(model);
  const root = tempDir();
  const losses: number[] = [];
  const res = await train(rt, tok, {
    ...TRAIN_DEFAULTS,
    dataFile: copyTask(path.join(root, "copy.jsonl"), 32),
    outDir: path.join(root, "out"),
    epochs: 100,
    maxSteps: 50,
    learningRate: 4e-2,
    validationShare: 0,
    baseModel: model,
    onEvent: (e) => e.type === "step" && losses.push(e.loss),
  });
  assert.equal(res.status, "done");
  assert.equal(losses.length, 50);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mean(losses.slice(0, 5));
  const last = mean(losses.slice(-5));
  assert.ok(last <= first / 2, `loss went from ${first.toFixed(3)} to ${last.toFixed(3)}`);
  // The gates opened: the tuned model is no longer the base model.
  assert.ok(res.adapter instanceof ExcitorAdapter);
  assert.ok(res.adapter.gates().flat().some((g) => Math.abs(g) > 0.05));
  rt.dispose();
});

async function tinyRun(root: string, extra: Partial<TrainOptions>, onEvent?: (e: TrainEvent) => void) {
  const model = path.join(root, "model");
  if (!fs.existsSync(model)) writeTinyModel(model, { seed: 2 });
  const data = path.join(root, "data.jsonl");
  if (!fs.existsSync(data)) copyTask(data, 12);
  const rt = await openModel(model, { forTraining: true });
  const tok = TextTokenizer.fromFolder(model);
  try {
    return await train(rt, tok, {
      ...TRAIN_DEFAULTS,
      dataFile: data,
      outDir: path.join(root, "out"),
      epochs: 2,
      batchSize: 4,
      microBatch: 2,
      validationShare: 0.2,
      checkpointEvery: 2,
      learningRate: 1e-2,
      baseModel: model,
      ...extra,
      onEvent,
    });
  } finally {
    rt.dispose();
  }
}

const adapterBytes = (dir: string) => fs.readFileSync(path.join(dir, "adapter_model.safetensors"));

test("same seed and data give the same adapter; another seed gives another", async () => {
  const root = tempDir();
  await tinyRun(root, { outDir: path.join(root, "a") });
  await tinyRun(root, { outDir: path.join(root, "b") });
  await tinyRun(root, { outDir: path.join(root, "c"), seed: 1 });
  assert.ok(adapterBytes(path.join(root, "a")).equals(adapterBytes(path.join(root, "b"))));
  assert.ok(!adapterBytes(path.join(root, "a")).equals(adapterBytes(path.join(root, "c"))));
});

test("cancel mid-run keeps a checkpoint; resume ends with the same adapter as an uninterrupted run", async () => {
  const root = tempDir();
  const full = await tinyRun(root, { outDir: path.join(root, "full") });
  assert.equal(full.status, "done");

  const ac = new AbortController();
  const cut = await tinyRun(root, { outDir: path.join(root, "cut"), signal: ac.signal }, (e) => e.type === "step" && e.step === 3 && ac.abort());
  assert.equal(cut.status, "cancelled");
  assert.equal(cut.step, 3);
  assert.ok(fs.existsSync(path.join(root, "cut", "adapter_model.safetensors")), "the cancelled run left an adapter");

  const steps: number[] = [];
  const resumed = await tinyRun(root, { outDir: path.join(root, "cut"), resume: true }, (e) => e.type === "step" && steps.push(e.step));
  assert.equal(resumed.status, "done");
  assert.equal(steps[0], 4, "resume continues after the checkpointed step");
  assert.ok(adapterBytes(path.join(root, "full")).equals(adapterBytes(path.join(root, "cut"))));

  // The metrics log holds every step of both parts, as JSON lines.
  const events = fs.readFileSync(path.join(root, "cut", METRICS_FILE), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(events.filter((e) => e.type === "step").map((e) => e.step), [1, 2, 3, 4, 5, 6]);
  const step = events.find((e) => e.type === "step");
  for (const k of ["loss", "learningRate", "tokensPerSecond", "etaSeconds", "gates", "epoch"]) assert.ok(k in step, k);
  assert.ok(events.some((e) => e.type === "validation"));
});

test("resume refuses a checkpoint made with other settings, and a fresh run refuses to overwrite one", async () => {
  const root = tempDir();
  await tinyRun(root, { outDir: path.join(root, "o"), maxSteps: 2 });
  await assert.rejects(tinyRun(root, { outDir: path.join(root, "o"), resume: true, seed: 5, maxSteps: 2 }), /made with other data or settings/);
  await assert.rejects(tinyRun(root, { outDir: path.join(root, "o"), maxSteps: 2 }), /already holds a training checkpoint; pass --resume/);
});

test("learning rate: linear warmup then cosine to 0", () => {
  assert.equal(learningRate(1, 100, 1, 10), 0.1);
  assert.equal(learningRate(10, 100, 1, 10), 1);
  assert.ok(Math.abs(learningRate(55, 100, 1, 10) - 0.5) < 1e-12);
  assert.equal(learningRate(100, 100, 1, 10), 0);
});

test("resume refuses a checkpoint made with another method's settings or another retention set", async () => {
  const root = tempDir();
  await tinyRun(root, { outDir: path.join(root, "o"), maxSteps: 2, retain: parseRetain(["none"]) });
  await assert.rejects(tinyRun(root, { outDir: path.join(root, "o"), resume: true, maxSteps: 2 }), /made with other data or settings/);
  await assert.rejects(tinyRun(root, { outDir: path.join(root, "o"), resume: true, maxSteps: 2, retain: parseRetain(["none"]), retainWeight: 0.5 }), /made with other data or settings/);
});

test("full training on an engine that replaces the base weights: no monitor (a warning says why), and --retain-weight is refused", async () => {
  const root = tempDir();
  const model = writeTinyModel(path.join(root, "model"), { seed: 2 });
  const data = copyTask(path.join(root, "data.jsonl"), 12);
  const open = async () => {
    const rt = await openModel(model, { backend: "tfjs", forTraining: true });
    // As an engine without a kept base copy reports itself (whatever this build's engines do).
    return Object.assign(Object.create(rt) as typeof rt, { keepsBaseInFullTraining: false, dispose: () => rt.dispose() });
  };
  const tok = TextTokenizer.fromFolder(model);
  const base = { ...TRAIN_DEFAULTS, method: "full" as const, dataFile: data, baseModel: model, epochs: 1, maxSteps: 2, batchSize: 4, microBatch: 4, learningRate: 1e-3 };
  const events: TrainEvent[] = [];
  let rt = await open();
  const res = await train(rt, tok, { ...base, outDir: path.join(root, "full"), onEvent: (e) => events.push(e) });
  rt.dispose();
  assert.equal(res.status, "done");
  const start = events.find((e) => e.type === "start");
  assert.ok(start?.type === "start" && start.method === "full" && start.retention === undefined);
  assert.ok(events.some((e) => e.type === "log" && e.level === "warn" && /no forgetting monitor/.test(e.message)));
  assert.ok(!fs.existsSync(path.join(root, "full", "retention.jsonl")));
  rt = await open();
  await assert.rejects(train(rt, tok, { ...base, outDir: path.join(root, "full-rw"), retainWeight: 1 }), /--retain-weight: full training on the tfjs\S* engine does not keep the base model/);
  rt.dispose();
});

test("LoRA: trains q_proj and v_proj with PEFT's defaults, saves a PEFT folder that loads back, and reports a verdict and the monitor", async () => {
  const root = tempDir();
  const events: TrainEvent[] = [];
  const res = await tinyRun(root, { method: "lora", epochs: 6, learningRate: 5e-2 }, (e) => events.push(e));
  assert.equal(res.status, "done");
  assert.ok(res.adapter instanceof LoraAdapter);
  const config = JSON.parse(fs.readFileSync(path.join(root, "out", "adapter_config.json"), "utf8"));
  assert.equal(config.peft_type, "LORA");
  assert.deepEqual([config.r, config.lora_alpha, config.target_modules], [8, 16, ["q_proj", "v_proj"]]);
  const model = path.join(root, "model");
  const rt = await openModel(model);
  const loaded = loadAdapter(path.join(root, "out"), rt.config);
  rt.dispose();
  assert.ok(loaded instanceof LoraAdapter);
  assert.equal(loaded.template, "alpaca");
  // B starts at zero: the tuned model begins as the base; training moved it.
  assert.ok(loaded.pairs.some((p) => p.B.data.some((v) => v !== 0)));
  const validations = events.filter((e): e is Extract<TrainEvent, { type: "validation" }> => e.type === "validation");
  assert.ok(validations[0].retention!.kl < 1e-6);
  assert.ok(validations.at(-1)!.retention!.kl > 0);
  assert.ok(res.verdict !== undefined);
  const start = events.find((e) => e.type === "start");
  assert.ok(start?.type === "start" && start.method === "lora" && start.trainableParams === res.trainableParams);
});

test("full fine-tuning keeps the base for the monitor: KL 0 at step 0, above 0 after, and a model folder as the result", async () => {
  const root = tempDir();
  const events: TrainEvent[] = [];
  const res = await tinyRun(root, { method: "full", learningRate: 1e-3 }, (e) => events.push(e));
  assert.equal(res.status, "done");
  for (const f of ["config.json", "model.safetensors", "tokenizer.json"]) assert.ok(fs.existsSync(path.join(root, "out", f)), f);
  const validations = events.filter((e): e is Extract<TrainEvent, { type: "validation" }> => e.type === "validation");
  assert.ok(validations[0].retention!.kl < 1e-6);
  assert.ok(validations.at(-1)!.retention!.kl > 0);
  assert.ok(res.verdict !== undefined);
});

test("--retain-weight pulls the tuned model towards the base: less KL on the retention set than without", async () => {
  const root = tempDir();
  const kl = async (dir: string, retainWeight: number) => {
    const res = await tinyRun(root, { outDir: path.join(root, dir), retainWeight, epochs: 6, learningRate: 5e-2 });
    assert.equal(res.status, "done");
    return res.retention!.kl;
  };
  const free = await kl("free", 0);
  const held = await kl("held", 2);
  assert.ok(held < free, `KL with the replay term ${held} vs without ${free}`);
  assert.ok(fs.existsSync(path.join(root, "held", "retention-replay.jsonl")));
});
