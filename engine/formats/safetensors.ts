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
import { isJsonObject, jsonType } from "../json-file";
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

/**
 * The reference implementation's MAX_HEADER_SIZE: a header this large is broken or hostile, and
 * reading it would cost its size in memory before any other check could refuse it.
 */
export const MAX_HEADER_BYTES = 100_000_000;

/** Bits per element of every safetensors dtype, so that each tensor's byte count is checked, read or not. */
const DTYPE_BITS = new Map<string, number>([
  ["BOOL", 8], ["F4", 4], ["F6_E2M3", 6], ["F6_E3M2", 6], ["U8", 8], ["I8", 8], ["F8_E5M2", 8], ["F8_E4M3", 8], ["F8_E8M0", 8],
  ["I16", 16], ["U16", 16], ["F16", 16], ["BF16", 16], ["I32", 32], ["U32", 32], ["F32", 32], ["C64", 64], ["F64", 64], ["I64", 64], ["U64", 64],
]);

export function readHeader(file: string): SafetensorsHeader {
  if (!fs.existsSync(file)) throw new ExcitorInputError(`${file}: file not found`, file);
  const bad = (msg: string) => new ExcitorInputError(`${file}: ${msg}`, file);
  const fd = fs.openSync(file, "r");
  try {
    const size = fs.fstatSync(fd).size;
    const lenBuf = Buffer.alloc(8);
    if (fs.readSync(fd, lenBuf, 0, 8, 0) !== 8) throw bad("not a safetensors file (shorter than 8 bytes)");
    const len64 = lenBuf.readBigUInt64LE(0);
    if (len64 > BigInt(MAX_HEADER_BYTES)) throw bad(`not a safetensors file (header length ${len64} is over the format's ${MAX_HEADER_BYTES}-byte limit)`);
    const len = Number(len64);
    if (len <= 0 || 8 + len > size) throw bad(`not a safetensors file (header length ${len} does not fit a ${size}-byte file)`);
    const hbuf = Buffer.alloc(len);
    readFully(fd, hbuf, 8, file);
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(hbuf));
    } catch (e) {
      throw bad(`safetensors header is not valid UTF-8 JSON (${(e as Error).message})`);
    }
    const dataStart = 8 + len;
    return { file, dataStart, ...parseHeader(json, size - dataStart, bad) };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Checks the header as the reference implementation does: every entry well-typed with the byte
 * count its dtype and shape need, and the tensors, sorted by offset, tiling the data section
 * exactly (no overlap, no gap, nothing past the end of the file).
 */
function parseHeader(json: unknown, dataBytes: number, bad: (msg: string) => ExcitorInputError): Pick<SafetensorsHeader, "tensors" | "metadata"> {
  if (!isJsonObject(json)) throw bad(`safetensors header must be a JSON object, not ${jsonType(json)}`);
  const { __metadata__, ...entries } = json;
  const metadata: Record<string, string> = {};
  // null is "no metadata" to the reference implementation too.
  if (__metadata__ != null && !isJsonObject(__metadata__)) throw bad(`safetensors "__metadata__" must be an object of strings, not ${jsonType(__metadata__)}`);
  for (const [k, v] of Object.entries(__metadata__ ?? {})) {
    if (typeof v !== "string") throw bad(`safetensors "__metadata__" value "${k}" must be a string, not ${jsonType(v)}`);
    metadata[k] = v;
  }
  // No prototype: a tensor named "__proto__" or "toString" is just a name.
  const tensors = Object.create(null) as Record<string, TensorInfo>;
  for (const [name, entry] of Object.entries(entries)) tensors[name] = tensorInfo(name, entry, bad);
  const byOffset = Object.entries(tensors).sort(([, a], [, b]) => a.data_offsets[0] - b.data_offsets[0] || a.data_offsets[1] - b.data_offsets[1]);
  let covered = 0;
  let previous = "";
  for (const [name, { data_offsets: [begin, end] }] of byOffset) {
    if (begin < covered) throw bad(`tensor "${name}" (data_offsets [${begin}, ${end}]) overlaps tensor "${previous}", which ends at ${covered}`);
    if (begin > covered) throw bad(`bytes ${covered}..${begin} of the data section belong to no tensor (a gap before tensor "${name}")`);
    if (end > dataBytes) throw bad(`tensor "${name}" ends at byte ${end} of the data section, but the file holds ${dataBytes} bytes of data: the file is truncated`);
    covered = end;
    previous = name;
  }
  if (covered !== dataBytes) throw bad(`the data section holds ${dataBytes} bytes, but the tensors cover only the first ${covered}`);
  return { tensors, metadata };
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

function tensorInfo(name: string, entry: unknown, bad: (msg: string) => ExcitorInputError): TensorInfo {
  if (!isJsonObject(entry)) throw bad(`tensor "${name}": the header entry must be an object, not ${jsonType(entry)}`);
  const { dtype, shape, data_offsets } = entry;
  const bits = typeof dtype === "string" ? DTYPE_BITS.get(dtype) : undefined;
  if (bits === undefined) throw bad(`tensor "${name}" has dtype ${JSON.stringify(dtype)}, which is not a safetensors dtype`);
  if (!Array.isArray(shape) || !shape.every(isCount)) throw bad(`tensor "${name}" has shape ${JSON.stringify(shape)}; its dimensions must be non-negative integers`);
  if (!Array.isArray(data_offsets) || data_offsets.length !== 2 || !data_offsets.every(isCount))
    throw bad(`tensor "${name}" has data_offsets ${JSON.stringify(data_offsets)}; they must be two non-negative integers [begin, end]`);
  const [begin, end] = data_offsets as [number, number];
  if (begin > end) throw bad(`tensor "${name}" has data_offsets [${begin}, ${end}]: begin is after end`);
  const needBits = numel(shape) * bits;
  if (needBits % 8 !== 0) throw bad(`tensor "${name}": ${dtype}[${shape}] is not a whole number of bytes`);
  if (end - begin !== needBits / 8) throw bad(`tensor "${name}" has ${end - begin} bytes (data_offsets [${begin}, ${end}]), but ${dtype}[${shape}] takes ${needBits / 8}`);
  return { dtype: dtype as string, shape, data_offsets: [begin, end] };
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Reads one tensor and converts it to float32 (F32 is read straight into the result's memory).
 * A NaN or infinity is refused here, naming the tensor, so that corrupt weights fail at load
 * rather than as a NaN perplexity later.
 */
export function readTensorF32(header: SafetensorsHeader, name: string, fd?: number): F32Tensor {
  const info = header.tensors[name];
  if (!info) throw new ExcitorInputError(`${header.file}: tensor "${name}" is missing`, header.file);
  const dtype = info.dtype as Dtype;
  if (!Object.hasOwn(BYTES, dtype)) throw new ExcitorInputError(`${header.file}: tensor "${name}" has dtype ${info.dtype}; supported: F32, F16, BF16`, header.file);
  const n = numel(info.shape);
  const [b] = info.data_offsets; // readHeader checked the byte count against dtype and shape
  const own = fd === undefined;
  const f = own ? fs.openSync(header.file, "r") : fd;
  try {
    const out = new Float32Array(n);
    if (dtype === "F32") {
      readFully(f, new Uint8Array(out.buffer), header.dataStart + b, header.file);
    } else {
      const raw = new Uint16Array(n);
      readFully(f, new Uint8Array(raw.buffer), header.dataStart + b, header.file);
      if (dtype === "BF16") {
        const u32 = new Uint32Array(out.buffer);
        for (let i = 0; i < n; i++) u32[i] = raw[i] << 16;
      } else {
        for (let i = 0; i < n; i++) out[i] = halfToFloat(raw[i]);
      }
    }
    const at = firstNonFinite(out);
    if (at >= 0)
      throw new ExcitorInputError(`${header.file}: tensor "${name}" holds ${out[at]} at element ${at}; the weights are corrupt (or were saved after training diverged)`, header.file);
    return { shape: info.shape.slice(), data: out };
  } finally {
    if (own) fs.closeSync(f);
  }
}

/** Index of the first NaN or ±Infinity (all exponent bits set), or -1: one pass over the bits. */
function firstNonFinite(data: Float32Array): number {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  for (let i = 0; i < bits.length; i++) if ((bits[i] & 0x7f800000) === 0x7f800000) return i;
  return -1;
}

function readFully(fd: number, into: Uint8Array, position: number, file: string): void {
  let off = 0;
  while (off < into.byteLength) {
    const n = fs.readSync(fd, into, off, into.byteLength - off, position + off);
    if (n === 0) throw new ExcitorInputError(`${file}: unexpected end of file at byte ${position + off} (was it truncated while being read?)`, file);
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

/**
 * Refuses a file holding tensors its reader would not use: a tensor the loader ignores is a part
 * of the trained result silently dropped (e.g. PEFT's modules_to_save), or a file meant for
 * another model or configuration.
 */
export function refuseUnusedTensors(header: SafetensorsHeader, used: ReadonlySet<string>, why: string): void {
  const extra = Object.keys(header.tensors).filter((name) => !used.has(name));
  if (extra.length)
    throw new ExcitorInputError(`${header.file}: holds ${extra.length} tensor${extra.length > 1 ? "s" : ""} ${why} does not use, e.g. ${extra[0]}`, header.file);
}

