/**
 * The runs: starting training (or the demo) in an engine process, relaying its events, stopping
 * and resuming it, and listing what is on disk. One folder per run under the runs folder holds the
 * adapter, metrics.jsonl, the checkpoint and run.json (the spec, status and last error). The
 * training panel, the progress notification and the runs tree all listen here; nothing else
 * talks to a training process. No vscode import, so it is tested in plain Node.
 */
import type { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { writeFileAtomic } from "../engine/fs-atomic";
import type { TrainEvent } from "../engine/train/events";
import { eachLine, type Launcher } from "./engine-process";
import { trainArgs, type RunSpec } from "./run-spec";

export type RunStatus = "running" | "done" | "stopped" | "failed";

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
  /** The demo's before/after report, when it wrote one. */
  report?: string;
}

interface RunRecord {
  name: string;
  spec: RunSpec;
  status: RunStatus;
  createdAt: string;
  error?: RunError;
}

export const RUN_FILE = "run.json";
const METRICS = "metrics.jsonl";

type Listener<T extends unknown[]> = (...args: T) => void;

export class RunManager {
  private readonly live = new Map<string, { child: ChildProcess; events: TrainEvent[]; stopping: boolean }>();
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

  /** Creates the run's folder and starts it. */
  start(spec: RunSpec, name: string): RunInfo {
    const id = uniqueId(this.root, name);
    const dir = path.join(this.root, id);
    fs.mkdirSync(dir, { recursive: true });
    this.write(dir, { name, spec, status: "running", createdAt: new Date().toISOString() });
    this.launch(id, spec, false);
    return this.get(id)!;
  }

  /** Continues a stopped or failed run from its checkpoint, with the spec it was started with. */
  resume(id: string): RunInfo {
    const info = this.get(id);
    if (!info) throw new Error(`no run ${id} in ${this.root}`);
    if (this.isRunning(id)) throw new Error(`run ${info.name} is already running`);
    if (!fs.existsSync(path.join(info.dir, "checkpoint"))) throw new Error(`run ${info.name} has no checkpoint to resume from`);
    this.write(info.dir, { name: info.name, spec: info.spec, status: "running", createdAt: info.createdAt });
    this.launch(id, info.spec, true);
    return this.get(id)!;
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

  isRunning(id: string): boolean {
    return this.live.has(id);
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
    if (!fs.existsSync(this.root)) return [];
    return fs
      .readdirSync(this.root, { withFileTypes: true })
      .filter((d) => d.isDirectory() && fs.existsSync(path.join(this.root, d.name, RUN_FILE)))
      .map((d) => this.get(d.name))
      .filter((r): r is RunInfo => r !== undefined)
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  get(id: string): RunInfo | undefined {
    const dir = path.join(this.root, id);
    let rec: RunRecord;
    try {
      rec = JSON.parse(fs.readFileSync(path.join(dir, RUN_FILE), "utf8")) as RunRecord;
    } catch {
      return undefined;
    }
    // A run marked running with no process here was cut off (the editor closed): it can be resumed.
    const status: RunStatus = rec.status === "running" && !this.live.has(id) ? "stopped" : rec.status;
    const report = path.join(dir, "report.md");
    return {
      id,
      dir,
      name: rec.name,
      spec: rec.spec,
      status,
      createdAt: rec.createdAt,
      error: rec.error,
      hasAdapter: fs.existsSync(path.join(dir, "adapter_model.safetensors")),
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

  /** Stops every run (the editor is closing); each keeps a checkpoint. */
  dispose(): void {
    for (const id of this.live.keys()) this.stop(id);
  }

  // ------------------------------------------------------------------------------------------

  private launch(id: string, spec: RunSpec, resume: boolean): void {
    const dir = path.join(this.root, id);
    const args =
      spec.kind === "demo"
        ? ["--out", dir, "--json", "--model", spec.model, "--backend", this.backend(), ...(spec.maxSteps ? ["--steps", String(spec.maxSteps)] : [])]
        : trainArgs(spec, dir, resume, this.backend());
    this.log(`[${id}] ${spec.kind === "demo" ? "demo" : "excitor"} ${args.join(" ")}`);
    const child = spec.kind === "demo" ? this.launcher.demo(args) : this.launcher.cli(args);
    const run = { child, events: resume ? this.history(id) : [], stopping: false };
    this.live.set(id, run);
    let error: RunError | undefined;
    let lastStderr = "";
    eachLine(child.stdout!, (line) => {
      let e: TrainEvent | { type: "error"; message: string; file?: string; line?: number };
      try {
        e = JSON.parse(line);
      } catch {
        this.log(`[${id}] ${line}`);
        return;
      }
      if (e.type === "error") {
        error = { message: e.message, file: e.file, line: e.line };
        return;
      }
      run.events.push(e);
      if (e.type === "log") this.log(`[${id}] ${e.level}: ${e.message}`);
      for (const l of this.eventListeners) l(id, e);
    });
    eachLine(child.stderr!, (line) => {
      lastStderr = line;
      this.log(`[${id}] ${line}`);
    });
    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
      if (!this.live.has(id)) return;
      this.live.delete(id);
      const last = run.events[run.events.length - 1];
      let status: RunStatus;
      if (code === 0 && (spec.kind === "demo" || last?.type === "done")) status = "done";
      else if (code === 130 || last?.type === "cancelled" || (run.stopping && signal !== null)) status = "stopped";
      else {
        status = "failed";
        error ??= { message: spawnError?.message ?? (lastStderr.replace(/^excitor: (internal )?error: /, "") || `the engine exited with ${signal ?? `code ${code}`}`) };
      }
      const rec = this.get(id)!;
      this.write(dir, { name: rec.name, spec, status, createdAt: rec.createdAt, error: status === "failed" ? error : undefined });
      this.log(`[${id}] ${status}${status === "failed" ? `: ${error?.message}` : ""}`);
      const info = this.get(id)!;
      for (const l of this.statusListeners) l(info);
    };
    child.on("error", (e) => finish(null, null, e));
    child.on("close", (code, signal) => finish(code, signal));
    const info = this.get(id)!;
    for (const l of this.statusListeners) l(info);
  }

  private write(dir: string, rec: RunRecord): void {
    writeFileAtomic(path.join(dir, RUN_FILE), JSON.stringify(rec, null, 2) + "\n");
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
