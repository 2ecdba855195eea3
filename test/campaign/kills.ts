/**
 * Crash consistency: a training run killed with SIGKILL at random moments and resumed each time
 * must end with the adapter an uninterrupted run writes, byte for byte, and leave no temporary
 * files and no repeated step events in metrics.jsonl.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Rng } from "../../engine/rng";
import { CLI, runCli } from "./outcome";

const MAX_KILLS = 6;

export interface KillReport {
  kills: number;
  /** Kills after which the run resumed and ended with the uninterrupted run's adapter. */
  survived: number;
  runs: number;
  identicalAdapters: number;
  leftoverTempFiles: number;
  duplicateStepEvents: number;
  failures: string[];
}

function killAfter(args: string[], ms: number): Promise<{ code: number | null; killed: boolean; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: os.tmpdir(), stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    let killed = false;
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const t = setTimeout(() => {
      killed = true;
      child.kill("SIGKILL");
    }, ms);
    child.on("close", (code) => {
      clearTimeout(t);
      resolve({ code, killed, stderr });
    });
  });
}

function stepEvents(dir: string): number[] {
  const file = path.join(dir, "metrics.jsonl");
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { type: string; step: number })
    .filter((e) => e.type === "step")
    .map((e) => e.step);
}

/** `trainArgs` without --out; each run gets kills until it finishes, `runs` runs in all. */
export async function killCampaign(root: string, trainArgs: string[], runs: number, seed = 1): Promise<KillReport> {
  const ref = path.join(root, "kill-reference");
  const r = await runCli([...trainArgs, "--out", ref], { timeout: 300 });
  if (r.code !== 0) throw new Error(`reference run failed: ${r.stderr}`);
  const refAdapter = fs.readFileSync(path.join(ref, "adapter_model.safetensors"));
  const rng = new Rng(seed);
  const report: KillReport = { kills: 0, survived: 0, runs, identicalAdapters: 0, leftoverTempFiles: 0, duplicateStepEvents: 0, failures: [] };
  const fullSeconds = r.seconds;
  for (let i = 0; i < runs; i++) {
    const dir = path.join(root, `kill-${i}`);
    let kills = 0;
    for (let attempt = 0; ; attempt++) {
      const resume = fs.existsSync(path.join(dir, "checkpoint"));
      // Kill somewhere between model load and the end of the run; after MAX_KILLS, let it finish
      // (a resumed run repeats the model load, so random kills alone need not ever let it end).
      const ms = attempt < MAX_KILLS ? (0.15 + 0.8 * rng.next()) * fullSeconds * 1000 : 600_000;
      const res = await killAfter([...trainArgs, "--out", dir, ...(resume ? ["--resume"] : [])], ms);
      if (res.killed) {
        kills++;
        continue;
      }
      if (res.code !== 0) report.failures.push(`run ${i}: exit ${res.code} after ${kills} kills: ${res.stderr.trim().split("\n")[0]}`);
      break;
    }
    report.kills += kills;
    const adapter = path.join(dir, "adapter_model.safetensors");
    const same = fs.existsSync(adapter) && fs.readFileSync(adapter).equals(refAdapter);
    if (same) {
      report.identicalAdapters++;
      report.survived += kills;
    } else report.failures.push(`run ${i}: adapter differs from the uninterrupted run's after ${kills} kills`);
    report.leftoverTempFiles += listAll(dir).filter((f) => /\.tmp-/.test(f)).length;
    const steps = stepEvents(dir);
    report.duplicateStepEvents += steps.length - new Set(steps).size;
  }
  return report;
}

function listAll(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listAll(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}
