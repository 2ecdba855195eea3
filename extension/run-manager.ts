/**
 * The runs: starting training (or the demo) in an engine process, relaying its events, stopping
 * and resuming it, and listing what is on disk. One folder per run under the runs folder holds the
 * adapter, metrics.jsonl, the checkpoint and run.json (the spec, status, engine process and last
 * error). The training panel, the progress notification and the runs tree all listen here;
 * nothing else talks to a training process. No vscode import, so it is tested in plain Node.
 *
 * A run never outlives the window that started it: when the extension host goes (a window
 * reload, the editor closing), the engine sees its stdin end, writes a checkpoint and exits. The
 * next start finds the run marked running with no engine left, calls it interrupted and offers
 * Resume (collectInterrupted).
 */
import type { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ExcitorInputError } from "../engine/errors";
import { writeFileAtomic } from "../engine/fs-atomic";
import { STATE_FILE } from "../engine/train/checkpoint";
import type { TrainEvent } from "../engine/train/events";
import { eachLine, type Launcher } from "./engine-process";
import { checkDataset, checkModel } from "./preflight";
import { trainArgs, type RunSpec } from "./run-spec";

/**
 * "interrupted": the window that ran it went away (a reload, the editor closing) and its engine
 * stopped. "deleted": its folder was removed while it trained (only ever reported as a status
 * change, since nothing is left on disk to read it from).
 */
export type RunStatus = "running" | "done" | "stopped" | "failed" | "interrupted" | "deleted";

export interface RunError {
  message: string;
  /** The file and 1-based line the error is about, when it is about one (a dataset line). */
  file?: string;
  line?: number;
}

export interface RunInfo {
  id: string;
  dir: string;
  name: string;
  spec: RunSpec;
  status: RunStatus;
  createdAt: string;
  error?: RunError;
  /** The adapter files exist (a finished run, or a stopped one that saved its adapter). */
  hasAdapter: boolean;
  /** Its engine runs in this window (a run marked running may belong to another window). */
  live: boolean;
  /** Resume would continue it: a training run, not running or done, with a checkpoint. */
  canResume: boolean;
  /** The demo's before/after report, when it wrote one. */
  report?: string;
  /**
   * Set on the last status change of a run the engine rejected before it began (its model or
   * data, found bad by the engine): the folder is removed, as the run never existed.
   */
  discarded?: boolean;
}

interface RunRecord {
  name: string;
  spec: RunSpec;
  status: RunStatus;
  createdAt: string;
  error?: RunError;
  /** The engine's process id while it runs: tells a run cut off by a reload from one still running. */
  pid?: number;
  /** The user has been told that this run was interrupted. */
  noticed?: boolean;
}

interface LiveRun {
  child: ChildProcess;
  events: TrainEvent[];
  stopping: boolean;
  /** The window is going away: the run ends interrupted, to be offered for Resume at the next start. */
  shutdown: boolean;
  /** Its folder was deleted: the engine is ended and nothing more is written. */
  gone: boolean;
  record: RunRecord;
}

export const RUN_FILE = "run.json";
const METRICS = "metrics.jsonl";

type Listener<T extends unknown[]> = (...args: T) => void;

export class RunManager {
  private readonly live = new Map<string, LiveRun>();
  /** Looks for deleted run folders while a run is live (the engine may be deep in a long step). */
  private watcher: NodeJS.Timeout | undefined;
  private readonly eventListeners = new Set<Listener<[string, TrainEvent]>>();
  private readonly statusListeners = new Set<Listener<[RunInfo]>>();

  constructor(
    readonly root: string,
    private readonly launcher: Launcher,
    private readonly backend: () => string,
    private readonly log: (line: string) => void,
  ) {}

  onEvent(l: Listener<[string, TrainEvent]>): { dispose(): void } {
    this.eventListeners.add(l);
    return { dispose: () => this.eventListeners.delete(l) };
  }

  onStatus(l: Listener<[RunInfo]>): { dispose(): void } {
    this.statusListeners.add(l);
    return { dispose: () => this.statusListeners.delete(l) };
  }

  /**
   * Checks the model and the dataset as the engine would, then creates the run's folder and
   * starts it. A bad model or dataset throws an ExcitorInputError (file and line) and creates nothing.
   */
  start(spec: RunSpec, name: string): RunInfo {
    const problem = preflight(spec);
    if (problem) throw new ExcitorInputError(problem.message, problem.file, problem.line);
    const id = uniqueId(this.root, name);
    const dir = path.join(this.root, id);
    fs.mkdirSync(dir, { recursive: true });
    this.launch(id, { name, spec, status: "running", createdAt: new Date().toISOString() }, false);
    return this.get(id)!;
  }

  /** Continues a stopped, failed or interrupted run from its checkpoint, with the spec it was started with. */
  resume(id: string): RunInfo {
    const info = this.get(id);
    if (!info) throw new Error(`no run ${id} in ${this.root}`);
    if (info.status === "running") throw new Error(`run ${info.name} is already running`);
    if (!info.canResume) throw new Error(info.spec.kind === "demo" ? `the demo cannot be resumed; run it again with Excitor: Run Demo` : `run ${info.name} has no checkpoint to resume from`);
    this.launch(id, { name: info.name, spec: info.spec, status: "running", createdAt: info.createdAt }, true);
    return this.get(id)!;
  }

  /**
   * The runs that were training when the window that ran them went away, once their engines
   * have stopped (each writes a checkpoint first; this waits up to `waitMs` for them). Each is
   * marked interrupted (a status change for the listeners: a panel restored while its engine
   * was still stopping shows it) and returned once, so the user is told about it at one start only.
   */
  async collectInterrupted(waitMs = 60_000): Promise<RunInfo[]> {
    const records = () =>
      this.ids()
        .filter((id) => !this.live.has(id))
        .map((id) => ({ id, rec: this.record(id) }))
        .filter((r): r is { id: string; rec: RunRecord } => r.rec !== undefined && (r.rec.status === "running" || (r.rec.status === "interrupted" && !r.rec.noticed)));
    const end = Date.now() + waitMs;
    while (records().some((r) => engineAlive(r.rec.pid, path.join(this.root, r.id))) && Date.now() < end) await new Promise((r) => setTimeout(r, 250));
    const found: RunInfo[] = [];
    for (const { id, rec } of records()) {
      if (engineAlive(rec.pid, path.join(this.root, id))) continue; // still running elsewhere (another window)
      this.write(path.join(this.root, id), { ...rec, status: "interrupted", noticed: true, pid: undefined });
      const info = this.get(id)!;
      found.push(info);
      for (const l of this.statusListeners) l(info);
    }
    return found;
  }

  /**
   * Asks the engine to stop after the current step: it writes a checkpoint and the adapter, then
   * exits. The request goes through the engine's stdin ("stop"), which works on every platform.
   */
  stop(id: string): boolean {
    const run = this.live.get(id);
    if (!run) return false;
    run.stopping = true;
    run.child.stdin?.write("stop\n");
    return true;
  }

  /** Whether the engine of `id` runs in this window. */
  isRunning(id: string): boolean {
    return this.live.has(id);
  }

  /** The runs whose engines run in this window. */
  running(): RunInfo[] {
    return [...this.live.keys()].map((id) => this.get(id)).filter((r): r is RunInfo => r !== undefined);
  }

  /** The events so far: live ones for a running run, else those in its metrics.jsonl. */
  history(id: string): TrainEvent[] {
    const run = this.live.get(id);
    if (run) return run.events.slice();
    const file = path.join(this.root, id, METRICS);
    if (!fs.existsSync(file)) return [];
    const events: TrainEvent[] = [];
    for (const line of fs.readFileSync(file, "utf8").split("\n")) {
      if (line.trim() === "") continue;
      try {
        events.push(JSON.parse(line) as TrainEvent);
      } catch {
        // A line cut short by a crash: the rest is still worth showing.
      }
    }
    return events;
  }

  list(): RunInfo[] {
    return this.ids()
      .map((id) => this.get(id))
      .filter((r): r is RunInfo => r !== undefined)
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  get(id: string): RunInfo | undefined {
    const dir = path.join(this.root, id);
    const rec = this.record(id);
    if (!rec) return undefined;
    const live = this.live.has(id);
    // Marked running, but not by this window: running elsewhere while its engine lives, else cut off.
    const status: RunStatus = rec.status === "running" && !live && !engineAlive(rec.pid, dir) ? "interrupted" : rec.status;
    const report = path.join(dir, "report.md");
    const hasCheckpoint = fs.existsSync(path.join(dir, STATE_FILE));
    return {
      id,
      dir,
      name: rec.name,
      spec: rec.spec,
      status,
      createdAt: rec.createdAt,
      error: rec.error,
      hasAdapter: fs.existsSync(path.join(dir, "adapter_model.safetensors")),
      live,
      canResume: canResume(rec.spec, status, hasCheckpoint),
      report: fs.existsSync(report) ? report : undefined,
    };
  }

  /** Deletes a run's folder (a running run is stopped first and cannot be deleted). */
  delete(id: string): void {
    if (this.isRunning(id)) throw new Error("stop the run before deleting it");
    const dir = path.join(this.root, id);
    if (!fs.existsSync(path.join(dir, RUN_FILE))) throw new Error(`${dir} is not an Excitor run folder`);
    fs.rmSync(dir, { recursive: true, force: true });
  }

  /**
   * The window is going away: every run stops after its step with a checkpoint and is marked
   * interrupted, so that the next start offers to resume it.
   */
  dispose(): void {
    for (const [id, run] of this.live) {
      run.shutdown = true;
      this.write(path.join(this.root, id), { ...run.record, status: "interrupted" });
      this.stop(id);
    }
    clearInterval(this.watcher);
  }

  // ------------------------------------------------------------------------------------------

  private launch(id: string, start: RunRecord, resume: boolean): void {
    const { spec } = start;
    const dir = path.join(this.root, id);
    const args =
      spec.kind === "demo"
        ? ["--out", dir, "--json", "--model", spec.model, "--backend", this.backend(), ...(spec.maxSteps ? ["--steps", String(spec.maxSteps)] : [])]
        : trainArgs(spec, dir, resume, this.backend());
    this.log(`[${id}] ${spec.kind === "demo" ? "demo" : "excitor"} ${args.join(" ")}`);
    const child = spec.kind === "demo" ? this.launcher.demo(args) : this.launcher.cli(args);
    const record: RunRecord = { name: start.name, spec, status: "running", createdAt: start.createdAt, pid: child.pid };
    const run: LiveRun = { child, events: resume ? this.history(id) : [], stopping: false, shutdown: false, gone: false, record };
    this.live.set(id, run);
    this.write(dir, record);
    this.watch();
    let error: RunError | undefined;
    /** The engine reported bad input (its model or data) in an error event. */
    let inputError = false;
    let lastStderr = "";
    eachLine(child.stdout!, (line) => {
      if (run.gone) return;
      let e: TrainEvent | { type: "error"; message: string; file?: string; line?: number };
      try {
        e = JSON.parse(line);
      } catch {
        this.log(`[${id}] ${line}`);
        return;
      }
      if (e.type === "error") {
        error = { message: e.message, file: e.file, line: e.line };
        inputError = true;
        return;
      }
      run.events.push(e);
      if (e.type === "log") this.log(`[${id}] ${e.level}: ${e.message}`);
      for (const l of this.eventListeners) l(id, e);
    });
    eachLine(child.stderr!, (line) => {
      // The engine fails to write into a folder deleted under it; that is the deletion, not an error.
      if (run.gone || this.vanished(id, run)) return;
      lastStderr = line;
      this.log(`[${id}] ${line}`);
    });
    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
      if (this.live.get(id) !== run) return;
      this.live.delete(id);
      if (this.live.size === 0) clearInterval(this.watcher);
      if (run.gone || this.vanished(id, run)) return this.finishDeleted(id, run);
      const last = run.events[run.events.length - 1];
      let status: RunStatus;
      if (code === 0 && (spec.kind === "demo" || last?.type === "done")) status = "done";
      else if (run.shutdown) status = "interrupted";
      else if (code === 130 || last?.type === "cancelled" || (run.stopping && signal !== null)) status = "stopped";
      else {
        status = "failed";
        error ??= { message: spawnError?.message ?? (lastStderr.replace(/^excitor: (internal )?error: /, "") || `the engine exited with ${signal ?? `code ${code}`}`) };
      }
      this.log(`[${id}] ${status}${status === "failed" ? `: ${error?.message}` : ""}`);
      // Rejected before it began (a model or dataset problem the checks before start cannot see,
      // such as a record the chat template renders empty): nothing to keep, no run to list.
      if (status === "failed" && inputError && !resume && !run.events.some((e) => e.type === "start")) {
        fs.rmSync(dir, { recursive: true, force: true });
        const info: RunInfo = { ...this.memo(id, run.record), status, error, discarded: true };
        for (const l of this.statusListeners) l(info);
        return;
      }
      this.write(dir, { ...run.record, status, error: status === "failed" ? error : undefined, pid: undefined });
      const info = this.get(id)!;
      for (const l of this.statusListeners) l(info);
    };
    child.on("error", (e) => finish(null, null, e));
    child.on("close", (code, signal) => finish(code, signal));
    const info = this.get(id)!;
    for (const l of this.statusListeners) l(info);
  }

  /** Whether the folder of a live run is gone; if so, ends its engine (once). */
  private vanished(id: string, run: LiveRun): boolean {
    if (run.gone) return true;
    if (fs.existsSync(path.join(this.root, id, RUN_FILE))) return false;
    run.gone = true;
    this.log(`[${id}] the run's folder was deleted; its training is stopped`);
    run.child.kill();
    return true;
  }

  private finishDeleted(id: string, run: LiveRun): void {
    // A checkpoint being written as the folder went may have made part of it again.
    fs.rmSync(path.join(this.root, id), { recursive: true, force: true });
    const info: RunInfo = { ...this.memo(id, run.record), status: "deleted" };
    for (const l of this.statusListeners) l(info);
  }

  /** A run's info from memory, for a run whose folder is no more. */
  private memo(id: string, rec: RunRecord): RunInfo {
    return { id, dir: path.join(this.root, id), name: rec.name, spec: rec.spec, status: rec.status, createdAt: rec.createdAt, hasAdapter: false, live: false, canResume: false };
  }

  private watch(): void {
    clearInterval(this.watcher);
    this.watcher = setInterval(() => {
      for (const [id, run] of this.live) this.vanished(id, run);
    }, 1000);
    this.watcher.unref();
  }

  private ids(): string[] {
    if (!fs.existsSync(this.root)) return [];
    return fs
      .readdirSync(this.root, { withFileTypes: true })
      .filter((d) => d.isDirectory() && fs.existsSync(path.join(this.root, d.name, RUN_FILE)))
      .map((d) => d.name);
  }

  private record(id: string): RunRecord | undefined {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.root, id, RUN_FILE), "utf8")) as RunRecord;
    } catch {
      return undefined;
    }
  }

  private write(dir: string, rec: RunRecord): void {
    writeFileAtomic(path.join(dir, RUN_FILE), JSON.stringify(rec, null, 2) + "\n");
  }
}

/**
 * Resume continues a run from its checkpoint with its own spec. The demo program cannot resume
 * (it starts over), and a run without a checkpoint has nothing to continue from.
 */
export function canResume(spec: RunSpec, status: RunStatus, hasCheckpoint: boolean): boolean {
  return spec.kind === "train" && hasCheckpoint && (status === "stopped" || status === "failed" || status === "interrupted");
}

/** The model and dataset problem that would fail `spec` at once in the engine, if any. */
export function preflight(spec: RunSpec): RunError | undefined {
  const model = checkModel(spec.model);
  if (!model.ok) return model.error;
  if (spec.kind === "demo") return undefined; // the demo reads its own built-in data
  const data = checkDataset(spec.data);
  return data.ok ? undefined : data.error;
}

/**
 * Whether the engine that `pid` was is still running. On Linux its command line must name the
 * run's folder (a process id is reused once its process is gone) and a zombie counts as gone.
 */
function engineAlive(pid: number | undefined, dir: string): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false; // EPERM: it exists, as another user
  }
  if (process.platform !== "linux") return true;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    if (/\) Z /.test(stat)) return false;
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(dir);
  } catch {
    return false;
  }
}

/** A folder name from the run's name and the time, unique under `root`. */
function uniqueId(root: string, name: string): string {
  const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40) || "run";
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  let id = `${slug}-${stamp}`;
  for (let i = 2; fs.existsSync(path.join(root, id)); i++) id = `${slug}-${stamp}-${i}`;
  return id;
}
