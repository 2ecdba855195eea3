/**
 * Writes GGUF version 3 files, little-endian (github.com/ggml-org/ggml/blob/master/docs/gguf.md),
 * the format gguf.ts reads: header, typed metadata, tensor infos, then the tensor data, each
 * tensor starting at a multiple of the alignment (32, or metadata general.alignment).
 *
 * Metadata values carry their GGUF type explicitly (`u32(2048)`, `f32(1e4)`, `arr("str", tokens)`):
 * llama.cpp checks the type of each key it reads (llama.rope.freq_base must be FLOAT32,
 * llama.context_length UINT32), and a JS number alone cannot say which one is meant.
 *
 * Tensors are given lazily (`data()` returns one tensor's encoded bytes when it is its turn), so a
 * 1B-parameter file is written holding one tensor at a time. The file is written atomically.
 */
import { writeFileAtomicWith } from "../fs-atomic";
import { ggmlBytes, ggmlTypeByName, type GgmlType } from "./ggml-types";

/** GGUF's metadata value types (gguf_type), by the short names the helpers below use. */
const TYPE_IDS = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, str: 8, u64: 10, i64: 11, f64: 12 } as const;
const ARRAY_ID = 9;
export type GgufScalarType = keyof typeof TYPE_IDS;
type NumberType = Exclude<GgufScalarType, "bool" | "str" | "u64" | "i64">;

/** One metadata value with its GGUF type. Arrays hold scalars of one type (no nested arrays). */
export type GgufTypedValue =
  | { type: NumberType; value: number }
  | { type: "u64" | "i64"; value: number | bigint }
  | { type: "bool"; value: boolean }
  | { type: "str"; value: string }
  | { type: "arr"; itemType: GgufScalarType; value: ArrayLike<number | bigint | boolean | string> };

export const u8 = (value: number): GgufTypedValue => ({ type: "u8", value });
export const i8 = (value: number): GgufTypedValue => ({ type: "i8", value });
export const u16 = (value: number): GgufTypedValue => ({ type: "u16", value });
export const i16 = (value: number): GgufTypedValue => ({ type: "i16", value });
export const u32 = (value: number): GgufTypedValue => ({ type: "u32", value });
export const i32 = (value: number): GgufTypedValue => ({ type: "i32", value });
export const f32 = (value: number): GgufTypedValue => ({ type: "f32", value });
export const f64 = (value: number): GgufTypedValue => ({ type: "f64", value });
export const u64 = (value: number | bigint): GgufTypedValue => ({ type: "u64", value });
export const i64 = (value: number | bigint): GgufTypedValue => ({ type: "i64", value });
export const bool = (value: boolean): GgufTypedValue => ({ type: "bool", value });
export const str = (value: string): GgufTypedValue => ({ type: "str", value });
/** An array: `arr("str", tokens)`, `arr("f32", scores)` (a Float32Array or number[]), `arr("i32", tokenTypes)`. */
export const arr = (itemType: GgufScalarType, value: ArrayLike<number | bigint | boolean | string>): GgufTypedValue => ({ type: "arr", itemType, value });

export interface GgufTensorToWrite {
  name: string;
  /** Row-major shape, outermost first ([out, in] for a linear), as GgufTensorInfo gives it. */
  shape: readonly number[];
  /** A ggml type or its name ("Q8_0"). */
  type: GgmlType | string;
  /** The tensor's bytes encoded as `type` (ggml-quants.ts `quantize`), asked for when it is written. */
  data: () => Uint8Array;
}

export interface GgufWriteOptions {
  /** Called after each tensor's bytes are written (progress for a large file). */
  onTensor?: (name: string, index: number, count: number) => void;
}

const VERSION = 3;
const DEFAULT_ALIGNMENT = 32;
const MAX_DIMS = 4; // GGML_MAX_DIMS
const MAX_NAME_BYTES = 63; // GGML_MAX_NAME (64) with its terminating NUL

/**
 * Writes `tensors` and `metadata` (key -> typed value, in the order given) to `file` as GGUF v3.
 * Throws before creating the file when a value, a shape or a name cannot be written; throws (and
 * leaves any old file in place) when a tensor's data() has the wrong byte length.
 */
export function writeGguf(
  file: string,
  metadata: Record<string, GgufTypedValue>,
  tensors: readonly GgufTensorToWrite[],
  opts: GgufWriteOptions = {},
): void {
  const bad = (msg: string) => new Error(`${file}: cannot write GGUF: ${msg}`);
  const alignment = alignmentOf(metadata, bad);
  const header = new ByteWriter();
  header.u32(0x46554747); // "GGUF"
  header.u32(VERSION);
  header.u64(BigInt(tensors.length));
  const keys = Object.keys(metadata);
  header.u64(BigInt(keys.length));
  for (const key of keys) {
    header.string(key);
    writeValue(header, metadata[key], (msg) => bad(`metadata ${key}: ${msg}`));
  }
  const layout: { type: GgmlType; bytes: number; offset: number }[] = [];
  const names = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    const type = typeof t.type === "string" ? ggmlTypeByName(t.type) : t.type;
    if (names.has(t.name)) throw bad(`tensor ${t.name} is given twice`);
    names.add(t.name);
    if (Buffer.byteLength(t.name, "utf8") > MAX_NAME_BYTES) throw bad(`tensor name ${t.name} is over ${MAX_NAME_BYTES} bytes (GGML_MAX_NAME)`);
    if (t.shape.length < 1 || t.shape.length > MAX_DIMS) throw bad(`tensor ${t.name} has ${t.shape.length} dimensions; GGUF allows 1 to ${MAX_DIMS}`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d > 0)) throw bad(`tensor ${t.name} has shape [${t.shape.join(", ")}]; dimensions must be positive integers`);
    const ne = t.shape.slice().reverse(); // GGUF's ne[0] is the innermost (contiguous) dimension
    if (ne[0] % type.blockSize !== 0) throw bad(`tensor ${t.name} has rows of ${ne[0]} elements, not a whole number of ${type.name} blocks (${type.blockSize})`);
    header.string(t.name);
    header.u32(ne.length);
    for (const d of ne) header.u64(BigInt(d));
    header.u32(type.id);
    header.u64(BigInt(offset));
    const bytes = ggmlBytes(type, ne.reduce((a, b) => a * b, 1));
    layout.push({ type, bytes, offset });
    offset = alignUp(offset + bytes, alignment);
  }
  header.pad(alignment);

  writeFileAtomicWith(file, (write) => {
    write(header.bytes());
    let at = 0; // bytes written since the start of the data section
    tensors.forEach((t, i) => {
      const { bytes, offset: start } = layout[i];
      if (at < start) write(new Uint8Array(start - at));
      const data = t.data();
      if (data.byteLength !== bytes) throw bad(`tensor ${t.name} data is ${data.byteLength} bytes; [${t.shape.join(", ")}] of ${layout[i].type.name} takes ${bytes}`);
      write(data);
      at = start + bytes;
      opts.onTensor?.(t.name, i, tensors.length);
    });
    // llama.cpp's writer pads the last tensor as well; readers do not need it, but files compare equal.
    if (at < offset) write(new Uint8Array(offset - at));
  });
}

function alignmentOf(metadata: Record<string, GgufTypedValue>, bad: (msg: string) => Error): number {
  const v = metadata["general.alignment"];
  if (v === undefined) return DEFAULT_ALIGNMENT;
  // gguf.c reads general.alignment only as UINT32
  if (v.type !== "u32" || !Number.isInteger(v.value) || v.value <= 0 || (v.value & (v.value - 1)) !== 0)
    throw bad(`metadata general.alignment must be u32(power of two), got ${JSON.stringify(v)}`);
  return v.value;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function writeValue(w: ByteWriter, v: GgufTypedValue, bad: (msg: string) => Error): void {
  if (v.type === "arr") {
    if (!(v.itemType in TYPE_IDS)) throw bad(`array item type ${String(v.itemType)} is not one of ${Object.keys(TYPE_IDS).join(", ")}`);
    w.u32(ARRAY_ID);
    w.u32(TYPE_IDS[v.itemType]);
    w.u64(BigInt(v.value.length));
    for (let i = 0; i < v.value.length; i++) writeScalar(w, v.itemType, v.value[i], (msg) => bad(`item ${i}: ${msg}`));
    return;
  }
  if (!(v.type in TYPE_IDS)) throw bad(`type ${String((v as { type: unknown }).type)} is not one of arr, ${Object.keys(TYPE_IDS).join(", ")}`);
  w.u32(TYPE_IDS[v.type]);
  writeScalar(w, v.type, v.value, bad);
}

/** Integer ranges of the fixed-size types; a value outside its type's range is refused, not wrapped. */
const RANGES: Partial<Record<GgufScalarType, [number, number]>> = {
  u8: [0, 0xff], i8: [-0x80, 0x7f], u16: [0, 0xffff], i16: [-0x8000, 0x7fff], u32: [0, 0xffffffff], i32: [-0x80000000, 0x7fffffff],
};

function writeScalar(w: ByteWriter, type: GgufScalarType, v: unknown, bad: (msg: string) => Error): void {
  const want = type === "str" ? "string" : type === "bool" ? "boolean" : "number";
  if (!(typeof v === want || ((type === "u64" || type === "i64") && typeof v === "bigint"))) throw bad(`${type} value ${String(v)} is a ${typeof v}`);
  const range = RANGES[type];
  if (range && !(Number.isInteger(v) && (v as number) >= range[0] && (v as number) <= range[1])) throw bad(`${String(v)} is not a ${type}`);
  switch (type) {
    case "u8": return w.put(1, (b, i) => b.writeUInt8(v as number, i));
    case "i8": return w.put(1, (b, i) => b.writeInt8(v as number, i));
    case "u16": return w.put(2, (b, i) => b.writeUInt16LE(v as number, i));
    case "i16": return w.put(2, (b, i) => b.writeInt16LE(v as number, i));
    case "u32": return w.u32(v as number);
    case "i32": return w.put(4, (b, i) => b.writeInt32LE(v as number, i));
    case "f32": return w.put(4, (b, i) => b.writeFloatLE(v as number, i));
    case "f64": return w.put(8, (b, i) => b.writeDoubleLE(v as number, i));
    case "bool": return w.put(1, (b, i) => b.writeUInt8(v ? 1 : 0, i));
    case "str": return w.string(v as string);
    case "u64":
    case "i64": {
      if (typeof v === "number" && !Number.isSafeInteger(v)) throw bad(`${v} is not an integer JS numbers hold exactly; give a bigint`);
      const big = BigInt(v as number | bigint);
      return type === "u64" ? w.put(8, (b, i) => b.writeBigUInt64LE(big, i)) : w.put(8, (b, i) => b.writeBigInt64LE(big, i));
    }
  }
}

/** A growing little-endian byte buffer (the header: a 32K-token vocabulary is about 0.5 MB). */
class ByteWriter {
  private buf = Buffer.alloc(1 << 16);
  private len = 0;

  put(n: number, set: (b: Buffer, at: number) => void): void {
    if (this.len + n > this.buf.length) {
      const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
      this.buf.copy(next, 0, 0, this.len);
      this.buf = next;
    }
    set(this.buf, this.len);
    this.len += n;
  }

  u32(v: number): void {
    this.put(4, (b, i) => b.writeUInt32LE(v, i));
  }

  u64(v: bigint): void {
    this.put(8, (b, i) => b.writeBigUInt64LE(v, i));
  }

  string(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    this.u64(BigInt(bytes.length));
    this.put(bytes.length, (b, i) => bytes.copy(b, i));
  }

  pad(alignment: number): void {
    const n = alignUp(this.len, alignment) - this.len;
    this.put(n, (b, i) => b.fill(0, i, i + n));
  }

  bytes(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}
