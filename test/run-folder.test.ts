/**
 * A run's --out folder trusts only what it checks: a resume checks the whole checkpoint before it
 * restores anything, a killed run's leftovers (temporary files, steps logged after the last
 * checkpoint, an adapter older than the checkpoint) are dealt with, and an --out that cannot be
 * written fails at once with one line naming it and why.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { openModel } from "../engine/load";
import { ExcitorInputError } from "../engine/errors";
import { fileIo } from "../engine/fs-atomic";
import { readHeader, readTensorF32, writeSafetensors, type F32Tensor } from "../engine/formats/safetensors";
import { TextTokenizer } from "../engine/tokenizer/tokenizer";
import { STATE_FILE } from "../engine/train/checkpoint";
import type { TrainEvent } from "../engine/train/events";
import { parseRetain } from "../engine/train/retention";
import { METRICS_FILE, TRAIN_DEFAULTS, train, type TrainOptions } from "../engine/train/trainer";
import { tempDir, writeAlpaca, writeTinyModel } from "./helpers/tiny-model";

const BIN = path.resolve(__dirname, "../../bin/excitor.js");
const DEMO = path.resolve(__dirname, "../../demo");

/** 12 records: 10 train in batches of 4 (3 steps per epoch, 6 in all), 2 validation. */
async function run(root: string, extra: Partial<TrainOptions>, onEvent?: (e: TrainEvent) => void) {
  const model = path.join(root, "model");
  if (!fs.existsSync(model)) writeTinyModel(model, { seed: 2 });
  const data = path.join(root, "data.jsonl");
  if (!fs.existsSync(data)) writeAlpaca(data, Array.from({ length: 12 }, (_, i) => ({ instruction: "Say it again.", input: `word ${i}`, output: `word ${i}` })));
  const rt = await openModel(model, { forTraining: true });
  try {
    return await train(rt, TextTokenizer.fromFolder(model), {
      ...TRAIN_DEFAULTS,
      dataFile: data,
      outDir: path.join(root, "out"),
      epochs: 2,
      batchSize: 4,
      microBatch: 4,
      validationShare: 0.2,
      checkpointEvery: 2,
      learningRate: 1e-2,
      retain: parseRetain(["none"]),
      baseModel: model,
      ...extra,
      onEvent,
    });
  } finally {
    rt.dispose();
  }
}

const stepsLogged = (out: string) =>
  fs
    .readFileSync(path.join(out, METRICS_FILE), "utf8")
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l) as TrainEvent)
    .filter((e) => e.type === "step")
    .map((e) => e.step);

/** A pid no process has now: a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", ""]);
  return r.pid!;
}

test("resume checks the whole checkpoint before it restores anything: shapes, AdamW's moments, the step, the values", async () => {
  const root = tempDir();
  const out = path.join(root, "out");
  const ac = new AbortController();
  const cut = await run(root, { signal: ac.signal }, (e) => e.type === "step" && e.step === 3 && ac.abort());
  assert.equal(cut.status, "cancelled");
  const file = path.join(out, STATE_FILE);
  const original = fs.readFileSync(file);
  const h = readHeader(file);
  const names = Object.keys(h.tensors).filter((n) => !n.startsWith("adamw."));
  const wide = names.find((n) => h.tensors[n].shape.length > 1)!;
  const before = () => ["metrics.jsonl", "adapter_model.safetensors"].map((f) => fs.readFileSync(path.join(out, f)));
  const folder = before();

  const variant = (change: (t: Record<string, F32Tensor>, meta: Record<string, string>) => void) => {
    fs.writeFileSync(file, original);
    const fresh = readHeader(file);
    const tensors = Object.fromEntries(Object.keys(h.tensors).map((n) => [n, readTensorF32(fresh, n)]));
    const meta = { ...h.metadata };
    change(tensors, meta);
    writeSafetensors(file, tensors, meta);
  };
  const cases: [string, (t: Record<string, F32Tensor>, meta: Record<string, string>) => void, RegExp][] = [
    ["same size, other shape", (t) => (t[wide] = { shape: [t[wide].data.length], data: t[wide].data }), new RegExp(`tensor "${wide}" has shape \\[\\d+\\] but this run trains \\[`)],
    ["one value more", (t) => (t[wide] = { shape: [t[wide].data.length + 1], data: new Float32Array(t[wide].data.length + 1) }), /has shape/],
    ["a trained tensor missing", (t) => delete t[names[0]], new RegExp(`tensor "${names[0]}" is missing`)],
    ["both moments of a tensor missing", (t) => (delete t[`adamw.m.${wide}`], delete t[`adamw.v.${wide}`]), new RegExp(`AdamW's moment "adamw\\.m\\.${wide}" is missing \\(and 1 more problem\\)`)],
    ["a moment of another shape", (t) => (t[`adamw.v.${wide}`] = { shape: [1], data: new Float32Array(1) }), /AdamW's moment "adamw\.v\..*" has shape \[1\] but its tensor has \[/],
    ["a tensor this run does not train", (t) => (t["extra.weight"] = { shape: [1], data: new Float32Array(1) }), /tensor "extra\.weight" is not one this run trains/],
    ["step past the run's end", (_, m) => (m.step = m.optimizer_step = "1000"), /step "1000" is not a whole number from 0 to 6/],
    ["step not a number", (_, m) => (m.step = "abc"), /step "abc" is not a whole number from 0 to 6/],
    ["negative step", (_, m) => (m.step = m.optimizer_step = "-5"), /step "-5" is not a whole number/],
    ["fractional step", (_, m) => (m.step = m.optimizer_step = "2.5"), /step "2\.5" is not a whole number/],
    ["optimizer step apart from the step", (_, m) => (m.optimizer_step = "2"), /optimizer_step 2 is not step 3/],
    ["a NaN value", (t) => (t[wide].data[1] = NaN), new RegExp(`tensor "${wide}" holds NaN at element 1`)],
    ["a negative second moment", (t) => (t[`adamw.v.${wide}`].data[0] = -1), /adamw\.v\..* holds -1 at index 0/],
  ];
  for (const [what, change, message] of cases) {
    variant(change);
    await assert.rejects(
      run(root, { resume: true }),
      (e: Error) => {
        assert.ok(e instanceof ExcitorInputError, `${what}: ${e.stack}`);
        assert.ok(e.message.startsWith(`${file}: cannot resume from this checkpoint: `), `${what}: ${e.message}`);
        assert.match(e.message, message, what);
        assert.ok(!e.message.includes("\n"));
        return true;
      },
      what,
    );
    assert.deepEqual(before(), folder, `${what}: the folder is as it was`);
  }

  fs.writeFileSync(file, original);
  const steps: number[] = [];
  const resumed = await run(root, { resume: true }, (e) => e.type === "step" && steps.push(e.step));
  assert.equal(resumed.status, "done");
  assert.deepEqual(steps, [4, 5, 6]);
});

test("a killed run: the next run removes its temporary files, the resume logs each step once and says the adapter is older than the checkpoint", async () => {
  const root = tempDir();
  const out = path.join(root, "out");
  const dead = deadPid();
  const leftovers = [`metrics.jsonl.tmp-${dead}-1`, `adapter_model.safetensors.tmp-${dead}-2`, path.join("checkpoint", `trainer_state.safetensors.tmp-${dead}-3`)];
  const live = `run.json.tmp-${process.ppid}-4`; // another process's write in progress
  fs.mkdirSync(path.join(out, "checkpoint"), { recursive: true });
  for (const f of [leftovers[0], live]) fs.writeFileSync(path.join(out, f), "half");

  // Killed after step 5 (an error out of the event handler stops it where it is): the checkpoint is
  // at step 4; the adapter is made the step-2 one, as a kill between the two writes leaves it.
  const atStep2 = path.join(root, "adapter-step-2.safetensors");
  const killed = run(root, {}, (e) => {
    if (e.type === "checkpoint" && e.step === 2) fs.copyFileSync(path.join(out, "adapter_model.safetensors"), atStep2);
    if (e.type === "step" && e.step === 5) throw new Error("killed");
  });
  await assert.rejects(killed, /killed/);
  assert.ok(!fs.existsSync(path.join(out, leftovers[0])), "a fresh run removes a killed write's temporary file");
  assert.ok(fs.existsSync(path.join(out, live)), "a live process's temporary file stays");
  fs.copyFileSync(atStep2, path.join(out, "adapter_model.safetensors"));
  for (const f of leftovers) fs.writeFileSync(path.join(out, f), "half");
  fs.appendFileSync(path.join(out, METRICS_FILE), '{"time":"2025-01-01T00:00:00.000Z","type":"st'); // a line the kill cut

  const events: TrainEvent[] = [];
  const resumed = await run(root, { resume: true }, (e) => events.push(e));
  assert.equal(resumed.status, "done");
  for (const f of leftovers) assert.ok(!fs.existsSync(path.join(out, f)), `${f} removed`);
  assert.ok(fs.existsSync(path.join(out, live)));
  const notice = events.find((e) => e.type === "log");
  assert.ok(notice?.type === "log" && notice.level === "info", JSON.stringify(events.filter((e) => e.type === "log")));
  assert.equal(notice.message, "adapter_model.safetensors is from step 2, the checkpoint from step 4: resuming from the checkpoint and rewriting adapter_model.safetensors from it");
  assert.deepEqual(stepsLogged(out), [1, 2, 3, 4, 5, 6], "each step once: steps after the checkpoint are logged by the run that redid them");
  assert.equal(readHeader(path.join(out, "adapter_model.safetensors")).metadata.step, "6");

  // An adapter that is not there at all (a kill before its first write) is said too, and written.
  fs.rmSync(path.join(out, "adapter_model.safetensors"));
  const again: TrainEvent[] = [];
  await run(root, { resume: true }, (e) => again.push(e));
  assert.ok(again.some((e) => e.type === "log" && e.message.startsWith("adapter_model.safetensors is missing, the checkpoint is from step 6")));
  assert.ok(fs.existsSync(path.join(out, "adapter_model.safetensors")));
});

test("a full disk: the run fails with one line naming the file it was writing and 'no space left on device', leaving no temporary file", async () => {
  const root = tempDir();
  const out = path.join(root, "out");
  const open = fileIo.open;
  // /dev/full fails every write with ENOSPC, as a full disk does.
  const fullFor = (pattern: RegExp) => (fileIo.open = (file, flags) => (pattern.test(file) ? fs.openSync("/dev/full", "w") : open(file, flags)));
  try {
    fullFor(/metrics\.jsonl$/);
    await assert.rejects(run(root, { maxSteps: 2 }), (e: Error) => {
      assert.ok(e instanceof ExcitorInputError, e.stack);
      assert.equal(e.message, `${path.join(out, METRICS_FILE)}: cannot write: no space left on device`);
      return true;
    });
    fullFor(/trainer_state\.safetensors\.tmp-/);
    fs.rmSync(out, { recursive: true });
    await assert.rejects(run(root, { maxSteps: 2 }), (e: Error) => {
      assert.ok(e instanceof ExcitorInputError, e.stack);
      assert.equal(e.message, `${path.join(out, STATE_FILE)}: cannot write: no space left on device`);
      return true;
    });
    assert.deepEqual(fs.readdirSync(path.join(out, "checkpoint")), [], "no temporary file left");
  } finally {
    fileIo.open = open;
  }
});

test("--out that cannot hold a run (a file, a read-only folder, a place that takes no new entries) fails at once with one line naming it and why", () => {
  const root = tempDir();
  const file = path.join(root, "a-file");
  fs.writeFileSync(file, "");
  const cases: [string, RegExp][] = [
    [file, /is a file, not a folder/],
    [path.join(file, "sub"), new RegExp(`${file} is a file, not a folder`)],
    // Nothing may create files in sysfs, root included: read-only for every user.
    ["/sys", /cannot write in the folder: (permission denied|read-only file system|operation not permitted)/],
    ["/sys/excitor-test", /cannot create the folder: (permission denied|read-only file system|operation not permitted)/],
    // Node's recursive mkdir loops forever here: /proc exists but takes no new entries.
    ["/proc/excitor-test", /cannot create the folder: \/proc does not accept new entries/],
  ];
  for (const [out, cause] of cases) {
    const r = spawnSync(process.execPath, [BIN, "train", "--model", path.join(DEMO, "model"), "--data", path.join(DEMO, "data", "train.jsonl"), "--out", out, "--max-steps", "1"], {
      encoding: "utf8",
      timeout: 30_000,
      env: { ...process.env, EXCITOR_DEBUG: "" },
    });
    assert.equal(r.status, 2, `${out}: exit 2 expected; stderr: ${r.stderr}${r.error ? ` (${r.error.message})` : ""}`);
    const lines = r.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0].startsWith(`excitor: error: --out ${out}: `), lines[0]);
    assert.match(lines[0], cause);
  }
  // An empty --out (an unset variable in a script) names the option rather than failing inside mkdir.
  const empty = spawnSync(process.execPath, [BIN, "train", "--model", path.join(DEMO, "model"), "--data", path.join(DEMO, "data", "train.jsonl"), "--out", "", "--max-steps", "1"], { encoding: "utf8", timeout: 30_000, env: { ...process.env, EXCITOR_DEBUG: "" } });
  assert.equal(empty.status, 2, empty.stderr);
  assert.equal(empty.stderr, "excitor: error: --out: is empty; give the folder for the adapter, checkpoints and metrics\n");
  // The check leaves nothing behind: a run that fails later (here, its model) made no folder.
  const r = spawnSync(process.execPath, [BIN, "train", "--model", path.join(root, "no-model"), "--data", path.join(DEMO, "data", "train.jsonl"), "--out", path.join(root, "new", "out")], { encoding: "utf8", timeout: 30_000 });
  assert.equal(r.status, 2, r.stderr);
  assert.ok(!fs.existsSync(path.join(root, "new")));
});
