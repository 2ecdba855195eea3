/**
 * Graph pieces for frozen weights held block-quantized (held-weights.ts), two ways:
 *
 * - Dequantized where used (training, scoring, attention): the codes, scales and zero points are
 *   graph inputs fed from the one copy in host memory, as float32 weights are, so any number of
 *   sessions share it; each use dequantizes W with DequantizeLinear (opset 21, block_size) into a
 *   float32 matrix that lives until its matmul has read it. The backward's dx = dy·W dequantizes
 *   again rather than keep the forward's float W alive across the whole forward pass.
 * - MatMulNBits over initializers (decode): onnxruntime prepacks them for its int8 / fp32
 *   kernels, which makes a token many times faster than dequantizing per use, but the session
 *   then holds its own copy (a fed B would be dequantized in full on every call, slower still).
 *
 * 4-bit codes are fed as bytes (onnxruntime-node takes no 4-bit tensors), element 2j in the low
 * nibble and 2j+1 in the high one. One bit operation per plane gives the codes of the even and of
 * the odd columns, each dequantized with blocks of 16, and the matmul runs as two: x·Wᵀ =
 * x_even·W_evenᵀ + x_odd·W_oddᵀ; splitting x (M rows) is cheap, interleaving W (N rows) is not.
 *
 * Rows whose length K is not a whole number of blocks are padded with codes of 0 (quantize.ts);
 * x gets zero columns to match and dx loses them.
 *
 * onnxruntime merges identical nodes (common-subexpression elimination). The forward's and the
 * backward's dequantization of one weight would merge, and the merged float W would live from
 * the forward to the backward: every layer's at once. So the backward's nodes differ: axes
 * counted from the end, the nibbles split by other operations.
 */
import type { Graph } from "./graph";
import { quantNames, type QuantInfo } from "./held-weights";

export type Pass = "forward" | "backward";

/** Declares a graph input once (LlamaGraph's weights). */
export type Declare = (name: string, type: "float32" | "uint8", dims: number[]) => string;

const blocksOf = (q: QuantInfo) => Math.ceil(q.cols / q.blockSize);
const paddedCols = (q: QuantInfo) => blocksOf(q) * q.blockSize;

/** The fed inputs of a quantized weight: codes [N, bytes per row], scales and zero points [N, blocks]. */
interface QuantInputs {
  codes: string;
  scales: string;
  zp: string;
}

function inputs(declare: Declare, name: string, q: QuantInfo): QuantInputs {
  const n = quantNames(name);
  return {
    codes: declare(n.codes, "uint8", [q.rows, (paddedCols(q) * q.bits) / 8]),
    scales: declare(n.scales, "float32", [q.rows, blocksOf(q)]),
    zp: declare(n.zp, "uint8", [q.rows, blocksOf(q)]),
  };
}

/** Rows [r, end) of each input (a chunk of a large head). */
function rowsOf(g: Graph, v: QuantInputs, r: number, end: number, pass: Pass): QuantInputs {
  const axis = pass === "forward" ? 0 : -2;
  return { codes: g.slice(v.codes, axis, r, end), scales: g.slice(v.scales, axis, r, end), zp: g.slice(v.zp, axis, r, end) };
}

/**
 * onnxruntime runs a node as soon as its inputs are there, and a dequantization reads only graph
 * inputs: left alone, every layer's would run first and all their float32 weights (or 4-bit
 * planes) would live at once. So each dequantization's first nodes read a value made after the
 * activation its matmul reads (Graph.after: zero points, 1/32 of a byte per weight, or a
 * one-byte constant), and run when that matmul can.
 */
const after = (g: Graph, t: string, dims: number[], ready: string) => g.after(t, ready, dims);

/**
 * W [rows, cols] as float32: one matrix [rows, K'] for 8 bits; for 4 bits the planes of its even
 * and odd columns, [rows, K'/2] each (K' = padded cols).
 */
function dequantize(g: Graph, v: QuantInputs, q: QuantInfo, rows: number, pass: Pass, ready: string): string[] {
  const zp = after(g, v.zp, [rows, blocksOf(q)], ready);
  const axis = pass === "forward" ? 1 : -1;
  if (q.bits === 8) return [g.op("DequantizeLinear", [v.codes, v.scales, zp], { axis, block_size: q.blockSize })];
  const byte = (b: number) => after(g, g.byte(b), [1], ready); // [1], broadcast
  const shift = (x: string, dir: "LEFT" | "RIGHT") => g.op("BitShift", [x, byte(4)], { direction: { s: dir } });
  const lo = pass === "forward" ? g.op("BitwiseAnd", [v.codes, byte(15)]) : shift(shift(v.codes, "LEFT"), "RIGHT");
  const hi = pass === "forward" ? shift(v.codes, "RIGHT") : shift(g.op("BitwiseAnd", [v.codes, byte(240)]), "RIGHT");
  return [lo, hi].map((plane) => g.op("DequantizeLinear", [plane, v.scales, zp], { axis, block_size: q.blockSize / 2 }));
}

/** x [M, K] with zero columns up to the padded width. */
function padCols(g: Graph, x: string, q: QuantInfo): string {
  const pad = paddedCols(q) - q.cols;
  return pad ? g.op("Pad", [x, g.ints([0, 0, 0, pad])]) : x;
}

/** x [M, K'] -> its even and its odd columns, [M, K'/2] each. */
function splitPairs(g: Graph, x: string): [string, string] {
  const x3 = g.reshape(x, g.ints([0, -1, 2])); // [M, K'/2, 2]
  return [g.reshape(g.slice(x3, 2, 0, 1), g.ints([0, -1])), g.reshape(g.slice(x3, 2, 1, 2), g.ints([0, -1]))];
}

/** The inverse of splitPairs: [M, K'/2] twice -> [M, K']. */
function joinPairs(g: Graph, even: string, odd: string): string {
  const col = (t: string) => g.reshape(t, g.ints([0, -1, 1]));
  return g.reshape(g.concat([col(even), col(odd)], 2), g.ints([0, -1]));
}

/** x [M, K] · Wᵀ -> [M, rows] over the (chunk of the) weight `v`; `ready`: the value to wait for. */
function forwardProduct(g: Graph, x: string, v: QuantInputs, q: QuantInfo, rows: number, ready: string): string {
  const w = dequantize(g, v, q, rows, "forward", ready);
  const xp = padCols(g, x, q);
  if (w.length === 1) return g.gemmT(xp, w[0]);
  const [even, odd] = splitPairs(g, xp);
  return g.op("Gemm", [odd, w[1], g.gemmT(even, w[0])], { transB: 1 }); // x_odd·W_oddᵀ + x_even·W_evenᵀ
}

/** dy [M, rows] · W -> [M, K'] over the (chunk of the) weight `v`. */
function backwardProduct(g: Graph, dy: string, v: QuantInputs, q: QuantInfo, rows: number, ready: string): string {
  const w = dequantize(g, v, q, rows, "backward", ready);
  return w.length === 1 ? g.matmul(dy, w[0]) : joinPairs(g, g.matmul(dy, w[0]), g.matmul(dy, w[1]));
}

const unpad = (g: Graph, x: string, q: QuantInfo) => (paddedCols(q) === q.cols ? x : g.slice(x, -1, 0, q.cols));

/** x [M, K] · Wᵀ -> [M, N], W dequantized from the fed codes once x exists. */
export function quantMatmulT(g: Graph, declare: Declare, x: string, name: string, q: QuantInfo): string {
  return forwardProduct(g, x, inputs(declare, name, q), q, q.rows, x);
}

/** dy [M, N] · W -> [M, K] (train graphs), W dequantized anew once dy exists. */
export function quantMatmul(g: Graph, declare: Declare, dy: string, name: string, q: QuantInfo): string {
  return unpad(g, backwardProduct(g, dy, inputs(declare, name, q), q, q.rows, dy), q);
}

/** Rows `ids` ([M] int) of W [N, K], dequantized after the gather: an exact lookup that dequantizes M rows, not N. */
export function gatherDequantized(g: Graph, declare: Declare, name: string, q: QuantInfo, ids: string): string {
  const v = inputs(declare, name, q);
  const gather = (x: string) => g.op("Gather", [x, ids], { axis: 0 });
  const picked = { codes: gather(v.codes), scales: gather(v.scales), zp: gather(v.zp) };
  // The gathered rows' count is the batch's: `after` reshapes to [-1, blocks] around it.
  const w = dequantize(g, picked, q, -1, "forward", ids);
  return unpad(g, w.length === 1 ? w[0] : joinPairs(g, w[0], w[1]), q); // [M, K]
}

/** Output rows per chunk of a quantized lm_head: bounds the float32 W a chunk dequantizes (4096 × hidden). */
export const HEAD_CHUNK = 4096;

/**
 * x [M, K] · Wᵀ for a quantized head W [V, K], by chunks of HEAD_CHUNK rows of W, each after the
 * one before: a float32 copy of the whole head (262 MB for a 32000 × 2048 vocabulary) never
 * exists at once.
 */
export function chunkedMatmulT(g: Graph, declare: Declare, x: string, name: string, q: QuantInfo): string {
  const v = inputs(declare, name, q);
  const parts: string[] = [];
  for (let r = 0; r < q.rows; r += HEAD_CHUNK) {
    const end = Math.min(q.rows, r + HEAD_CHUNK);
    const chunk = q.rows <= HEAD_CHUNK ? v : rowsOf(g, v, r, end, "forward");
    parts.push(forwardProduct(g, x, chunk, q, end - r, parts.length ? parts[parts.length - 1] : x)); // [M, chunk]
  }
  return parts.length === 1 ? parts[0] : g.concat(parts, 1); // [M, V]
}

/** dy [M, V] · W -> [M, K] for the same head, chunk by chunk. */
export function chunkedMatmul(g: Graph, declare: Declare, dy: string, name: string, q: QuantInfo): string {
  const v = inputs(declare, name, q);
  let sum = "";
  for (let r = 0; r < q.rows; r += HEAD_CHUNK) {
    const end = Math.min(q.rows, r + HEAD_CHUNK);
    const whole = q.rows <= HEAD_CHUNK;
    const term = backwardProduct(g, whole ? dy : g.slice(dy, 1, r, end), whole ? v : rowsOf(g, v, r, end, "backward"), q, end - r, sum || dy);
    sum = sum ? g.add(sum, term) : term;
  }
  return unpad(g, sum, q);
}

/**
 * x [M, K] · Wᵀ -> [M, N] over W's blocks (the MatMulNBits initializers `name#B`, `name#S`,
 * `name#Z`, read from the in-memory buffers of the same names).
 */
export function matmulNBits(g: Graph, x: string, name: string, q: QuantInfo, accuracyLevel: number): string {
  const nb = blocksOf(q);
  const blob = (q.blockSize * q.bits) / 8;
  const b = nbitsNames(name);
  const ins = [x, g.externalInitializer(b.B, "uint8", [q.rows, nb, blob], b.B, q.rows * nb * blob), g.externalInitializer(b.S, "float32", [q.rows * nb], b.S, q.rows * nb * 4)];
  if (q.asymmetric) {
    const zpBytes = q.rows * Math.ceil((nb * q.bits) / 8);
    ins.push(g.externalInitializer(b.Z, "uint8", [zpBytes], b.Z, zpBytes));
  }
  return g.msOp("MatMulNBits", ins, { K: q.cols, N: q.rows, bits: q.bits, block_size: q.blockSize, accuracy_level: accuracyLevel });
}

/**
 * Whether a decode graph multiplies by this weight with MatMulNBits: onnxruntime's CPU provider
 * has no float32-compute kernel for 8-bit blocks, so at accuracy_level 1 it would dequantize the
 * whole weight on every call (0.1 token/s on a 1.1B model, measured); those weights are
 * dequantized per use from the fed copy instead.
 */
export const runsNBits = (q: QuantInfo, accuracyLevel: number) => q.bits === 4 || accuracyLevel >= 4;

export const nbitsNames = (name: string) => ({ B: `${name}#B`, S: `${name}#S`, Z: `${name}#Z` });
