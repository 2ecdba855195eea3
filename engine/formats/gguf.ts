/**
 * GGUF, llama.cpp's model file (github.com/ggml-org/ggml/blob/master/docs/gguf.md): the magic
 * "GGUF", a version, the tensor and metadata counts, metadata as typed key/value pairs, one info
 * record per tensor (name, dims, ggml type, offset), then the tensor data, aligned.
 *
 * Read here rather than with @huggingface/gguf: that package is asynchronous (built for HTTP
 * range requests), so a GGUF file could not go everywhere a model folder goes (config,
 * tokenizer and weight readers are synchronous); and the header is a small, fixed format.
 * Only the header is read up front; tensor bytes are read one tensor at a time.
 */
import * as fs from "node:fs";
import { ExcitorInputError } from "../errors";
import { ggmlBytes, ggmlType, type GgmlType } from "./ggml-types";

/** A metadata value: numbers (64-bit integers as bigint only past 2^53), strings, booleans, arrays. */
export type GgufValue = number | bigint | boolean | string | GgufValue[] | Float32Array | Int32Array;

export interface GgufTensorInfo {
  name: string;
  /** Row-major shape, outermost first ([out, in] for a linear): GGUF's ne[] reversed. */
  shape: number[];
  type: GgmlType;
  /** Absolute byte offset of the tensor's data in the file. */
  offset: number;
  bytes: number;
}

export interface GgufFile {
  file: string;
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: Map<string, GgufTensorInfo>;
}

const MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
/** A header larger than this is broken or hostile (Llama 3's 128K-token vocabulary takes ~8 MB). */
const MAX_HEADER_BYTES = 512 * 2 ** 20;
const MAX_DIMS = 4; // GGML_MAX_DIMS

/**
 * Whether `p` is a GGUF file: by its extension, or a file that starts with the GGUF magic (Ollama
 * keeps its models as `blobs/sha256-<hex>`, without an extension).
 */
export function isGgufPath(p: string): boolean {
  return /\.gguf$/i.test(p) || hasGgufMagic(p);
}

/** Whether `p` is a regular file whose first four bytes are "GGUF"; false for anything unreadable. */
export function hasGgufMagic(p: string): boolean {
  let fd: number | undefined;
  try {
    if (!fs.statSync(p).isFile()) return false;
    fd = fs.openSync(p, "r");
    const b = Buffer.alloc(4);
    return fs.readSync(fd, b, 0, 4, 0) === 4 && b.readUInt32LE(0) === MAGIC;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Reads a GGUF file's header: metadata and tensor infos, no tensor data. */
export function readGguf(file: string): GgufFile {
  if (!fs.existsSync(file)) throw new ExcitorInputError(`${file}: file not found`, file);
  if (!fs.statSync(file).isFile()) throw new ExcitorInputError(`${file}: not a file`, file);
  const fd = fs.openSync(file, "r");
  try {
    return parse(new Reader(fd, file, fs.fstatSync(fd).size), file);
  } finally {
    fs.closeSync(fd);
  }
}

/** A tensor's bytes, as stored. */
export function readTensorBytes(g: GgufFile, t: GgufTensorInfo): Uint8Array {
  const out = new Uint8Array(t.bytes);
  const fd = fs.openSync(g.file, "r");
  try {
    let done = 0;
    while (done < t.bytes) {
      const n = fs.readSync(fd, out, done, Math.min(t.bytes - done, 1 << 30), t.offset + done);
      if (n <= 0) throw new ExcitorInputError(`${g.file}: truncated in tensor ${t.name}`, g.file);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

function parse(r: Reader, file: string): GgufFile {
  const bad = (msg: string) => new ExcitorInputError(`${file}: ${msg}`, file);
  if (r.size < 8 || r.u32() !== MAGIC) throw bad("not a GGUF file (no GGUF magic)");
  const version = r.u32();
  if (version === 1)
    throw bad(
      "is GGUF version 1 (2023), which llama.cpp itself no longer reads; convert the original model again with llama.cpp's convert_hf_to_gguf.py to get a version 3 file",
    );
  if (version !== 2 && version !== 3)
    throw bad(
      version > 0xffff ? "is a big-endian GGUF file; only little-endian files are supported" : `is GGUF version ${version}; supported: 2 and 3`,
    );
  const tensorCount = r.count("tensor count");
  const kvCount = r.count("metadata count");
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = r.string();
    metadata.set(key, r.value(r.u32(), key));
  }
  const infos: { name: string; ne: number[]; typeId: number; rel: number }[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = r.string();
    const nDims = r.u32();
    if (nDims < 1 || nDims > MAX_DIMS) throw bad(`tensor ${name} has ${nDims} dimensions; GGUF allows 1 to ${MAX_DIMS}`);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) ne.push(r.count(`dimension ${d} of tensor ${name}`));
    infos.push({ name, ne, typeId: r.u32(), rel: r.count(`offset of tensor ${name}`) });
  }
  const alignValue = metadata.get("general.alignment") ?? 32;
  if (typeof alignValue !== "number" || !Number.isInteger(alignValue) || alignValue <= 0 || (alignValue & (alignValue - 1)) !== 0)
    throw bad(`general.alignment must be a power of two (got ${String(alignValue)})`);
  const dataStart = Math.ceil(r.pos / alignValue) * alignValue;
  const tensors = new Map<string, GgufTensorInfo>();
  for (const { name, ne, typeId, rel } of infos) {
    const type = ggmlType(typeId);
    if (!type) throw bad(`tensor ${name} has ggml type id ${typeId}, which ggml does not define`);
    const count = ne.reduce((a, b) => a * b, 1);
    if (ne[0] % type.blockSize !== 0) throw bad(`tensor ${name} has a row of ${ne[0]} elements, not a whole number of ${type.name} blocks (${type.blockSize})`);
    const bytes = ggmlBytes(type, count);
    const offset = dataStart + rel;
    if (rel % alignValue !== 0) throw bad(`tensor ${name} starts at offset ${rel}, not a multiple of the alignment ${alignValue}`);
    if (offset + bytes > r.size) throw bad(`tensor ${name} (${bytes} bytes at ${offset}) runs past the end of the ${r.size}-byte file; the file is truncated`);
    if (tensors.has(name)) throw bad(`tensor ${name} is listed twice`);
    tensors.set(name, { name, shape: ne.slice().reverse(), type, offset, bytes });
  }
  return { file, version, metadata, tensors };
}

/** Sequential reads over the header, fetched from the file in chunks as the parser needs them. */
class Reader {
  pos = 0;
  private buf = Buffer.alloc(0);
  private bufStart = 0;

  constructor(
    private readonly fd: number,
    private readonly file: string,
    readonly size: number,
  ) {}

  private need(n: number): number {
    if (this.pos + n > this.size) throw new ExcitorInputError(`${this.file}: the GGUF header is truncated (needs byte ${this.pos + n} of a ${this.size}-byte file)`, this.file);
    if (this.pos + n > MAX_HEADER_BYTES) throw new ExcitorInputError(`${this.file}: the GGUF header is over ${MAX_HEADER_BYTES >> 20} MiB; the file is broken`, this.file);
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.length) {
      const len = Math.min(Math.max(n, 1 << 20), this.size - this.pos);
      this.buf = Buffer.alloc(len);
      fs.readSync(this.fd, this.buf, 0, len, this.pos);
      this.bufStart = this.pos;
    }
    const at = this.pos - this.bufStart;
    this.pos += n;
    return at;
  }

  /** Reads n bytes with `get` (the buffer may be refilled by need, so it is looked up after). */
  private read<T>(n: number, get: (b: Buffer, at: number) => T): T {
    const at = this.need(n);
    return get(this.buf, at);
  }

  u32(): number {
    return this.read(4, (b, i) => b.readUInt32LE(i));
  }

  /** A uint64 count or offset, as a safe JS number. */
  count(what: string): number {
    const v = this.read(8, (b, i) => b.readBigUInt64LE(i));
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v > BigInt(this.size) * 8n)
      throw new ExcitorInputError(`${this.file}: the GGUF header's ${what} (${v}) cannot be right for a ${this.size}-byte file`, this.file);
    return Number(v);
  }

  string(): string {
    const len = this.count("string length");
    const at = this.need(len);
    return this.buf.toString("utf8", at, at + len);
  }

  value(type: number, key: string): GgufValue {
    switch (type) {
      case 0: return this.read(1, (b, i) => b.readUInt8(i));
      case 1: return this.read(1, (b, i) => b.readInt8(i));
      case 2: return this.read(2, (b, i) => b.readUInt16LE(i));
      case 3: return this.read(2, (b, i) => b.readInt16LE(i));
      case 4: return this.u32();
      case 5: return this.read(4, (b, i) => b.readInt32LE(i));
      case 6: return this.read(4, (b, i) => b.readFloatLE(i));
      case 7: return this.read(1, (b, i) => b.readUInt8(i)) !== 0;
      case 8: return this.string();
      case 9: return this.array(key);
      case 10: return small(this.read(8, (b, i) => b.readBigUInt64LE(i)));
      case 11: return small(this.read(8, (b, i) => b.readBigInt64LE(i)));
      case 12: return this.read(8, (b, i) => b.readDoubleLE(i));
      default:
        throw new ExcitorInputError(`${this.file}: metadata ${key} has value type ${type}, which GGUF does not define`, this.file);
    }
  }

  private array(key: string): GgufValue {
    const type = this.u32();
    const n = this.count(`length of ${key}`);
    // The large arrays (vocabulary scores and token types) come back as typed arrays.
    if (type === 6) {
      const at = this.need(4 * n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = this.buf.readFloatLE(at + 4 * i);
      return out;
    }
    if (type === 5) {
      const at = this.need(4 * n);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = this.buf.readInt32LE(at + 4 * i);
      return out;
    }
    const out: GgufValue[] = [];
    for (let i = 0; i < n; i++) out.push(this.value(type, key));
    return out;
  }
}

function small(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}
