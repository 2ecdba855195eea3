/**
 * `excitor export-job` and the PyTorch job it writes, run here with Debian's python3-torch under
 * `torchrun` (2 processes, gloo, CPU) on the golden GQA model: world size 2 = world size 1 after a
 * step; N steps = Excitor's own engine; a rank killed mid-run and resumed ends with the
 * uninterrupted adapter; the run folder opens in the extension's Runs view and in chat/attention.
 * torch comes from `bash bench/setup.sh` (npm run test:unit runs it): without it these tests fail.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { FIXTURES } from "./fixtures";
import { assertUserError, excitor } from "./helpers/cli";
import { tempDir } from "./helpers/tiny-model";
import { GOLDEN, goldenWithTokenizer } from "./helpers/golden-tokenized";
import { readHeader, readTensorF32 } from "../engine/formats/safetensors";
import { openModel } from "../engine/load";
import { TextTokenizer } from "../engine/tokenizer/tokenizer";
import { readModelConfig } from "../engine/model/config";
import { TRAIN_DEFAULTS, epochOrder, readRunData, train } from "../engine/train/trainer";
import type { TrainEvent } from "../engine/train/events";
import { RunManager } from "../extension/run-manager";
import type { Launcher } from "../extension/engine-process";

/** Debian's Python, which has python3-torch (a pyenv or venv python3 first on PATH may not). */
const PYTHON = "/usr/bin/python3";

test("torch is installed for these tests (bash bench/setup.sh)", () => {
  const r = spawnSync(PYTHON, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8" });
  assert.equal(r.status, 0, `${PYTHON} cannot import torch; run bash bench/setup.sh (npm run test:unit does): ${r.stderr}`);
});

function exportJob(model: string, data: string, out: string, ...options: string[]): void {
  const r = excitor(["export-job", "--model", model, "--data", data, "--out", out, ...options]);
  assert.equal(r.code, 0, r.stderr);
}

/** Runs the job's run.sh (torchrun) to the end; returns its output. */
function runJob(job: string, nproc: number, args: string[], env: Record<string, string> = {}): string {
  const r = spawnSync("bash", [path.join(job, "run.sh"), ...args], {
    encoding: "utf8",
    timeout: 300_000,
    env: { ...process.env, PYTHON, NPROC: String(nproc), MAX_RESTARTS: "0", ...env },
  });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 0, `run.sh failed (${r.status}):\n${out.slice(-4000)}`);
  return out;
}

function tensors(file: string): Map<string, Float32Array> {
  const h = readHeader(file);
  return new Map(Object.keys(h.tensors).map((n) => [n, readTensorF32(h, n).data]));
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function assertSameAdapter(a: string, b: string, tolerance: number, what: string): number {
  const x = tensors(path.join(a, "adapter_model.safetensors"));
  const y = tensors(path.join(b, "adapter_model.safetensors"));
  assert.deepEqual([...x.keys()].sort(), [...y.keys()].sort());
  let worst = 0;
  for (const [name, t] of x) worst = Math.max(worst, maxDiff(t, y.get(name)!));
  assert.ok(worst <= tolerance, `${what}: adapters differ by ${worst} (> ${tolerance})`);
  return worst;
}

function events(runDir: string): TrainEvent[] {
  return fs
    .readFileSync(path.join(runDir, "metrics.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as TrainEvent);
}

test("export-job writes a self-contained job: Excitor's examples, split, plan and initial adapter, and the PyTorch package", () => {
  const root = tempDir();
  const { model, data } = goldenWithTokenizer(root);
  const job = path.join(root, "job");
  exportJob(model, data, job, "--batch-size", "4", "--max-steps", "5", "--seed", "3");
  for (const f of ["run.sh", "requirements.txt", "README.md", "job.json", "data/train.jsonl", "data/validation.jsonl", "init/adapter_config.json", "init/adapter_model.safetensors", "excitor_torch/train.py", "excitor_torch/model.py"])
    assert.ok(fs.existsSync(path.join(job, f)), f);
  assert.deepEqual(fs.readFileSync(path.join(job, "requirements.txt"), "utf8").trim().split("\n").map((l) => l.split(">=")[0]), ["torch", "safetensors"]);

  // The examples are the engine's own, in its split, so tokenization cannot differ.
  const tok = TextTokenizer.fromFolder(model);
  const mine = readRunData({ ...TRAIN_DEFAULTS, dataFile: data, seed: 3 }, readModelConfig(model), tok);
  const lines = (f: string) => fs.readFileSync(path.join(job, "data", f), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { ids: number[]; mask: string });
  assert.deepEqual(lines("train.jsonl").map((e) => e.ids), mine.trainSet.map((e) => e.ids));
  assert.deepEqual(lines("train.jsonl").map((e) => e.mask), mine.trainSet.map((e) => Array.from(e.lossMask).join("")));
  assert.deepEqual(lines("validation.jsonl").map((e) => e.ids), mine.validation.map((e) => e.ids));
  const plan = JSON.parse(fs.readFileSync(path.join(job, "job.json"), "utf8"));
  assert.equal(plan.recipe.totalSteps, 5);
  assert.equal(plan.recipe.learningRate, (9e-3 * 4) / 256);

  // The job's shuffle is the engine's: the same order for every (seed, epoch).
  const cases = [[28, 3, 0], [28, 3, 1], [7, 0, 5], [100, 123456, 2]];
  const py = spawnSync(PYTHON, ["-c", `import json,sys; from excitor_torch.data import epoch_order; print(json.dumps([epoch_order(*c) for c in ${JSON.stringify(cases)}]))`], { cwd: job, encoding: "utf8" });
  assert.equal(py.status, 0, py.stderr);
  assert.deepEqual(JSON.parse(py.stdout), cases.map(([n, seed, epoch]) => epochOrder(n, seed, epoch)));
});

test("one step on 2 ranks with half the batch each gives the adapter of one rank with the whole batch (within 1e-6)", () => {
  const root = tempDir();
  const { model, data } = goldenWithTokenizer(root);
  const job = path.join(root, "job");
  // The golden adapter (gates open) as the start, so every tensor gets a gradient in the first step.
  exportJob(model, data, job, "--batch-size", "5", "--micro-batch", "2", "--max-steps", "1", "--layers", "1,2,3", "--prompts", "7", "--rank", "4", "--lr", "0.01");
  fs.copyFileSync(path.join(GOLDEN, "adapter/adapter_model.safetensors"), path.join(job, "init/adapter_model.safetensors"));
  runJob(job, 1, ["--out", path.join(root, "w1")]);
  runJob(job, 2, ["--out", path.join(root, "w2"), "--activation-checkpointing"]); // 2 and 3 examples per rank
  const moved = assertSameAdapter(path.join(root, "w1"), path.join(GOLDEN, "adapter"), Infinity, "");
  assert.ok(moved > 1e-3, `the step moved the adapter by ${moved}`);
  assertSameAdapter(path.join(root, "w1"), path.join(root, "w2"), 1e-6, "world 1 vs world 2");
  // AdamW's first moment after one step is 0.1 × the gradient: the gradients themselves agree.
  const m1 = tensors(path.join(root, "w1/checkpoint/trainer_state.safetensors"));
  const m2 = tensors(path.join(root, "w2/checkpoint/trainer_state.safetensors"));
  for (const [name, m] of m1) {
    if (!name.startsWith("adamw.m.")) continue;
    const scale = m.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
    assert.ok(scale > 0, `${name} got no gradient`);
    assert.ok(maxDiff(m, m2.get(name)!) <= 1e-6 * scale, `${name}: gradients differ by ${maxDiff(m, m2.get(name)!)} (scale ${scale})`);
  }
  const [s1, s2] = [events(path.join(root, "w1")), events(path.join(root, "w2"))].map((es) => es.find((e) => e.type === "step") as Extract<TrainEvent, { type: "step" }>);
  assert.ok(Math.abs(s1.loss - s2.loss) <= 1e-6 * s1.loss && Math.abs(s1.gradNorm - s2.gradNorm) <= 1e-6 * s1.gradNorm, `loss ${s1.loss} vs ${s2.loss}, norm ${s1.gradNorm} vs ${s2.gradNorm}`);
});

test("torchrun on 2 ranks trains the adapter Excitor's engine trains; a rank killed mid-run resumes to the same adapter; the run opens in the extension", async () => {
  const root = tempDir();
  const { model, data } = goldenWithTokenizer(root);
  const options = ["--batch-size", "4", "--micro-batch", "1", "--max-steps", "8", "--checkpoint-every", "2", "--lr", "0.01", "--seed", "1"];
  const job = path.join(root, "job");
  exportJob(model, data, job, ...options);

  // (b) Excitor's engine, same data, seed (so the same initial adapter and order) and recipe.
  const engineDir = path.join(root, "engine");
  const rt = await openModel(model, { forTraining: true });
  const engineEvents: TrainEvent[] = [];
  await train(rt, TextTokenizer.fromFolder(model), {
    ...TRAIN_DEFAULTS,
    dataFile: data,
    outDir: engineDir,
    baseModel: model,
    batchSize: 4,
    microBatch: 1, // two accumulated micro-batches per rank in the job (DDP's no_sync), four here
    maxSteps: 8,
    checkpointEvery: 2,
    learningRate: 0.01,
    seed: 1,
    onEvent: (e) => engineEvents.push(e),
  });
  rt.dispose();
  const whole = path.join(root, "whole");
  runJob(job, 2, ["--out", whole]);
  const diff = assertSameAdapter(whole, engineDir, 1e-4, "torchrun vs engine");
  const torchEvents = events(whole);
  const losses = (es: TrainEvent[], type: "step" | "validation") => es.filter((e) => e.type === type).map((e) => (e as { loss: number }).loss);
  assert.equal(losses(torchEvents, "step").length, 8);
  for (const type of ["step", "validation"] as const)
    losses(torchEvents, type).forEach((l, i) => assert.ok(Math.abs(l - losses(engineEvents, type)[i]) <= 1e-4, `${type} ${i}: ${l} vs ${losses(engineEvents, type)[i]}`));
  process.stdout.write(`# torchrun (2 ranks) vs engine after 8 steps: max |difference| ${diff.toExponential(2)}\n`);

  // (c) Rank 1 dies at once after step 5 (checkpoint at 4); torchrun restarts the workers, which resume.
  const killed = path.join(root, "killed");
  runJob(job, 2, ["--out", killed], { EXCITOR_TORCH_KILL_AT: "1:5", MAX_RESTARTS: "1" });
  assertSameAdapter(killed, whole, 1e-6, "killed and resumed vs uninterrupted");
  const killedEvents = events(killed);
  assert.deepEqual(killedEvents.filter((e) => e.type === "step").map((e) => (e as { step: number }).step), [1, 2, 3, 4, 5, 6, 7, 8], "each step logged once");
  // Two starts: the first attempt, and the restarted one from the checkpoint of step 4.
  assert.deepEqual(killedEvents.filter((e) => e.type === "start").map((e) => (e as { resumedFromStep: number }).resumedFromStep), [0, 4]);

  // The run folder, copied back, is a run of the Runs view with its history, and chat and attention use its adapter.
  const runs = path.join(root, "workspace/.excitor/runs");
  fs.mkdirSync(runs, { recursive: true });
  fs.cpSync(killed, path.join(runs, "from-cluster"), { recursive: true });
  const manager = new RunManager(runs, {} as Launcher, () => "auto", () => {});
  const [run] = manager.list();
  assert.equal(run.id, "from-cluster");
  assert.equal(run.status, "done");
  assert.ok(run.hasAdapter && !run.canResume);
  assert.equal(run.spec.model, model);
  const history = manager.history(run.id);
  assert.equal(history.at(-1)?.type, "done");
  assert.match((history.find((e) => e.type === "start") as { backend: string }).backend, /^pytorch .*DDP × 2/);
  const gen = excitor(["generate", "--model", model, "--adapter", run.dir, "--prompt", "say it again.", "--max-tokens", "4", "--temperature", "0"]);
  assert.equal(gen.code, 0, gen.stderr);
  const att = excitor(["attention", "--model", model, "--adapter", run.dir, "--prompt", "say it again.", "--response", "tom saw a cat", "--json"]);
  assert.equal(att.code, 0, att.stderr);
  assert.ok(JSON.parse(att.stdout), "the attention report");
});

test("export-job refuses what the job cannot train, in one line, and leaves nothing behind", () => {
  const root = tempDir();
  const { model, data } = goldenWithTokenizer(root);
  assertUserError(excitor(["export-job", "--model", path.join(FIXTURES, "stories260k/gguf/stories260K-f32.v3.gguf"), "--data", data, "--out", path.join(root, "g")]), "GGUF");
  assert.ok(!fs.existsSync(path.join(root, "g")));
  fs.mkdirSync(path.join(root, "full"));
  fs.writeFileSync(path.join(root, "full/x"), "");
  assertUserError(excitor(["export-job", "--model", model, "--data", data, "--out", path.join(root, "full")]), "--out", "not an empty folder");
  const bad = path.join(root, "bad.jsonl");
  fs.writeFileSync(bad, '{"instruction": "a", "output": "b"}\n{"instruction": 3}\n');
  assertUserError(excitor(["export-job", "--model", model, "--data", bad, "--out", path.join(root, "b")]), "bad.jsonl:2");
  assert.deepEqual(fs.readdirSync(root).sort(), ["copy.jsonl", "bad.jsonl", "full", "golden"].sort(), "no job folder or temporary left");

  const job = path.join(root, "job");
  exportJob(model, data, job, "--max-steps", "1");
  const fsdp = spawnSync("bash", [path.join(job, "run.sh"), "--fsdp"], { encoding: "utf8", env: { ...process.env, PYTHON, NPROC: "1", MAX_RESTARTS: "0" } });
  assert.notEqual(fsdp.status, 0);
  assert.match(fsdp.stdout + fsdp.stderr, /--fsdp shards the base across CUDA GPUs/);
});
