/**
 * A frozen linear weight held quantized, in the layout of onnxruntime's block-quantized matmul
 * (com.microsoft MatMulNBits): W [N, K] ([out, in], as checkpoints store it) cut along K into
 * blocks of `blockSize`, each block `scale · (q − zeroPoint)`. ggml's Q8_0 and Q4_0 are this
 * exactly (symmetric, block 32); other ggml types are requantized to it.
 */
export interface BlockQuantized {
  bits: 4 | 8;
  /** N: output features (rows of W). */
  rows: number;
  /** K: input features (columns of W). */
  cols: number;
  blockSize: number;
  /**
   * [N, ceil(K / blockSize), blockSize · bits / 8] unsigned codes; with 4 bits two per byte,
   * element 2j in the low nibble and 2j+1 in the high one. Padding past K is zero.
   */
  data: Uint8Array;
  /** [N · ceil(K / blockSize)] float32 scales, row-major. */
  scales: Float32Array;
  /**
   * Absent: symmetric, every block's zero point is 2^(bits−1) (MatMulNBits' default).
   * Present: uint8 zero points, [N, ceil(blocks · bits / 8)] (4 bits: two blocks per byte, low nibble first).
   */
  zeroPoints?: Uint8Array;
}

/** How the engine holds frozen linear weights: float32, or quantized to 8 or 4 bits. */
export const WEIGHT_PRECISIONS = ["f32", "q8", "q4"] as const;
export type WeightPrecision = (typeof WEIGHT_PRECISIONS)[number];

/** Bytes a BlockQuantized tensor takes in memory (codes, scales, zero points). */
export function blockBytes(b: BlockQuantized): number {
  return b.data.byteLength + b.scales.byteLength + (b.zeroPoints?.byteLength ?? 0);
}

/**
 * How the engine holds one frozen weight (the `--weights` policy; engine/onnx/held-weights.ts
 * reads by it and the memory estimate counts by it):
 * - vectors (norms, biases) and everything under "f32": float32;
 * - "q8" / "q4": every matrix (the linears, lm_head and the embedding) as symmetric blocks;
 * - "stored": F32/F16/BF16 as float32; ggml Q8_0 and Q4_0 exactly as stored; the types with a
 *   per-block minimum (Q4_1, Q4_K) requantized to 4 bits with zero points; the 5- and 6-bit
 *   ones (Q5_0, Q5_1, Q5_K, Q6_K) to 8 bits, so a file never loses precision by loading.
 */
export type HeldLayout = { kind: "float32" } | { kind: "blocks"; bits: 4 | 8; asymmetric: boolean; exact: boolean };

export function heldLayout(shape: readonly number[], storedType: string, precision: WeightPrecision | "stored"): HeldLayout {
  if (shape.length !== 2 || precision === "f32") return { kind: "float32" };
  if (precision === "q8" || precision === "q4") {
    const bits = precision === "q8" ? 8 : 4;
    return { kind: "blocks", bits, asymmetric: false, exact: storedType === (bits === 8 ? "Q8_0" : "Q4_0") };
  }
  if (storedType === "F32" || storedType === "F16" || storedType === "BF16") return { kind: "float32" };
  if (storedType === "Q8_0" || storedType === "Q4_0") return { kind: "blocks", bits: storedType === "Q8_0" ? 8 : 4, asymmetric: false, exact: true };
  if (storedType === "Q4_1" || storedType === "Q4_K") return { kind: "blocks", bits: 4, asymmetric: true, exact: false };
  return { kind: "blocks", bits: 8, asymmetric: false, exact: false }; // Q5_0, Q5_1, Q5_K, Q6_K
}
