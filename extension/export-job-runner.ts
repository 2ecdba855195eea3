/**
 * "Excitor: Export Distributed Job…" without the editor: runs `excitor export-job` for a spec and
 * reads its outcome: the job folder, or the CLI's one-line error (with the file and line it names,
 * so the editor can open a bad dataset at the record). No vscode import: tested in plain Node.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Launcher } from "./engine-process";
import type { RunError } from "./run-manager";
import { exportJobArgs, type RunSpec } from "./run-spec";

export type ExportOutcome = { status: "done"; dir: string; readme: string; command: string } | { status: "failed"; error: RunError };

/** A new job folder under `jobsRoot`, named for the dataset and the time. */
export function jobFolder(jobsRoot: string, spec: RunSpec, now = new Date()): string {
  const name = path.basename(spec.data).replace(/\.(jsonl?|json)$/i, "").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "job";
  const stamp = now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  let dir = path.join(jobsRoot, `${name}-${stamp}`);
  for (let i = 2; fs.existsSync(dir); i++) dir = path.join(jobsRoot, `${name}-${stamp}-${i}`);
  return dir;
}

export function exportJob(launcher: Launcher, spec: RunSpec, dir: string, log: (line: string) => void): Promise<ExportOutcome> {
  const args = exportJobArgs(spec, dir);
  log(`export-job: excitor ${args.join(" ")}`);
  const child = launcher.cli(args);
  child.stdin?.end();
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8");
  child.stderr?.setEncoding("utf8");
  child.stdout?.on("data", (s: string) => (stdout += s));
  child.stderr?.on("data", (s: string) => (stderr += s));
  return new Promise((resolve) => {
    child.on("error", (e) => resolve({ status: "failed", error: { message: `could not start the engine: ${e.message}` } }));
    child.on("close", (code) => {
      for (const line of (stdout + stderr).split("\n")) if (line.trim()) log(`export-job: ${line}`);
      if (code === 0) return resolve({ status: "done", dir, readme: path.join(dir, "README.md"), command: `bash ${path.join(dir, "run.sh")}` });
      resolve({ status: "failed", error: cliError(stderr, code) });
    });
  });
}

/** The CLI's `excitor: error: FILE:LINE: …` line as a RunError (file and line when it names a dataset record). */
export function cliError(stderr: string, code: number | null): RunError {
  const line = stderr.split("\n").find((l) => l.startsWith("excitor: error: "));
  if (!line) return { message: `the engine exited with code ${code}${stderr.trim() ? `: ${stderr.trim().split("\n").at(-1)}` : ""}` };
  const message = line.slice("excitor: error: ".length);
  const at = /^(.+?\.jsonl?):(\d+)(?::|\b)/i.exec(message);
  return at ? { message, file: at[1], line: Number(at[2]) } : { message };
}
