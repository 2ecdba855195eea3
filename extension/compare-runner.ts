/**
 * "Excitor: Compare Methods" without the editor: runs `excitor compare --json` (Excitor, LoRA and
 * full fine-tuning on the same data, with a small learning-rate sweep each) and reads its JSON
 * lines into progress (which run of how many, its method and config, its step) and an outcome
 * (the report's path, stopped, or the error). Stop asks the CLI to stop through its stdin, as
 * training runs do. No vscode import, so it is tested in plain Node against a fake CLI.
 */
import type { ChildProcess } from "node:child_process";
import type { TrainEvent } from "../engine/train/events";
import { eachLine, type Launcher } from "./engine-process";
import { METHOD_LABELS } from "./run-labels";

export interface CompareRequest {
  model: string;
  data: string;
  /** The folder the CLI writes report.md, report.json and the chart into. */
  out: string;
  backend: string;
  /** Held-out Alpaca records and domain text (the built-in demo has its own; otherwise the CLI's defaults). */
  heldout?: string;
  domain?: string;
}

/** Where the comparison stands. */
export interface CompareProgress {
  /** 1-based number of the current run; 0 before the first. */
  run: number;
  runs: number;
  method?: string;
  config?: string;
  step?: number;
  totalSteps?: number;
}

export type CompareOutcome = { status: "done"; report: string } | { status: "stopped" } | { status: "failed"; error: string };

/** The lines `excitor compare --json` prints, besides each run's train events. */
type CompareLine =
  | { type: "compare-start"; runs: number }
  | { type: "compare-run"; index: number; runs: number; method: string; config: string }
  | { type: "compare-done"; report: string }
  | { type: "error"; message: string };

const METHOD_NAMES: Record<string, string> = METHOD_LABELS;

/** "run 2 of 6 · LoRA r 8 · lr 3e-3 · step 40/120": the progress notification's message. */
export function compareMessage(p: CompareProgress): string {
  if (p.run === 0) return p.runs ? `starting ${p.runs} runs` : "starting";
  const method = p.method ? ` · ${METHOD_NAMES[p.method] ?? p.method}${p.config ? ` ${p.config}` : ""}` : "";
  const step = p.step !== undefined && p.totalSteps ? ` · step ${p.step}/${p.totalSteps}` : "";
  return `run ${p.run} of ${p.runs}${method}${step}`;
}

/** How far the whole comparison is, 0 to 100: finished runs plus the current one's share of its steps. */
export function comparePercent(p: CompareProgress): number {
  if (p.runs === 0 || p.run === 0) return 0;
  const within = p.step !== undefined && p.totalSteps ? p.step / p.totalSteps : 0;
  return Math.min(100, (100 * (p.run - 1 + within)) / p.runs);
}

export function compareArgs(r: CompareRequest): string[] {
  const extra = [...(r.heldout ? ["--heldout", r.heldout] : []), ...(r.domain ? ["--domain", r.domain] : [])];
  return ["--backend", r.backend, "compare", "--json", "--stdin-control", "--model", r.model, "--data", r.data, ...extra, "--out", r.out];
}

export interface CompareHandle {
  /** Settles when the CLI has exited. */
  done: Promise<CompareOutcome>;
  /** Asks the CLI to stop after the current step (it exits 130). */
  stop(): void;
}

export function runCompare(launcher: Launcher, req: CompareRequest, onProgress: (p: CompareProgress) => void, log: (line: string) => void): CompareHandle {
  const args = compareArgs(req);
  log(`[compare] excitor ${args.join(" ")}`);
  const child: ChildProcess = launcher.cli(args);
  const progress: CompareProgress = { run: 0, runs: 0 };
  /** The CLI's first run index (0 or 1): shown runs count from 1 either way. */
  let firstIndex: number | undefined;
  let report: string | undefined;
  let error: string | undefined;
  let lastStderr = "";
  let stopping = false;
  eachLine(child.stdout!, (line) => {
    let e: CompareLine | TrainEvent;
    try {
      e = JSON.parse(line);
    } catch {
      log(`[compare] ${line}`);
      return;
    }
    switch (e.type) {
      case "compare-start":
        progress.runs = e.runs;
        break;
      case "compare-run":
        firstIndex ??= e.index;
        Object.assign(progress, { run: e.index - firstIndex + 1, runs: e.runs, method: e.method, config: e.config, step: undefined, totalSteps: undefined });
        break;
      case "start":
        progress.totalSteps = e.totalSteps;
        progress.step = 0;
        break;
      case "step":
        Object.assign(progress, { step: e.step, totalSteps: e.totalSteps });
        break;
      case "compare-done":
        report = e.report;
        return;
      case "error":
        error = e.message;
        return;
      case "log":
        log(`[compare] ${e.level}: ${e.message}`);
        return;
      default:
        return;
    }
    onProgress({ ...progress });
  });
  eachLine(child.stderr!, (line) => {
    lastStderr = line;
    log(`[compare] ${line}`);
  });
  const done = new Promise<CompareOutcome>((resolve) => {
    let settled = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
      if (settled) return;
      settled = true;
      if (code === 0 && report) return resolve({ status: "done", report });
      if (code === 130 || (stopping && signal !== null)) return resolve({ status: "stopped" });
      const why =
        spawnError?.message ??
        error ??
        (code === 0 ? "it finished without naming its report" : lastStderr.replace(/^excitor: (internal )?error: /, "") || `the CLI exited with ${signal ?? `code ${code}`}`);
      resolve({ status: "failed", error: why });
    };
    child.on("error", (e) => finish(null, null, e));
    child.on("close", (code, signal) => finish(code, signal));
  });
  return {
    done,
    stop: () => {
      stopping = true;
      child.stdin?.write("stop\n");
    },
  };
}
