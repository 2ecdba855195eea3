/**
 * Resumable training state in one file, `checkpoint/trainer_state.safetensors`: the trained
 * tensors (the adapter's, or every base weight in full training), AdamW's moments (`adamw.m.<name>`, `adamw.v.<name>`) and, in the metadata, the step
 * and a fingerprint of what must not change across a resume. One file written atomically, so a
 * kill at any moment leaves either the previous state or the new one.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ExcitorInputError } from "../errors";
import { readHeader, readTensorF32, writeSafetensors, type F32Tensor } from "../formats/safetensors";
import type { AdamW, ParamState } from "./optimizer";

export const STATE_FILE = path.join("checkpoint", "trainer_state.safetensors");

export interface SavedState {
  step: number;
  fingerprint: string;
}

export function saveTrainerState(outDir: string, trained: Record<string, F32Tensor>, opt: AdamW, state: SavedState): void {
  const tensors: Record<string, F32Tensor> = {};
  for (const [name, t] of Object.entries(trained)) {
    tensors[name] = t;
    const s = opt.state.get(name);
    if (s) {
      tensors[`adamw.m.${name}`] = { shape: t.shape, data: s.m };
      tensors[`adamw.v.${name}`] = { shape: t.shape, data: s.v };
    }
  }
  writeSafetensors(path.join(outDir, STATE_FILE), tensors, {
    step: String(state.step),
    optimizer_step: String(opt.step),
    fingerprint: state.fingerprint,
  });
}

export function hasTrainerState(outDir: string): boolean {
  return fs.existsSync(path.join(outDir, STATE_FILE));
}

/** A checkpoint read and checked whole, not yet applied. */
export interface CheckedState {
  step: number;
  values: Map<string, Float32Array>;
  moments: Map<string, ParamState>;
}

/**
 * Reads the checkpoint and checks all of it against this run before anything is restored: the
 * fingerprint; the step (and the optimizer's) a whole number from 0 to the run's total steps;
 * every trained tensor present, of its shape, finite; AdamW's m and v of every trained tensor once
 * the optimizer has stepped (v never negative); nothing else. Throws one ExcitorInputError naming
 * the file and the first problem (and how many more).
 */
export function readTrainerState(outDir: string, trained: Record<string, F32Tensor>, fingerprint: string, totalSteps: number): CheckedState {
  const file = path.join(outDir, STATE_FILE);
  if (!fs.existsSync(file)) throw new ExcitorInputError(`${file}: no checkpoint to resume from`, file);
  const h = readHeader(file);
  if (h.metadata.fingerprint !== fingerprint)
    throw new ExcitorInputError(
      `${file}: the checkpoint was made with other data or settings (${h.metadata.fingerprint}) than this run (${fingerprint}); resume with the same options, or train into a new --out folder`,
      file,
    );
  const problems: string[] = [];
  const stepOf = (key: string): number => {
    const raw = h.metadata[key];
    const n = typeof raw === "string" && /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!(n <= totalSteps)) problems.push(`${key} ${JSON.stringify(raw ?? null)} is not a whole number from 0 to ${totalSteps} (this run's steps)`);
    return n;
  };
  const step = stepOf("step");
  const optimizerStep = stepOf("optimizer_step");
  if (problems.length === 0 && optimizerStep !== step) problems.push(`optimizer_step ${optimizerStep} is not step ${step}`);

  const shapeProblem = (name: string, want: readonly number[], moment: boolean): string | undefined => {
    const info = h.tensors[name];
    const what = moment ? `AdamW's moment "${name}"` : `tensor "${name}"`;
    if (!info) return `${what} is missing`;
    if (info.shape.join(",") !== want.join(",")) return `${what} has shape [${info.shape}] but ${moment ? "its tensor has" : "this run trains"} [${want}]`;
    return undefined;
  };
  const expected = new Set<string>();
  for (const [name, t] of Object.entries(trained)) {
    expected.add(name);
    const moments = [`adamw.m.${name}`, `adamw.v.${name}`];
    // Before the first step AdamW has no moments yet (a run stopped at step 0).
    const needMoments = optimizerStep > 0 || moments.some((m) => h.tensors[m]);
    for (const n of needMoments ? [name, ...moments] : [name]) {
      expected.add(n);
      const p = shapeProblem(n, t.shape, n !== name);
      if (p) problems.push(p);
    }
  }
  const extra = Object.keys(h.tensors).filter((n) => !expected.has(n));
  if (extra.length) problems.push(`tensor "${extra[0]}" is not one this run trains`);
  report(file, problems);

  const fd = fs.openSync(file, "r");
  const values = new Map<string, Float32Array>();
  const moments = new Map<string, ParamState>();
  try {
    const read = (name: string, nonNegative = false): Float32Array => {
      let data: Float32Array;
      try {
        data = readTensorF32(h, name, fd).data; // refuses NaN and infinities itself
      } catch (e) {
        if (!(e instanceof ExcitorInputError)) throw e;
        problems.push(e.message.replace(`${file}: `, ""));
        return new Float32Array(0);
      }
      const bad = nonNegative ? data.findIndex((x) => x < 0) : -1;
      if (bad >= 0) problems.push(`tensor "${name}" holds ${data[bad]} at index ${bad}`);
      return data;
    };
    for (const name of Object.keys(trained)) {
      values.set(name, read(name));
      if (h.tensors[`adamw.m.${name}`]) moments.set(name, { m: read(`adamw.m.${name}`), v: read(`adamw.v.${name}`, true) });
    }
  } finally {
    fs.closeSync(fd);
  }
  report(file, problems);
  return { step, values, moments };
}

function report(file: string, problems: string[]): void {
  if (problems.length === 0) return;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? "s" : ""})` : "";
  throw new ExcitorInputError(`${file}: cannot resume from this checkpoint: ${problems[0]}${more}`, file);
}

/** Restores a checked state: trained values in place, AdamW's moments and step. Returns the step to continue after. */
export function restoreTrainerState(s: CheckedState, trained: Record<string, F32Tensor>, opt: AdamW): number {
  for (const [name, t] of Object.entries(trained)) t.data.set(s.values.get(name)!);
  opt.state.clear();
  for (const [name, m] of s.moments) opt.state.set(name, m);
  opt.step = s.step;
  return s.step;
}
