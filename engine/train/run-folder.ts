/**
 * A run's --out folder: checked before anything is loaded, cleaned of what a killed run left, and
 * made consistent with the checkpoint on resume (metrics.jsonl cut back to the checkpoint's step,
 * a stale result file noticed). Trusts only what it checks.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ExcitorInputError } from "../errors";
import { fileIo, removeLeftoverTemps, writeFileAtomic } from "../fs-atomic";
import { fsFailure, makeDirs } from "../fs-errors";
import { readHeader } from "../formats/safetensors";
import { STATE_FILE } from "./checkpoint";

/**
 * Fails at once, naming the folder and the cause, where training could not write its results:
 * a file in the way, a read-only or full file system, a parent that takes no new entries. Makes
 * the folder, writes and removes a probe file in it, then removes what it made, so that a run
 * that fails later (a bad model) leaves nothing behind.
 */
export function checkOutDir(dir: string): void {
  if (dir.trim() === "") throw new ExcitorInputError("--out: is empty; give the folder for the adapter, checkpoints and metrics");
  let made: string[];
  try {
    made = makeDirs(dir);
  } catch (e) {
    throw asOutError(e, dir);
  }
  const probe = path.join(dir, `.excitor-probe-${process.pid}`);
  try {
    const fd = fileIo.open(probe, "w");
    try {
      fs.writeSync(fd, "probe\n");
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    const named = fsFailure(e, dir, "write in the folder");
    const code = (e as NodeJS.ErrnoException).code;
    if (named !== e || code === undefined) throw asOutError(named, dir);
    throw new ExcitorInputError(`--out ${dir}: cannot write in the folder: ${code === "ENOENT" ? "it does not accept new files" : code}`, dir);
  } finally {
    fs.rmSync(probe, { force: true });
    for (const d of made.reverse()) {
      try {
        fs.rmdirSync(d);
      } catch {
        // Not empty: another process writes there now; its folder is not ours to remove.
      }
    }
  }
}

function asOutError(e: unknown, dir: string): unknown {
  return e instanceof ExcitorInputError ? new ExcitorInputError(`--out ${e.message}`, dir) : e;
}

/** Makes the folder (checked as checkOutDir does) and removes temporary files a killed write left in it. */
export function prepareOutDir(dir: string): void {
  try {
    makeDirs(dir);
  } catch (e) {
    throw asOutError(e, dir);
  }
  for (const d of [dir, path.dirname(path.join(dir, STATE_FILE))]) removeLeftoverTemps(d);
}

/**
 * Cuts metrics.jsonl back to what happened up to the checkpoint's step, atomically: a run killed
 * after step 43 with its checkpoint at 40 logged steps 41-43, which the resumed run redoes. A line
 * cut short by the kill goes too.
 */
export function rewindMetrics(file: string, step: number): void {
  if (!fs.existsSync(file)) return;
  const kept = fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => {
      let e: { type?: string; step?: unknown; resumedFromStep?: unknown };
      try {
        e = JSON.parse(line);
      } catch {
        return false;
      }
      if (typeof e.step === "number" && e.step > step) return false;
      return !(e.type === "start" && typeof e.resumedFromStep === "number" && e.resumedFromStep > step);
    });
  writeFileAtomic(file, kept.map((l) => l + "\n").join(""));
}

/**
 * A notice when the result file in the folder (the adapter, or the model in full training) is not
 * the checkpoint's: a kill between the checkpoint's write and the adapter's leaves an older one.
 * Undefined when they agree.
 */
export function staleResultNotice(outDir: string, weightsFile: string, step: number): string | undefined {
  const file = path.join(outDir, weightsFile);
  if (!fs.existsSync(file)) return `${weightsFile} is missing, the checkpoint is from step ${step}: resuming from the checkpoint and writing ${weightsFile} from it`;
  let saved: string | undefined;
  try {
    saved = readHeader(file).metadata.step;
  } catch {
    saved = undefined;
  }
  if (saved === String(step)) return undefined;
  const from = saved !== undefined && /^\d+$/.test(saved) ? `is from step ${saved}` : "is unreadable or has no step";
  return `${weightsFile} ${from}, the checkpoint from step ${step}: resuming from the checkpoint and rewriting ${weightsFile} from it`;
}
