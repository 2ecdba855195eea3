// TEMPORARY (lead's scratch, not committed): replaced by helper H1's implementation.
import type { GgmlType } from "./ggml-types";
import type { BlockQuantized } from "../model/quantized";
function h2f(h: number): number { const s = h & 0x8000 ? -1 : 1; const e = (h >> 10) & 31; const f = h & 1023; return e === 0 ? s * f * 2 ** -24 : e === 31 ? (f ? NaN : s * Infinity) : s * (1 + f / 1024) * 2 ** (e - 15); }
export function dequantize(type: GgmlType, bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (type.name === "Q8_0") { for (let b = 0; b < count / 32; b++) { const d = h2f(dv.getUint16(b * 34, true)); for (let i = 0; i < 32; i++) out[b * 32 + i] = d * dv.getInt8(b * 34 + 2 + i); } return out; }
  throw new Error("scratch: " + type.name);
}
export function ggmlToBlocks(_t: GgmlType, _b: Uint8Array, _r: number, _c: number): BlockQuantized | undefined { return undefined; }
