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
