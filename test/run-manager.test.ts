/**
 * The extension's run manager against the real engine (the bundled `excitor` CLI in a child
 * process, as the extension runs it): a run's events and status, Stop keeping a checkpoint and
 * Resume finishing the run, bad datasets reported with file and line, and the runs on disk.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { TrainEvent } from "../engine/train/events";
import { nodeLauncher } from "../extension/engine-process";
import { RUN_FILE, RunManager, type RunInfo } from "../extension/run-manager";
import type { RunSpec } from "../extension/run-spec";
import { tempDir, writeAlpaca, writeTinyModel } from "./helpers/tiny-model";

const REPO = path.resolve(__dirname, "../..");
const root = tempDir("excitor-runs-");
const model = writeTinyModel(path.join(root, "model"), { layers: 2 });
const data = writeAlpaca(
  path.join(root, "data.jsonl"),
  Array.from({ length: 16 }, (_, i) => ({ instruction: `Name animal ${i}.`, output: ["cat", "dog", "owl", "fox"][i % 4] })),
);
const spec = (o: Partial<RunSpec> = {}): RunSpec => ({ kind: "train", model, data, epochs: 2, batchSize: 4, maxLength: 256, validationShare: 0.1, seed: 3, prompts: 4, rank: 2, ...o });

function manager(): { runs: RunManager; log: string[] } {
  const log: string[] = [];
  return { runs: new RunManager(path.join(tempDir("excitor-runs-root-"), "runs"), nodeLauncher(REPO, () => ({ threads: 0 })), () => "tfjs-wasm", (l) => log.push(l)), log };
}

/** Resolves with the run's info once it is no longer running. */
function finished(runs: RunManager, id: string): Promise<RunInfo> {
  return new Promise((resolve) => {
    const sub = runs.onStatus((info) => {
      if (info.id === id && info.status !== "running") {
        sub.dispose();
        resolve(info);
      }
    });
  });
}

test("a run streams the engine's events, ends done with its adapter, and reads back the same history from disk", async () => {
  const { runs } = manager();
  const events: TrainEvent[] = [];
  runs.onEvent((_, e) => events.push(e));
  const info = runs.start(spec(), "animals");
  assert.equal(info.status, "running");
  assert.ok(runs.isRunning(info.id));
  const end = await finished(runs, info.id);
  assert.equal(end.status, "done", JSON.stringify(end.error));
  assert.ok(end.hasAdapter);
  assert.equal(events[0].type, "start");
  const steps = events.filter((e) => e.type === "step");
  const start = events[0] as Extract<TrainEvent, { type: "start" }>;
  assert.equal(steps.length, start.totalSteps);
  assert.equal(events.at(-1)!.type, "done");
  // What the training panel gets after a reload: the same steps, from metrics.jsonl.
  const fromDisk = runs.history(info.id).filter((e) => e.type === "step");
  assert.deepEqual(
    fromDisk.map((e) => (e as { loss: number }).loss),
    steps.map((e) => (e as { loss: number }).loss),
  );
  const listed = runs.list();
  assert.deepEqual(
    listed.map((r) => [r.id, r.status, r.name]),
    [[info.id, "done", "animals"]],
  );
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(info.dir, RUN_FILE), "utf8")).spec, spec());
});

test("Stop ends the engine after a step with a checkpoint; Resume continues it to the end", async () => {
  const { runs } = manager();
  const info = runs.start(spec({ epochs: 40 }), "long");
  await new Promise<void>((resolve) => {
    const sub = runs.onEvent((id, e) => {
      if (id === info.id && e.type === "step") {
        sub.dispose();
        resolve();
      }
    });
  });
  assert.equal(runs.stop(info.id), true);
  const stopped = await finished(runs, info.id);
  assert.equal(stopped.status, "stopped");
  assert.ok(fs.existsSync(path.join(info.dir, "checkpoint")), "a checkpoint is kept");
  assert.ok(stopped.hasAdapter, "the adapter so far is written");
  const cancelled = runs.history(info.id).find((e) => e.type === "cancelled") as Extract<TrainEvent, { type: "cancelled" }>;
  assert.ok(cancelled && cancelled.step > 0);
  assert.equal(runs.stop(info.id), false, "nothing left to stop");

  runs.resume(info.id);
  assert.throws(() => runs.resume(info.id), /already running/);
  const done = await finished(runs, info.id);
  assert.equal(done.status, "done");
  const history = runs.history(info.id);
  const start = history.find((e) => e.type === "start" && e.resumedFromStep > 0) as Extract<TrainEvent, { type: "start" }>;
  assert.equal(start.resumedFromStep, cancelled.step, "resumed where it stopped");
  const last = history.at(-1) as Extract<TrainEvent, { type: "done" }>;
  assert.equal(last.type, "done");
  assert.equal(last.step, start.totalSteps);
});

test("a malformed dataset fails the run with the file and line, and no adapter", async () => {
  const bad = path.join(root, "bad.jsonl");
  fs.writeFileSync(bad, '{"instruction":"a","output":"b"}\n{"instruction":"c","output":"d"}\n{"instruction": oops}\n');
  const { runs } = manager();
  const info = runs.start(spec({ data: bad }), "bad");
  const end = await finished(runs, info.id);
  assert.equal(end.status, "failed");
  assert.equal(end.error?.file, bad);
  assert.equal(end.error?.line, 3);
  assert.match(end.error!.message, /bad\.jsonl:3: malformed JSON/);
  assert.equal(end.hasAdapter, false);
  // The failure is kept with the run.
  assert.equal(runs.get(info.id)?.error?.line, 3);
});

test("a missing model folder fails the run with a message naming it", async () => {
  const { runs } = manager();
  const missing = path.join(root, "no-such-model");
  const end = await finished(runs, runs.start(spec({ model: missing }), "nomodel").id);
  assert.equal(end.status, "failed");
  assert.ok(end.error?.message.includes(missing), end.error?.message);
});

test("a run left 'running' by a closed editor reads as stopped; delete removes a run folder only", () => {
  const { runs } = manager();
  const dir = path.join(runs.root, "orphan");
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, RUN_FILE), JSON.stringify({ name: "orphan", spec: spec(), status: "running", createdAt: new Date().toISOString() }));
  assert.equal(runs.get("orphan")?.status, "stopped");
  fs.mkdirSync(path.join(runs.root, "not-a-run"));
  assert.throws(() => runs.delete("not-a-run"), /not an Excitor run folder/);
  assert.ok(fs.existsSync(path.join(runs.root, "not-a-run")));
  runs.delete("orphan");
  assert.equal(fs.existsSync(dir), false);
  assert.deepEqual(runs.list(), []);
});

test("Run Demo: the demo program runs as a run, streams its training events and leaves its report beside the adapter", async () => {
  const { runs } = manager();
  const steps: number[] = [];
  runs.onEvent((_, e) => e.type === "step" && steps.push(e.step));
  const info = runs.start({ kind: "demo", model: path.join(REPO, "demo", "model"), data: path.join(REPO, "demo", "data", "train.jsonl"), epochs: 4, batchSize: 16, maxLength: 512, validationShare: 0.05, seed: 0, maxSteps: 2 }, "demo");
  const end = await finished(runs, info.id);
  assert.equal(end.status, "done", JSON.stringify(end.error));
  assert.deepEqual(steps, [1, 2]);
  assert.ok(end.hasAdapter);
  assert.equal(end.report, path.join(info.dir, "report.md"));
  assert.match(fs.readFileSync(end.report!, "utf8"), /^# Excitor demo report/);
  assert.ok(fs.existsSync(path.join(info.dir, RUN_FILE)), "the demo keeps the run record it did not write");
});
