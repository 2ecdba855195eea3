/**
 * Safetensors: an 8-byte little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}`,
 * then raw little-endian tensor bytes. The format is simple enough that reading it
 * ourselves beats a dependency: we read one tensor at a time with positioned reads, so
 * a checkpoint never passes through a JS string and peak memory stays near one
 * float32 copy of the weights (https://github.com/huggingface/safetensors#format).
 */
import * as fs from "node:fs";
import { ExcitorInputError } from "../errors";
import { writeFileAtomic } from "../fs-atomic";

export type Dtype = "F32" | "F16" | "BF16";
const BYTES: Record<Dtype, number> = { F32: 4, F16: 2, BF16: 2 };

export interface TensorInfo {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export interface SafetensorsHeader {
  file: string;
  /** Byte offset where the data section starts. */
  dataStart: number;
  tensors: Record<string, TensorInfo>;
  metadata: Record<string, string>;
}

export interface F32Tensor {
  shape: number[];
  data: Float32Array;
}

export function readHeader(file: string): SafetensorsHeader {
  if (!fs.existsSync(file)) throw new ExcitorInputError(`${file}: file not found`, file);
  const fd = fs.openSync(file, "r");
  try {
    const size = fs.fstatSync(fd).size;
    const lenBuf = Buffer.alloc(8);
    if (fs.readSync(fd, lenBuf, 0, 8, 0) !== 8) throw new ExcitorInputError(`${file}: not a safetensors file (shorter than 8 bytes)`, file);
    const len = Number(lenBuf.readBigUInt64LE(0));
    if (len <= 0 || 8 + len > size) throw new ExcitorInputError(`${file}: not a safetensors file (header length ${len} does not fit a ${size}-byte file)`, file);
    const hbuf = Buffer.alloc(len);
    fs.readSync(fd, hbuf, 0, len, 8);
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(hbuf.toString("utf8"));
    } catch (e) {
      throw new ExcitorInputError(`${file}: safetensors header is not valid JSON (${(e as Error).message})`, file);
    }
    const { __metadata__, ...tensors } = json;
    const dataStart = 8 + len;
    for (const [name, t] of Object.entries(tensors as Record<string, TensorInfo>)) {
      const [b, e] = t.data_offsets ?? [];
      if (!Array.isArray(t.shape) || typeof b !== "number" || typeof e !== "number" || dataStart + e > size || b > e)
        throw new ExcitorInputError(`${file}: tensor "${name}" has a malformed header entry`, file);
    }
    return { file, dataStart, tensors: tensors as Record<string, TensorInfo>, metadata: (__metadata__ as Record<string, string>) ?? {} };
  } finally {
    fs.closeSync(fd);
  }
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Reads one tensor and converts it to float32 (F32 is read straight into the result's memory). */
export function readTensorF32(header: SafetensorsHeader, name: string, fd?: number): F32Tensor {
  const info = header.tensors[name];
  if (!info) throw new ExcitorInputError(`${header.file}: tensor "${name}" is missing`, header.file);
  const dtype = info.dtype as Dtype;
  if (!(dtype in BYTES)) throw new ExcitorInputError(`${header.file}: tensor "${name}" has dtype ${info.dtype}; supported: F32, F16, BF16`, header.file);
  const n = numel(info.shape);
  const [b, e] = info.data_offsets;
  if (e - b !== n * BYTES[dtype]) throw new ExcitorInputError(`${header.file}: tensor "${name}" has ${e - b} bytes, expected ${n * BYTES[dtype]} for ${dtype}[${info.shape}]`, header.file);
  const own = fd === undefined;
  const f = own ? fs.openSync(header.file, "r") : fd;
  try {
    const out = new Float32Array(n);
    if (dtype === "F32") {
      readFully(f, new Uint8Array(out.buffer), header.dataStart + b);
    } else {
      const raw = new Uint16Array(n);
      readFully(f, new Uint8Array(raw.buffer), header.dataStart + b);
      if (dtype === "BF16") {
        const u32 = new Uint32Array(out.buffer);
        for (let i = 0; i < n; i++) u32[i] = raw[i] << 16;
      } else {
        for (let i = 0; i < n; i++) out[i] = halfToFloat(raw[i]);
      }
    }
    return { shape: info.shape.slice(), data: out };
  } finally {
    if (own) fs.closeSync(f);
  }
}

function readFully(fd: number, into: Uint8Array, position: number): void {
  let off = 0;
  while (off < into.byteLength) {
    const n = fs.readSync(fd, into, off, into.byteLength - off, position + off);
    if (n === 0) throw new Error(`unexpected end of file at byte ${position + off}`);
    off += n;
  }
}

const HALF_EXP = new Float32Array(32).map((_, e) => 2 ** (e - 15));
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * HALF_EXP[exp] * (1 + frac / 1024);
}

/** Writes float32 tensors (names sorted, header padded to 8 bytes) atomically. */
export function writeSafetensors(file: string, tensors: Record<string, F32Tensor>, metadata: Record<string, string> = {}): void {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    if (t.data.length !== numel(t.shape)) throw new Error(`tensor ${name}: ${t.data.length} values for shape [${t.shape}]`);
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const parts: Uint8Array[] = [len, Buffer.from(json, "utf8")];
  for (const name of names) {
    const d = tensors[name].data;
    parts.push(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  writeFileAtomic(file, parts);
}
