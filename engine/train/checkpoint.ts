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
import type { AdamW } from "./optimizer";

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

/** Restores trained values and optimizer moments in place; returns the step to continue after. */
export function loadTrainerState(outDir: string, trained: Record<string, F32Tensor>, opt: AdamW, fingerprint: string): number {
  const file = path.join(outDir, STATE_FILE);
  if (!fs.existsSync(file)) throw new ExcitorInputError(`${file}: no checkpoint to resume from`, file);
  const h = readHeader(file);
  if (h.metadata.fingerprint !== fingerprint)
    throw new ExcitorInputError(
      `${file}: the checkpoint was made with other data or settings (${h.metadata.fingerprint}) than this run (${fingerprint}); resume with the same options, or train into a new --out folder`,
      file,
    );
  for (const [name, t] of Object.entries(trained)) {
    t.data.set(readTensorF32(h, name).data);
    if (h.tensors[`adamw.m.${name}`])
      opt.state.set(name, { m: readTensorF32(h, `adamw.m.${name}`).data, v: readTensorF32(h, `adamw.v.${name}`).data });
  }
  opt.step = Number(h.metadata.optimizer_step);
  return Number(h.metadata.step);
}
