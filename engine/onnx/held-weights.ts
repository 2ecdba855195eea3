/**
 * The frozen weights as the onnxruntime engine holds them, by the `--weights` policy
 * (engine/model/quantized.ts heldLayout). The embedding, when quantized, is looked up by gathering
 * the rows of codes a batch needs and dequantizing only those, exactly: a float32 embedding would
 * be 40 % of a 4-bit 1.1B model's memory. Everything an adapter trains is held by the adapter.
 */
import type { ModelConfig } from "../model/config";
import type { F32Tensor } from "../formats/safetensors";
import { blockBytes, heldLayout, type BlockQuantized, type WeightPrecision } from "../model/quantized";
import { quantizeBlocks, unpackedZeroPoints } from "../model/quantize";
import { expectedWeights, type WeightSource } from "../model/weights";

export type HeldWeight = { name: string; kind: "float32"; tensor: F32Tensor } | { name: string; kind: "quantized"; blocks: BlockQuantized; how: "exact" | "requantized" };

/** How a quantized weight enters a graph: what the graph builders need to know of it. */
export interface QuantInfo {
  bits: 4 | 8;
  rows: number;
  cols: number;
  blockSize: number;
  /** Explicit zero points (MatMulNBits' optional input). */
  asymmetric: boolean;
}

/** The quantized weights of a model by name; a weight not in it is float32. */
export type QuantLayout = ReadonlyMap<string, QuantInfo>;

export function quantInfo(b: BlockQuantized): QuantInfo {
  return { bits: b.bits, rows: b.rows, cols: b.cols, blockSize: b.blockSize, asymmetric: !!b.zeroPoints };
}

/**
 * Names of the graph values one quantized weight is fed as: `codes` [N, blocks·blockSize·bits/8]
 * uint8 (MatMulNBits' B, rows flattened), `scales` [N, blocks] and `zp` [N, blocks] uint8 (one
 * zero point per block, unpacked: what DequantizeLinear reads).
 */
export const quantNames = (name: string) => ({ codes: `${name}#codes`, scales: `${name}#scales`, zp: `${name}#zp` });

/**
 * Reads every weight of the model as the policy holds it: one tensor at a time, so loading needs
 * one float32 matrix on top of what is kept.
 */
export function holdWeights(files: WeightSource, c: ModelConfig, precision: WeightPrecision | "stored"): Map<string, HeldWeight> {
  const held = new Map<string, HeldWeight>();
  for (const [name, shape] of expectedWeights(c)) {
    if (!files.has(name)) continue; // an absent lm_head: the head reads the embedding
    const layout = heldLayout(shape, files.storedType(name), precision);
    if (layout.kind === "float32") {
      held.set(name, { name, kind: "float32", tensor: files.read(name, shape) });
      continue;
    }
    const [rows, cols] = shape;
    const blocks = layout.exact ? files.readBlocks(name) : undefined;
    if (blocks) held.set(name, { name, kind: "quantized", blocks, how: "exact" });
    else held.set(name, { name, kind: "quantized", blocks: quantizeBlocks(files.read(name, shape).data, rows, cols, layout.bits, { asymmetric: layout.asymmetric }), how: "requantized" });
  }
  return held;
}

/** Bytes of weights held, by kind (codes, scales and zero points for the quantized ones). */
export interface HeldBytes {
  float32: number;
  q8: number;
  q4: number;
}

export function heldBytesOf(held: Iterable<HeldWeight>): HeldBytes {
  const out: HeldBytes = { float32: 0, q8: 0, q4: 0 };
  for (const h of held) {
    if (h.kind === "float32") out.float32 += h.tensor.data.byteLength;
    else out[h.blocks.bits === 8 ? "q8" : "q4"] += blockBytes(h.blocks);
  }
  return out;
}

/** The zero points DequantizeLinear reads ([N, blocks] uint8); symmetric weights of one size share one buffer. */
export class ZeroPointCache {
  private readonly shared = new Map<string, Uint8Array>();
  get(b: BlockQuantized): Uint8Array {
    if (b.zeroPoints) return unpackedZeroPoints(b);
    const n = b.rows * Math.ceil(b.cols / b.blockSize);
    const key = `${b.bits}:${n}`;
    let z = this.shared.get(key);
    if (!z) this.shared.set(key, (z = new Uint8Array(n).fill(1 << (b.bits - 1))));
    return z;
  }
}
