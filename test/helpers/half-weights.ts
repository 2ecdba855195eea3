/** Checkpoints in half precision for dtype tests: the same weights as F16 or BF16, with an F32 twin. */
import * as fs from "node:fs";
import * as path from "node:path";
import { halfToFloat, readHeader, readTensorF32 } from "../../engine/formats/safetensors";

/** Rewrites model.safetensors in another dtype (rounding F32 values) and returns the rounded F32 twin. */
export function rewriteAsHalf(dir: string, dtype: "F16" | "BF16", twin: string): void {
  const file = path.join(dir, "model.safetensors");
  const h = readHeader(file);
  const names = Object.keys(h.tensors).sort();
  const header: Record<string, unknown> = {};
  const parts: Buffer[] = [];
  const twinParts: Buffer[] = [];
  const twinHeader: Record<string, unknown> = {};
  let off = 0;
  let toff = 0;
  for (const name of names) {
    const t = readTensorF32(h, name);
    const raw = new Uint16Array(t.data.length);
    const rounded = new Float32Array(t.data.length);
    for (let i = 0; i < t.data.length; i++) {
      if (dtype === "BF16") {
        raw[i] = new Uint32Array(new Float32Array([t.data[i]]).buffer)[0] >>> 16; // truncation is a valid bf16 value
        rounded[i] = new Float32Array(new Uint32Array([raw[i] << 16]).buffer)[0];
      } else {
        raw[i] = toHalf(t.data[i]);
        rounded[i] = halfToFloat(raw[i]);
      }
    }
    header[name] = { dtype, shape: t.shape, data_offsets: [off, off + raw.byteLength] };
    twinHeader[name] = { dtype: "F32", shape: t.shape, data_offsets: [toff, toff + rounded.byteLength] };
    off += raw.byteLength;
    toff += rounded.byteLength;
    parts.push(Buffer.from(raw.buffer));
    twinParts.push(Buffer.from(rounded.buffer));
  }
  const pack = (hdr: object, body: Buffer[]) => {
    const json = Buffer.from(JSON.stringify(hdr));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    return Buffer.concat([len, json, ...body]);
  };
  fs.writeFileSync(file, pack(header, parts));
  fs.cpSync(dir, twin, { recursive: true });
  fs.writeFileSync(path.join(twin, "model.safetensors"), pack(twinHeader, twinParts));
}

/** float32 -> IEEE half, round to nearest (normal range is enough for these weights). */
function toHalf(f: number): number {
  const u = new Uint32Array(new Float32Array([f]).buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  if (exp <= 0) return sign;
  const mant = u & 0x7fffff;
  let h = sign | (exp << 10) | (mant >>> 13);
  if (mant & 0x1000) h++;
  return h;
}
