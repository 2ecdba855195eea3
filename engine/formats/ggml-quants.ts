/**
 * ggml's tensor encodings (ggml-common.h block layouts, ggml-quants.c): float32 out of F32, F16,
 * BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K bytes, bit for bit what ggml's
 * `dequantize_row_*` gives; and bytes out of float32 for F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,
 * Q5_1, byte for byte what gguf-py's quants.py (the numpy port of `quantize_row_*_ref`) writes.
 * test/fixtures/ggml-quants/make.py computes the reference values the tests compare with.
 *
 * Every block stores its scale d (and offset m) as IEEE fp16; values are d · q (+ m) for small
 * integer codes q. Those products are exact in float32 (an 11-bit d times a code of at most 8
 * bits; in Q4_K/Q5_K d·scale is 17 bits and q 4-5 bits), so computing in doubles and storing to
 * a Float32Array rounds once, where ggml's float arithmetic rounds, with or without fused
 * multiply-add. (Q6_K's d·scale·q can take 25 bits: exact in a double, it is rounded once at the
 * store, as ggml's float multiply rounds it.) Hot loops read bytes directly and the fp16 scales
 * from a 65536-entry table.
 * Host byte order is assumed little-endian (as GGUF is, and every platform Node runs on).
 */
import type { GgmlType } from "./ggml-types";
import type { BlockQuantized } from "../model/quantized";

// ---- fp16 / bf16 -------------------------------------------------------------------------------

/** HALF_BITS[h] = the float32 bits of fp16 h (exact, NaN payloads kept); HALF is the same table as floats. */
const HALF_BITS = new Uint32Array(65536);
const HALF = new Float32Array(HALF_BITS.buffer);
for (let h = 0; h < 65536; h++) {
  const sign = (h & 0x8000) << 16;
  const e = (h >> 10) & 31;
  const f = h & 1023;
  if (e === 31) HALF_BITS[h] = sign | 0x7f800000 | (f << 13);
  else if (e !== 0) HALF_BITS[h] = sign | ((e - 15 + 127) << 23) | (f << 13);
  else HALF[h] = (sign ? -f : f) * 2 ** -24; // zero and subnormals: exact in float32
}

const SCRATCH = new Float32Array(1);
const SCRATCH_BITS = new Uint32Array(SCRATCH.buffer);

/** The value of fp16 bits `h`. */
export function halfToFloat(h: number): number {
  return HALF[h & 0xffff];
}

/** `f` (rounded to float32 first) as fp16 bits, rounded to nearest even, as ggml's GGML_FP32_TO_FP16. */
export function floatToHalf(f: number): number {
  SCRATCH[0] = f;
  return halfFromFloatBits(SCRATCH_BITS[0]);
}

/** float32 bits -> fp16 bits: nearest even; overflow to infinity; NaN -> sign | 0x7E00 (ggml's quiet NaN). */
function halfFromFloatBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00;
  if (abs >= 0x477ff000) return sign | 0x7c00; // 65520 and up round to infinity (65504 is odd, ties go up)
  if (abs < 0x38800000) {
    // below fp16's smallest normal (2^-14): a multiple of 2^-24, nearest even; 1024 is that normal
    SCRATCH_BITS[0] = abs;
    const y = SCRATCH[0] * 2 ** 24; // exact
    let r = Math.floor(y);
    const frac = y - r;
    if (frac > 0.5 || (frac === 0.5 && r & 1)) r++;
    return sign | r;
  }
  const mant = abs & 0x7fffff;
  let h = ((((abs >>> 23) - 112) << 10) | (mant >>> 13)) >>> 0; // exponent rebased 127 -> 15
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++; // a carry into the exponent is still right
  return sign | h;
}

/** float32 bits -> bf16 bits as ggml_compute_fp32_to_bf16: NaN made quiet, else nearest even. */
function bf16FromFloatBits(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 64) & 0xffff;
  return Math.floor((x + 0x7fff + ((x >>> 16) & 1)) / 65536) & 0xffff;
}

// ---- dequantize --------------------------------------------------------------------------------

/**
 * `count` values of a tensor stored as ggml `type`, as float32: into `out` when given (its first
 * `count` values; a caller going through many tensors reuses one buffer, sparing the first touch
 * of fresh memory, which costs more than the arithmetic on some virtual machines), else a new array.
 */
export function dequantize(type: GgmlType, bytes: Uint8Array, count: number, out?: Float32Array): Float32Array {
  const dq = DEQUANTIZERS[type.name];
  if (!dq) throw new Error(`ggml type ${type.name} cannot be dequantized here; supported: ${Object.keys(DEQUANTIZERS).join(", ")}`);
  const nb = blocksOf(type, bytes, count);
  if (out && out.length < count) throw new Error(`dequantize: out holds ${out.length} values, ${count} needed`);
  const y = out ? out.subarray(0, count) : new Float32Array(count);
  dq(bytes, nb, y);
  return y;
}

/** Number of blocks in `count` values of `type`, checking that `bytes` holds them. */
function blocksOf(type: GgmlType, bytes: Uint8Array, count: number): number {
  if (!Number.isSafeInteger(count) || count < 0 || count % type.blockSize !== 0)
    throw new Error(`${count} values are not a whole number of ${type.name} blocks (${type.blockSize})`);
  const nb = count / type.blockSize;
  if (bytes.byteLength < nb * type.typeSize) throw new Error(`${count} ${type.name} values need ${nb * type.typeSize} bytes, got ${bytes.byteLength}`);
  return nb;
}

type Dequantizer = (b: Uint8Array, nb: number, out: Float32Array) => void;

const DEQUANTIZERS: Record<string, Dequantizer> = {
  F32: (b, n, out) => new Uint8Array(out.buffer, out.byteOffset, 4 * n).set(b.subarray(0, 4 * n)), // bits as stored, NaNs too
  F16: (b, n, out) => {
    const o = new Uint32Array(out.buffer, out.byteOffset, n);
    for (let i = 0; i < n; i++) o[i] = HALF_BITS[b[2 * i] | (b[2 * i + 1] << 8)];
  },
  BF16: (b, n, out) => {
    const o = new Uint32Array(out.buffer, out.byteOffset, n);
    for (let i = 0; i < n; i++) o[i] = (b[2 * i] | (b[2 * i + 1] << 8)) << 16;
  },
  // block_q8_0: d (fp16), qs[32] int8. y = d·q
  Q8_0: (b, nb, out) => {
    const s = new Int8Array(b.buffer, b.byteOffset, b.byteLength);
    for (let i = 0, p = 0, y = 0; i < nb; i++, p += 34) {
      const d = HALF[b[p] | (b[p + 1] << 8)];
      for (let j = 2; j < 34; j++) out[y++] = d * s[p + j];
    }
  },
  // block_q4_0: d, qs[16]; byte j holds element j (low nibble) and j+16 (high). y = d·(q − 8)
  Q4_0: (b, nb, out) => {
    for (let i = 0, p = 0, y = 0; i < nb; i++, p += 18, y += 32) {
      const d = HALF[b[p] | (b[p + 1] << 8)];
      for (let j = 0; j < 16; j++) {
        const q = b[p + 2 + j];
        out[y + j] = d * ((q & 15) - 8);
        out[y + j + 16] = d * ((q >> 4) - 8);
      }
    }
  },
  // block_q4_1: d, m, qs[16]. y = d·q + m
  Q4_1: (b, nb, out) => {
    for (let i = 0, p = 0, y = 0; i < nb; i++, p += 20, y += 32) {
      const d = HALF[b[p] | (b[p + 1] << 8)];
      const m = HALF[b[p + 2] | (b[p + 3] << 8)];
      for (let j = 0; j < 16; j++) {
        const q = b[p + 4 + j];
        out[y + j] = d * (q & 15) + m;
        out[y + j + 16] = d * (q >> 4) + m;
      }
    }
  },
  // block_q5_0: d, qh (32 fifth bits, little-endian u32), qs[16]. y = d·(q − 16)
  Q5_0: (b, nb, out) => {
    for (let i = 0, p = 0, y = 0; i < nb; i++, p += 22, y += 32) {
      const d = HALF[b[p] | (b[p + 1] << 8)];
      const qh = u32At(b, p + 2);
      for (let j = 0; j < 16; j++) {
        const q = b[p + 6 + j];
        out[y + j] = d * (((q & 15) | (((qh >>> j) << 4) & 0x10)) - 16);
        out[y + j + 16] = d * (((q >> 4) | ((qh >>> (j + 12)) & 0x10)) - 16);
      }
    }
  },
  // block_q5_1: d, m, qh, qs[16]. y = d·q + m
  Q5_1: (b, nb, out) => {
    for (let i = 0, p = 0, y = 0; i < nb; i++, p += 24, y += 32) {
      const d = HALF[b[p] | (b[p + 1] << 8)];
      const m = HALF[b[p + 2] | (b[p + 3] << 8)];
      const qh = u32At(b, p + 4);
      for (let j = 0; j < 16; j++) {
        const q = b[p + 8 + j];
        out[y + j] = d * ((q & 15) | (((qh >>> j) << 4) & 0x10)) + m;
        out[y + j + 16] = d * ((q >> 4) | ((qh >>> (j + 12)) & 0x10)) + m;
      }
    }
  },
  // block_q4_K (256 values): d, dmin, scales[12] (8 six-bit scales and mins), qs[128].
  // Sub-block s of 32: y = d·sc[s]·q − dmin·mn[s]; 64 values per 32 bytes, low nibbles first.
  Q4_K: (b, nb, out) => {
    for (let i = 0, p = 0, y = 0; i < nb; i++, p += 144) {
      const d = HALF[b[p] | (b[p + 1] << 8)];
      const dmin = HALF[b[p + 2] | (b[p + 3] << 8)];
      for (let s = 0; s < 8; s += 2) {
        const q = p + 16 + s * 16;
        const d1 = d * scaleK4(b, p + 4, s), m1 = dmin * minK4(b, p + 4, s);
        const d2 = d * scaleK4(b, p + 4, s + 1), m2 = dmin * minK4(b, p + 4, s + 1);
        for (let l = 0; l < 32; l++) out[y++] = d1 * (b[q + l] & 15) - m1;
        for (let l = 0; l < 32; l++) out[y++] = d2 * (b[q + l] >> 4) - m2;
      }
    }
  },
  // block_q5_K: d, dmin, scales[12], qh[32] (bit s of byte l: the fifth bit of sub-block s, item l), qs[128].
  Q5_K: (b, nb, out) => {
    for (let i = 0, p = 0, y = 0; i < nb; i++, p += 176) {
      const d = HALF[b[p] | (b[p + 1] << 8)];
      const dmin = HALF[b[p + 2] | (b[p + 3] << 8)];
      const qh = p + 16;
      for (let s = 0; s < 8; s += 2) {
        const q = p + 48 + s * 16;
        const d1 = d * scaleK4(b, p + 4, s), m1 = dmin * minK4(b, p + 4, s);
        const d2 = d * scaleK4(b, p + 4, s + 1), m2 = dmin * minK4(b, p + 4, s + 1);
        for (let l = 0; l < 32; l++) out[y++] = d1 * ((b[q + l] & 15) | (((b[qh + l] >> s) & 1) << 4)) - m1;
        for (let l = 0; l < 32; l++) out[y++] = d2 * ((b[q + l] >> 4) | (((b[qh + l] >> (s + 1)) & 1) << 4)) - m2;
      }
    }
  },
  // block_q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] int8, d. y = d·sc·(q − 32), 16 values per scale.
  Q6_K: (b, nb, out) => {
    const sb = new Int8Array(b.buffer, b.byteOffset, b.byteLength);
    for (let i = 0, p = 0, y = 0; i < nb; i++, p += 210, y += 256) {
      const d = HALF[b[p + 208] | (b[p + 209] << 8)];
      for (let n = 0; n < 2; n++) {
        const ql = p + 64 * n, qh = p + 128 + 32 * n, sc = p + 192 + 8 * n, o = y + 128 * n;
        for (let l = 0; l < 32; l++) {
          const is = l >> 4;
          const h = b[qh + l];
          out[o + l] = d * sb[sc + is] * (((b[ql + l] & 15) | ((h & 3) << 4)) - 32);
          out[o + l + 32] = d * sb[sc + is + 2] * (((b[ql + l + 32] & 15) | (((h >> 2) & 3) << 4)) - 32);
          out[o + l + 64] = d * sb[sc + is + 4] * (((b[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32);
          out[o + l + 96] = d * sb[sc + is + 6] * (((b[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32);
        }
      }
    }
  },
};

/** The little-endian uint32 at `at` (Q5_0 / Q5_1 qh). */
function u32At(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

/** ggml's get_scale_min_k4: the 6-bit scale of sub-block j from the 12 packed bytes at `at`. */
function scaleK4(b: Uint8Array, at: number, j: number): number {
  return j < 4 ? b[at + j] & 63 : (b[at + j + 4] & 15) | ((b[at + j - 4] >> 6) << 4);
}

/** ggml's get_scale_min_k4: the 6-bit min of sub-block j. */
function minK4(b: Uint8Array, at: number, j: number): number {
  return j < 4 ? b[at + j + 4] & 63 : (b[at + j + 4] >> 4) | ((b[at + j] >> 6) << 4);
}

// ---- quantize ----------------------------------------------------------------------------------

/** The types `quantize` writes. */
export const QUANTIZABLE_GGML_TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"] as const;
export type QuantizableGgmlType = (typeof QUANTIZABLE_GGML_TYPES)[number];

/**
 * `x` encoded as ggml `typeName` (its length a whole number of blocks), byte for byte what
 * gguf-py's `quants.quantize` writes (ggml's `quantize_row_*_ref`, without an importance matrix);
 * written into the start of `out` when given (reused across tensors, as for dequantize), else a new array.
 */
export function quantize(typeName: QuantizableGgmlType | string, x: Float32Array, out?: Uint8Array): Uint8Array {
  const q = QUANTIZERS[typeName as QuantizableGgmlType];
  if (!q) throw new Error(`cannot quantize to ggml type ${typeName}; supported: ${QUANTIZABLE_GGML_TYPES.join(", ")}`);
  const [blockSize, typeSize] = q.size;
  if (x.length % blockSize !== 0) throw new Error(`${x.length} values are not a whole number of ${typeName} blocks (${blockSize})`);
  const bytes = (x.length / blockSize) * typeSize;
  if (out && out.length < bytes) throw new Error(`quantize: out holds ${out.length} bytes, ${bytes} needed`);
  const y = out ? out.subarray(0, bytes) : new Uint8Array(bytes);
  q.run(x, y);
  return y;
}

interface Quantizer {
  size: [blockSize: number, typeSize: number];
  run: (x: Float32Array, out: Uint8Array) => void;
}

function putHalf(out: Uint8Array, at: number, f: number): void {
  const h = floatToHalf(f);
  out[at] = h & 255;
  out[at + 1] = h >> 8;
}

/** F16 / BF16: each float32 (as bits) to 16 bits by `convert`, little-endian. */
function each16(x: Float32Array, out: Uint8Array, convert: (bits: number) => number): void {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  for (let i = 0; i < x.length; i++) {
    const h = convert(bits[i]);
    out[2 * i] = h & 255;
    out[2 * i + 1] = h >> 8;
  }
}

/** Q5_0 / Q5_1's qh: the 32 fifth bits, a little-endian uint32. */
function putU32(out: Uint8Array, at: number, v: number): void {
  out[at] = v & 255;
  out[at + 1] = (v >>> 8) & 255;
  out[at + 2] = (v >>> 16) & 255;
  out[at + 3] = v >>> 24;
}

const QUANTIZERS: Record<QuantizableGgmlType, Quantizer> = {
  F32: { size: [1, 4], run: (x, out) => out.set(new Uint8Array(x.buffer, x.byteOffset, 4 * x.length)) },
  F16: { size: [1, 2], run: (x, out) => each16(x, out, halfFromFloatBits) },
  BF16: { size: [1, 2], run: (x, out) => each16(x, out, bf16FromFloatBits) },
  // d = max|x| / 127; q = round-half-away(x · (1/d))
  Q8_0: {
    size: [32, 34],
    run: (x, out) => {
      for (let i = 0, p = 0; p < out.length; i += 32, p += 34) {
        let amax = 0;
        for (let j = 0; j < 32; j++) {
          const a = Math.abs(x[i + j]);
          if (a > amax) amax = a;
        }
        const d = Math.fround(amax / 127);
        const id = d ? Math.fround(1 / d) : 0;
        putHalf(out, p, d);
        for (let j = 0; j < 32; j++) {
          const v = Math.fround(x[i + j] * id); // |v| <= 127, so v + 128.5 is exact and positive
          let q = (v + 128.5) | 0; // floor(v + ½) + 128, without a branch on the sign (4x faster)
          if (q - 128.5 === v && v < 0) q--; // a negative tie rounds away from zero, as roundf does
          out[p + 2 + j] = q ^ 0x80; // q − 128 as an int8 byte
        }
      }
    },
  },
  Q4_0: { size: [32, 18], run: (x, out) => symmetric(x, out, 4) },
  Q5_0: { size: [32, 22], run: (x, out) => symmetric(x, out, 5) },
  Q4_1: { size: [32, 20], run: (x, out) => withMin(x, out, 4) },
  Q5_1: { size: [32, 24], run: (x, out) => withMin(x, out, 5) },
};

/**
 * Q4_0 / Q5_0: d = the value of largest magnitude (sign kept, the first if tied) / −2^(bits−1), so
 * that value gets code 0 and the full range of codes on its side; q = trunc(x·(1/d) + 2^(bits−1) + ½),
 * at most 2^bits − 1. The multiply-add is rounded once (to a double, then to float32), as ggml's
 * C is when the compiler fuses it (x86-64 with FMA, ARM64) and as gguf-py emulates it; an unfused
 * build can differ by one code where x·(1/d) lies within a rounding error of a half.
 */
function symmetric(x: Float32Array, out: Uint8Array, bits: 4 | 5): void {
  const half = 1 << (bits - 1);
  const top = (1 << bits) - 1;
  const bias = half + 0.5;
  const size = bits === 4 ? 18 : 22;
  const qs = bits === 4 ? 2 : 6;
  for (let i = 0, p = 0; p < out.length; i += 32, p += size) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[i + j];
      const a = Math.abs(v);
      if (amax < a) {
        amax = a;
        max = v;
      }
    }
    const d = Math.fround(max / -half);
    const id = d ? Math.fround(1 / d) : 0;
    putHalf(out, p, d);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      let q0 = Math.fround(x[i + j] * id + bias) | 0;
      let q1 = Math.fround(x[i + j + 16] * id + bias) | 0;
      if (q0 > top) q0 = top;
      if (q1 > top) q1 = top;
      out[p + qs + j] = (q0 & 15) | ((q1 & 15) << 4);
      qh |= ((q0 >> 4) << j) | ((q1 >> 4) << (j + 16));
    }
    if (bits === 5) putU32(out, p + 2, qh);
  }
}

/**
 * Q4_1 / Q5_1: m = min, d = (max − min) / (2^bits − 1); q = trunc((x − m)·(1/d) + ½) in float32
 * steps, each rounded (gguf-py's arithmetic, which does not fuse these).
 */
function withMin(x: Float32Array, out: Uint8Array, bits: 4 | 5): void {
  const top = (1 << bits) - 1;
  const size = bits === 4 ? 20 : 24;
  const qs = bits === 4 ? 4 : 8;
  const f = Math.fround;
  for (let i = 0, p = 0; p < out.length; i += 32, p += size) {
    let min = Infinity;
    let max = -Infinity;
    for (let j = 0; j < 32; j++) {
      const v = x[i + j];
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const d = f(f(max - min) / top);
    const id = d ? f(1 / d) : 0;
    putHalf(out, p, d);
    putHalf(out, p + 2, min);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      let q0 = f(f(f(x[i + j] - min) * id) + 0.5) | 0;
      let q1 = f(f(f(x[i + j + 16] - min) * id) + 0.5) | 0;
      if (q0 > top) q0 = top;
      if (q1 > top) q1 = top;
      out[p + qs + j] = (q0 & 15) | ((q1 & 15) << 4);
      qh |= ((q0 >> 4) << j) | ((q1 >> 4) << (j + 16));
    }
    if (bits === 5) putU32(out, p + 4, qh);
  }
}

// ---- as MatMulNBits blocks ---------------------------------------------------------------------

/**
 * A [rows, cols] ggml Q8_0 or Q4_0 tensor as MatMulNBits blocks, exactly (same codes and
 * scales; symmetric, zero point 2^(bits-1)); undefined for any other type.
 */
export function ggmlToBlocks(type: GgmlType, bytes: Uint8Array, rows: number, cols: number): BlockQuantized | undefined {
  if (cols % 32 !== 0 || (type.name !== "Q8_0" && type.name !== "Q4_0")) return undefined;
  const nb = blocksOf(type, bytes, rows * cols);
  const scales = new Float32Array(nb);
  if (type.name === "Q8_0") {
    // int8 code c is c + 128 unsigned: flipping the top bit of its two's-complement byte
    const data = new Uint8Array(nb * 32);
    for (let i = 0, p = 0, y = 0; i < nb; i++, p += 34) {
      scales[i] = HALF[bytes[p] | (bytes[p + 1] << 8)];
      for (let j = 2; j < 34; j++) data[y++] = bytes[p + j] ^ 0x80;
    }
    return { bits: 8, rows, cols, blockSize: 32, data, scales };
  }
  // ggml: byte j holds elements j (low nibble) and j+16 (high); MatMulNBits: 2j low, 2j+1 high
  const data = new Uint8Array(nb * 16);
  for (let i = 0, p = 0, y = 0; i < nb; i++, p += 18, y += 16) {
    scales[i] = HALF[bytes[p] | (bytes[p + 1] << 8)];
    const q = p + 2;
    for (let j = 0; j < 8; j++) {
      // elements 2j, 2j+1 are low nibbles of bytes 2j, 2j+1; elements 16+2j, 17+2j their high nibbles
      data[y + j] = (bytes[q + 2 * j] & 15) | ((bytes[q + 2 * j + 1] & 15) << 4);
      data[y + 8 + j] = (bytes[q + 2 * j] >> 4) | (bytes[q + 2 * j + 1] & 0xf0);
    }
  }
  return { bits: 4, rows, cols, blockSize: 32, data, scales };
}
