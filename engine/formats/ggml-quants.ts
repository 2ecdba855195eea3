// PLACEHOLDER (Q8_0 and Q4_0 only) until the full kernels land: keep these signatures.
import type { GgmlType } from "./ggml-types";
import type { BlockQuantized } from "../model/quantized";
function h2f(h: number): number { const s = h & 0x8000 ? -1 : 1; const e = (h >> 10) & 31; const f = h & 1023; return e === 0 ? s * f * 2 ** -24 : e === 31 ? (f ? NaN : s * Infinity) : s * (1 + f / 1024) * 2 ** (e - 15); }
/** `count` values of a tensor stored as ggml `type`, as float32. */
export function dequantize(type: GgmlType, bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (type.name === "Q8_0") { for (let b = 0; b < count / 32; b++) { const d = h2f(dv.getUint16(b * 34, true)); for (let i = 0; i < 32; i++) out[b * 32 + i] = d * dv.getInt8(b * 34 + 2 + i); } return out; }
  if (type.name === "Q4_0") { for (let b = 0; b < count / 32; b++) { const d = h2f(dv.getUint16(b * 18, true)); for (let j = 0; j < 16; j++) { const q = bytes[b * 18 + 2 + j]; out[b * 32 + j] = d * ((q & 15) - 8); out[b * 32 + j + 16] = d * ((q >> 4) - 8); } } return out; }
  throw new Error("placeholder: " + type.name);
}
/**
 * A [rows, cols] ggml Q8_0 or Q4_0 tensor as MatMulNBits blocks, exactly (same codes and
 * scales; symmetric, zero point 2^(bits-1)); undefined for any other type.
 */
export function ggmlToBlocks(type: GgmlType, bytes: Uint8Array, rows: number, cols: number): BlockQuantized | undefined {
  if (cols % 32 !== 0) return undefined;
  const nb = (rows * cols) / 32;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const scales = new Float32Array(nb);
  if (type.name === "Q8_0") {
    const data = new Uint8Array(nb * 32);
    for (let b = 0; b < nb; b++) { scales[b] = h2f(dv.getUint16(b * 34, true)); for (let i = 0; i < 32; i++) data[b * 32 + i] = dv.getInt8(b * 34 + 2 + i) + 128; }
    return { bits: 8, rows, cols, blockSize: 32, data, scales };
  }
  if (type.name === "Q4_0") {
    // ggml: byte j holds elements j (low nibble) and j+16 (high); MatMulNBits: 2j low, 2j+1 high
    const data = new Uint8Array(nb * 16);
    for (let b = 0; b < nb; b++) {
      scales[b] = h2f(dv.getUint16(b * 18, true));
      const q = (i: number) => (i < 16 ? bytes[b * 18 + 2 + i] & 15 : bytes[b * 18 + 2 + i - 16] >> 4);
      for (let j = 0; j < 16; j++) data[b * 16 + j] = q(2 * j) | (q(2 * j + 1) << 4);
    }
    return { bits: 4, rows, cols, blockSize: 32, data, scales };
  }
  return undefined;
}
