/** Makes the campaign's inputs: copies of the demo model, raw safetensors bytes, edited JSON. */
import * as fs from "node:fs";
import * as path from "node:path";
import { readHeader, readTensorF32, writeSafetensors, type F32Tensor } from "../../engine/formats/safetensors";
import { REPO } from "./outcome";

export { rawSafetensors } from "../helpers/raw-safetensors";

export const DEMO_MODEL = path.join(REPO, "demo", "model");
export const DEMO_DATA = path.join(REPO, "demo", "data", "train.jsonl");

/** A copy of the demo model folder at `dir` (made once). */
export function copyModel(dir: string, from = DEMO_MODEL): string {
  if (!fs.existsSync(dir)) {
    fs.mkdirSync(dir, { recursive: true });
    for (const f of fs.readdirSync(from)) if (fs.statSync(path.join(from, f)).isFile()) fs.copyFileSync(path.join(from, f), path.join(dir, f));
  }
  return dir;
}

export function readJson(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(file, "utf8"));
}

export function writeText(file: string, text: string | Buffer): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

/** Every tensor of a safetensors file, as float32. */
export function readAll(file: string): { tensors: Record<string, F32Tensor>; metadata: Record<string, string> } {
  const h = readHeader(file);
  const tensors: Record<string, F32Tensor> = {};
  for (const name of Object.keys(h.tensors)) tensors[name] = readTensorF32(h, name);
  return { tensors, metadata: h.metadata };
}

/** Rewrites a safetensors file after `edit` changed its tensors. */
export function editTensors(file: string, edit: (t: Record<string, F32Tensor>, meta: Record<string, string>) => void): void {
  const { tensors, metadata } = readAll(file);
  edit(tensors, metadata);
  writeSafetensors(file, tensors, metadata);
}

/** The demo model's header and data section, to re-emit with one field changed. */
export function demoHeaderAndData(): { header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>; data: Buffer } {
  const file = path.join(DEMO_MODEL, "model.safetensors");
  const h = readHeader(file);
  const bytes = fs.readFileSync(file);
  return { header: JSON.parse(JSON.stringify(h.tensors)), data: bytes.subarray(h.dataStart) };
}
