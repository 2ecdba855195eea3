/**
 * Which frozen weights the onnxruntime engine holds quantized, and how (the `--weights` policy):
 *
 * - "stored": a GGUF file's Q8_0 and Q4_0 matrices exactly as stored (readBlocks); other ggml
 *   types requantized to the nearest layout onnxruntime computes with: the ones with a per-block
 *   minimum (Q4_1, Q4_K) to 4 bits with zero points, the 5- and 6-bit ones (Q5_0, Q5_1, Q5_K,
 *   Q6_K) to 8 bits; F32/F16/BF16 as float32. A safetensors folder is all float32.
 * - "f32": everything float32.
 * - "q8" / "q4": every matrix quantized at load, symmetric (ggml's Q8_0 / Q4_0 rounding): the
 *   seven linears of each layer, lm_head and the embedding. The embedding is looked up by
 *   gathering the rows of codes a batch needs and dequantizing only those, exactly; a float32
 *   embedding would be 40 % of a 4-bit 1.1B model's memory.
 *
 * Vectors (norms, biases) are always float32, and so is everything an adapter trains (it is
 * held by the adapter, not here).
 */
import type { ModelConfig } from "../model/config";
import type { F32Tensor } from "../formats/safetensors";
import { blockBytes, type BlockQuantized, type WeightPrecision } from "../model/quantized";
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

/** What a stored ggml type is held as under "stored": float32, exact blocks, or requantized to 4 or 8 bits. */
function storedPolicy(type: string): "float32" | "exact" | { bits: 4 | 8; asymmetric: boolean } {
  if (type === "F32" || type === "F16" || type === "BF16") return "float32";
  if (type === "Q8_0" || type === "Q4_0") return "exact";
  if (type === "Q4_1" || type === "Q4_K") return { bits: 4, asymmetric: true };
  return { bits: 8, asymmetric: false }; // Q5_0, Q5_1, Q5_K, Q6_K (and any finer type the loader may add)
}

/**
 * Reads every weight of the model as the policy holds it: one tensor at a time, so loading needs
 * one float32 matrix on top of what is kept.
 */
export function holdWeights(files: WeightSource, c: ModelConfig, precision: WeightPrecision | "stored"): Map<string, HeldWeight> {
  const held = new Map<string, HeldWeight>();
  for (const [name, shape] of expectedWeights(c)) {
    if (!files.has(name)) continue; // an absent lm_head: the head reads the embedding
    const float = (): HeldWeight => ({ name, kind: "float32", tensor: files.read(name, shape) });
    if (shape.length !== 2 || precision === "f32") {
      held.set(name, float());
      continue;
    }
    const [rows, cols] = shape;
    const requantize = (bits: 4 | 8, asymmetric: boolean): HeldWeight => ({ name, kind: "quantized", blocks: quantizeBlocks(files.read(name, shape).data, rows, cols, bits, { asymmetric }), how: "requantized" });
    const exact = (bits: 4 | 8): HeldWeight | undefined => {
      const type = files.storedType(name);
      if (type !== (bits === 8 ? "Q8_0" : "Q4_0")) return undefined;
      const blocks = files.readBlocks(name);
      return blocks && { name, kind: "quantized", blocks, how: "exact" };
    };
    if (precision === "q8" || precision === "q4") {
      const bits = precision === "q8" ? 8 : 4;
      held.set(name, exact(bits) ?? requantize(bits, false));
      continue;
    }
    const type = files.storedType(name);
    const policy = storedPolicy(type);
    if (policy === "float32") held.set(name, float());
    else if (policy === "exact") held.set(name, exact(type === "Q8_0" ? 8 : 4) ?? requantize(type === "Q8_0" ? 8 : 4, false));
    else held.set(name, requantize(policy.bits, policy.asymmetric));
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
