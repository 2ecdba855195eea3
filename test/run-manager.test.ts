/**
 * The extension's run manager against the real engine (the bundled `excitor` CLI in a child
 * process, as the extension runs it): a run's events and status, Stop keeping a checkpoint and
 * Resume finishing the run, bad datasets refused with file and line before a run exists, runs
 * cut off by a window reload found at the next start, a run folder deleted mid-run, and the runs on disk.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ExcitorInputError } from "../engine/errors";
import type { TrainEvent } from "../engine/train/events";
import { eachLine, nodeLauncher } from "../extension/engine-process";
import { RUN_FILE, RunManager, type RunInfo } from "../extension/run-manager";
import { demoSpec, trainArgs, type RunSpec } from "../extension/run-spec";
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

/** Resolves once `id` has taken a training step. */
function firstStep(runs: RunManager, id: string): Promise<void> {
  return new Promise((resolve) => {
    const sub = runs.onEvent((rid, e) => {
      if (rid === id && e.type === "step") {
        sub.dispose();
        resolve();
      }
    });
  });
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
  assert.equal(stopped.canResume, true, "Resume is offered: there is a checkpoint");
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

/** The error `fn` throws, which must be the engine's input error (file and line for the editor). */
function inputError(fn: () => unknown): ExcitorInputError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ExcitorInputError, `an input error, got ${String(e)}`);
    return e;
  }
  assert.fail("expected an error");
}

test("a malformed dataset is refused before a run exists: the engine's message with file and line, and no run folder", () => {
  const bad = path.join(root, "bad.jsonl");
  fs.writeFileSync(bad, '{"instruction":"a","output":"b"}\n{"instruction":"c","output":"d"}\n{"instruction": oops}\n');
  const { runs } = manager();
  const e = inputError(() => runs.start(spec({ data: bad }), "bad"));
  assert.equal(e.file, bad);
  assert.equal(e.line, 3);
  assert.match(e.message, /bad\.jsonl:3: malformed JSON/);
  assert.deepEqual(runs.list(), []);
  assert.equal(fs.existsSync(runs.root) ? fs.readdirSync(runs.root).length : 0, 0, "no folder was made");
});

test("a model folder without weights is refused before a run exists, naming it", () => {
  const { runs } = manager();
  const missing = path.join(root, "no-such-model");
  assert.match(inputError(() => runs.start(spec({ model: missing }), "nomodel")).message, new RegExp(`^${missing.replace(/[/\\.]/g, "\\$&")}: model folder not found`));
  const noWeights = path.join(root, "no-weights");
  fs.mkdirSync(noWeights, { recursive: true });
  for (const f of ["config.json", "tokenizer.json"]) fs.copyFileSync(path.join(model, f), path.join(noWeights, f));
  fs.writeFileSync(path.join(noWeights, "model.gguf"), "GGUF");
  assert.equal(inputError(() => runs.start(spec({ model: noWeights }), "noweights")).message, `${noWeights}: no model.safetensors or model.safetensors.index.json (found model.gguf: only safetensors weights are supported)`);
  assert.deepEqual(runs.list(), []);
});

test("a record the engine rejects before its first step removes the run: the error keeps its file and line, no run is listed", async () => {
  // Well-formed, so the check before start passes; but its prompt is longer than max length,
  // which only the engine's tokenizer can tell.
  const long = writeAlpaca(path.join(root, "long.jsonl"), [{ instruction: "Name it.", output: "cat" }, { instruction: "x".repeat(400), output: "dog" }]);
  const { runs } = manager();
  const info = runs.start(spec({ data: long, maxLength: 200 }), "long");
  const end = await finished(runs, info.id);
  assert.equal(end.status, "failed");
  assert.equal(end.discarded, true);
  assert.equal(end.error?.file, long);
  assert.equal(end.error?.line, 2);
  assert.match(end.error!.message, /long\.jsonl:2: prompt is \d+ tokens, longer than max length 200/);
  assert.equal(fs.existsSync(info.dir), false, "the run's folder is gone");
  assert.deepEqual(runs.list(), []);
});

/** The id of a process that has exited (so no engine runs under it). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", ""]);
  return r.pid!;
}

test("a run left 'running' by a window that went away reads as interrupted; Resume needs a checkpoint; delete removes a run folder only", async () => {
  const { runs } = manager();
  const dir = path.join(runs.root, "orphan");
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, RUN_FILE), JSON.stringify({ name: "orphan", spec: spec(), status: "running", createdAt: new Date().toISOString(), pid: deadPid() }));
  const orphan = runs.get("orphan")!;
  assert.equal(orphan.status, "interrupted");
  assert.equal(orphan.canResume, false, "no checkpoint: Resume is not offered");
  assert.throws(() => runs.resume("orphan"), /has no checkpoint to resume from/);
  // The next start tells about it once.
  assert.deepEqual((await runs.collectInterrupted(0)).map((r) => [r.id, r.status]), [["orphan", "interrupted"]]);
  assert.deepEqual(await runs.collectInterrupted(0), []);
  assert.equal(runs.get("orphan")?.status, "interrupted");
  fs.mkdirSync(path.join(runs.root, "not-a-run"));
  assert.throws(() => runs.delete("not-a-run"), /not an Excitor run folder/);
  assert.ok(fs.existsSync(path.join(runs.root, "not-a-run")));
  runs.delete("orphan");
  assert.equal(fs.existsSync(dir), false);
  assert.deepEqual(runs.list(), []);
});

test("a window reload mid-run: the engine checkpoints as its host goes, the next start reports the run interrupted once, and Resume finishes it", async () => {
  // The first window: its engine, as the run manager starts it, with the record it writes. The
  // window then goes away without a word (no dispose): the engine's stdin ends.
  const { runs } = manager();
  const id = "reloaded";
  const dir = path.join(runs.root, id);
  fs.mkdirSync(dir, { recursive: true });
  const child = spawn(process.execPath, [path.join(REPO, "dist", "bundle", "excitor.js"), ...trainArgs(spec({ epochs: 40 }), dir, false, "tfjs-wasm")], { stdio: ["pipe", "pipe", "ignore"] });
  fs.writeFileSync(path.join(dir, RUN_FILE), JSON.stringify({ name: "reloaded", spec: spec({ epochs: 40 }), status: "running", createdAt: new Date().toISOString(), pid: child.pid }));
  await new Promise<void>((resolve) => eachLine(child.stdout!, (line) => JSON.parse(line).type === "step" && resolve()));
  child.stdin!.end();
  // The next window starts while that engine still writes its checkpoint: it waits for it.
  assert.equal(runs.get(id)?.status, "running", "still running (in the old window's engine)");
  assert.equal(runs.get(id)?.live, false);
  const changes: string[] = [];
  runs.onStatus((info) => changes.push(`${info.id} ${info.status}`));
  const found = await runs.collectInterrupted();
  assert.deepEqual(changes, [`${id} interrupted`], "what shows the run (its panel, the tree) hears of it");
  assert.deepEqual(found.map((r) => [r.id, r.status, r.canResume]), [[id, "interrupted", true]]);
  const code = child.exitCode ?? (await new Promise<number | null>((resolve) => child.once("exit", resolve)));
  assert.equal(code, 130, "the engine stopped itself cleanly");
  assert.deepEqual(await runs.collectInterrupted(0), [], "reported at one start only");
  const cancelled = runs.history(id).find((e) => e.type === "cancelled") as Extract<TrainEvent, { type: "cancelled" }>;
  assert.ok(cancelled && cancelled.step > 0, "a checkpoint was written as the window went");
  runs.resume(id);
  const done = await finished(runs, id);
  assert.equal(done.status, "done", JSON.stringify(done.error));
  const resumed = runs.history(id).filter((e) => e.type === "start").at(-1) as Extract<TrainEvent, { type: "start" }>;
  assert.equal(resumed.resumedFromStep, cancelled.step);
});

test("the window closing while a run trains (dispose) leaves it interrupted and resumable, not stopped", async () => {
  const { runs } = manager();
  const info = runs.start(spec({ epochs: 40 }), "closing");
  await firstStep(runs, info.id);
  const end = finished(runs, info.id);
  runs.dispose();
  assert.equal((await end).status, "interrupted");
  assert.equal(runs.get(info.id)?.canResume, true);
  // A new window on the same runs folder is told about it.
  const next = new RunManager(runs.root, nodeLauncher(REPO, () => ({ threads: 0 })), () => "tfjs-wasm", () => {});
  assert.deepEqual((await next.collectInterrupted(0)).map((r) => r.id), [info.id]);
});

test("deleting a run's folder while it trains stops its engine cleanly: status deleted, no error in the log, nothing left", async () => {
  const { runs, log } = manager();
  const info = runs.start(spec({ epochs: 400 }), "doomed");
  const pid = JSON.parse(fs.readFileSync(path.join(info.dir, RUN_FILE), "utf8")).pid as number;
  await firstStep(runs, info.id);
  const end = finished(runs, info.id);
  fs.rmSync(info.dir, { recursive: true, force: true });
  const last = await end;
  assert.equal(last.status, "deleted");
  assert.equal(runs.isRunning(info.id), false);
  assert.throws(() => process.kill(pid, 0), /ESRCH/, "the engine process is gone");
  assert.equal(fs.existsSync(info.dir), false, "no part of the folder is written again");
  assert.deepEqual(runs.list(), []);
  const bad = log.filter((l) => /error|ENOENT/i.test(l));
  assert.deepEqual(bad, [], "the log holds no error");
  assert.ok(log.some((l) => l.includes("folder was deleted")), log.join("\n"));
});

test("Run Demo: the demo program runs as a run with the recipe the Runs view shows, streams its training events and leaves its report beside the adapter", async () => {
  const { runs } = manager();
  const steps: number[] = [];
  const starts: Extract<TrainEvent, { type: "start" }>[] = [];
  runs.onEvent((_, e) => (e.type === "step" ? steps.push(e.step) : e.type === "start" && starts.push(e)));
  const shown = demoSpec(path.join(REPO, "demo", "model"), path.join(REPO, "demo", "data", "train.jsonl"), 256);
  const info = runs.start({ ...shown, maxSteps: 2 }, "demo");
  const end = await finished(runs, info.id);
  assert.equal(end.status, "done", JSON.stringify(end.error));
  assert.deepEqual(steps, [1, 2]);
  assert.ok(end.hasAdapter);
  assert.equal(end.canResume, false, "the demo starts over; it is never offered for Resume");
  // What the demo program trained is what the spec (and so the Runs view) says.
  assert.deepEqual([starts[0].learningRate, starts[0].effectiveBatch, starts[0].epochs], [shown.learningRate, shown.batchSize, shown.epochs]);
  const adapterConfig = JSON.parse(fs.readFileSync(path.join(info.dir, "adapter_config.json"), "utf8"));
  assert.deepEqual([adapterConfig.num_prompts, adapterConfig.rank], [shown.prompts, shown.rank]);
  assert.equal(shown.maxLength, 256, "512 cut to the demo model's context");
  assert.equal(end.report, path.join(info.dir, "report.md"));
  assert.match(fs.readFileSync(end.report!, "utf8"), /^# Excitor demo report/);
  assert.ok(fs.existsSync(path.join(info.dir, RUN_FILE)), "the demo keeps the run record it did not write");
});
