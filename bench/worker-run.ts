/** Starting a benchmark worker process and reading its one JSON line; the medians the tables show. */
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import type { WorkerResult } from "./spec";

export const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : NaN);

/** Runs `cmd args` and returns the WorkerResult its last stdout line holds, or one that says why there is none. */
export function runWorker(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): WorkerResult {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 1 << 24, env: { ...process.env, ...env } });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as WorkerResult;
  } catch {
    return { backend: path.basename(args[1] ?? cmd), train: [], gen: [], peakRssBytes: 0, error: (r.stderr || `exit ${r.status}`).trim().split("\n").pop() };
  }
}
