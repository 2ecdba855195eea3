/**
 * Block quantization of a float32 weight W [N, K] ([out, in]) into the layout of quantized.ts
 * (onnxruntime's MatMulNBits): cut along K into blocks of 32, each block `scale · (code − zp)`.
 *
 * - Symmetric, as ggml's Q8_0 and Q4_0 compute it (zero point 2^(bits−1), implicit):
 *   8 bits: scale = max|x| / 127, code = 128 + round(x / scale);
 *   4 bits: scale = −m / 8 where m is the value of largest magnitude (sign kept), code =
 *   min(15, trunc(x / scale + 8.5)): the range [−8, 7]·scale puts m exactly at code 0.
 *   Quantizing the dequantized values of such blocks gives back the same codes.
 * - Asymmetric (explicit zero points, for ggml types with a minimum such as Q4_1 and Q4_K):
 *   the block's range [min(0, lo), max(0, hi)] spread over the 2^bits codes, zero point the code
 *   of 0 (so 0 stays exact), as onnxruntime's own MatMulNBits quantizer does.
 */
import type { BlockQuantized } from "./quantized";

export const BLOCK = 32;

export interface QuantizeOptions {
  /** Explicit per-block zero points (for weights whose blocks are not centred on 0). */
  asymmetric?: boolean;
}

/** W [rows, cols] (row-major) at 4 or 8 bits, blocks of 32 along cols. */
export function quantizeBlocks(w: Float32Array, rows: number, cols: number, bits: 4 | 8, opts: QuantizeOptions = {}): BlockQuantized {
  if (w.length !== rows * cols) throw new Error(`quantizeBlocks: ${w.length} values for [${rows}, ${cols}]`);
  const nb = Math.ceil(cols / BLOCK);
  const blob = (BLOCK * bits) / 8;
  const data = new Uint8Array(rows * nb * blob);
  const scales = new Float32Array(rows * nb);
  const zeroPoints = opts.asymmetric ? new Uint8Array(rows * Math.ceil((nb * bits) / 8)) : undefined;
  const zpRow = zeroPoints ? zeroPoints.length / rows : 0;
  const codes = new Uint8Array(BLOCK);
  const qmax = (1 << bits) - 1;
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      const start = r * cols + b * BLOCK;
      const len = Math.min(BLOCK, cols - b * BLOCK);
      codes.fill(0);
      let scale: number;
      let zp = 1 << (bits - 1);
      if (zeroPoints) {
        let lo = 0;
        let hi = 0;
        for (let i = 0; i < len; i++) {
          lo = Math.min(lo, w[start + i]);
          hi = Math.max(hi, w[start + i]);
        }
        scale = Math.fround((hi - lo) / qmax);
        zp = scale === 0 ? 0 : Math.min(qmax, Math.max(0, Math.round(-lo / scale)));
        const inv = scale === 0 ? 0 : 1 / scale;
        for (let i = 0; i < len; i++) codes[i] = Math.min(qmax, Math.max(0, Math.round(w[start + i] * inv) + zp));
        if (bits === 4) zeroPoints[r * zpRow + (b >> 1)] |= zp << ((b & 1) * 4);
        else zeroPoints[r * zpRow + b] = zp;
      } else if (bits === 8) {
        let amax = 0;
        for (let i = 0; i < len; i++) amax = Math.max(amax, Math.abs(w[start + i]));
        scale = Math.fround(amax / 127);
        const inv = scale === 0 ? 0 : 1 / scale;
        for (let i = 0; i < len; i++) codes[i] = 128 + roundAway(w[start + i] * inv);
      } else {
        let m = 0;
        for (let i = 0; i < len; i++) if (Math.abs(w[start + i]) > Math.abs(m)) m = w[start + i];
        scale = Math.fround(m / -8);
        const inv = scale === 0 ? 0 : 1 / scale;
        for (let i = 0; i < len; i++) codes[i] = Math.min(15, Math.trunc(w[start + i] * inv + 8.5));
      }
      scales[r * nb + b] = scale;
      const at = (r * nb + b) * blob;
      if (bits === 8) data.set(codes, at);
      else for (let j = 0; j < blob; j++) data[at + j] = codes[2 * j] | (codes[2 * j + 1] << 4);
    }
  }
  return { bits, rows, cols, blockSize: BLOCK, data, scales, zeroPoints };
}

/** Rounds half away from zero, as C's roundf (ggml's Q8_0). */
const roundAway = (v: number) => Math.sign(v) * Math.round(Math.abs(v));

/** The code of element i (0-based within the row's padded blocks) of row r. */
function code(b: BlockQuantized, r: number, i: number): number {
  const perRow = b.data.length / b.rows;
  if (b.bits === 8) return b.data[r * perRow + i];
  const byte = b.data[r * perRow + (i >> 1)];
  return i & 1 ? byte >> 4 : byte & 15;
}

/** The zero point of block `blk` of row r. */
export function zeroPoint(b: BlockQuantized, r: number, blk: number): number {
  if (!b.zeroPoints) return 1 << (b.bits - 1);
  const perRow = b.zeroPoints.length / b.rows;
  if (b.bits === 8) return b.zeroPoints[r * perRow + blk];
  const byte = b.zeroPoints[r * perRow + (blk >> 1)];
  return blk & 1 ? byte >> 4 : byte & 15;
}

/** The values the blocks stand for, W [rows, cols] row-major: float32(scale · (code − zp)). */
export function dequantizeBlocks(b: BlockQuantized): Float32Array {
  const { rows, cols, blockSize } = b;
  const nb = Math.ceil(cols / blockSize);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++)
    for (let blk = 0; blk < nb; blk++) {
      const s = b.scales[r * nb + blk];
      const zp = zeroPoint(b, r, blk);
      const end = Math.min(cols, (blk + 1) * blockSize);
      for (let k = blk * blockSize; k < end; k++) out[r * cols + k] = Math.fround(s * (code(b, r, k) - zp));
    }
  return out;
}

/** Zero points one per block, [rows, blocks] uint8 (the explicit ones unpacked, else 2^(bits−1)): what DequantizeLinear reads. */
export function unpackedZeroPoints(b: BlockQuantized): Uint8Array {
  const nb = Math.ceil(b.cols / b.blockSize);
  const out = new Uint8Array(b.rows * nb);
  if (!b.zeroPoints) return out.fill(1 << (b.bits - 1));
  for (let r = 0; r < b.rows; r++) for (let blk = 0; blk < nb; blk++) out[r * nb + blk] = zeroPoint(b, r, blk);
  return out;
}

