/**
 * Two kernels for training the CLIP tower (engine/vision/clip-tfjs.ts) on tfjs's wasm backend,
 * registered by demo/scripts/pretrain-vision.ts only; the engine never trains the tower.
 *
 * - The backend has no Conv2DBackpropFilter, so nothing can train a convolution's filter on it,
 *   and the tower's patch embedding is one. This one is plain JavaScript: the patch embedding is
 *   small (8×8×3 → 64, 16 patches a picture).
 * - Its BatchMatMul with a transposed operand is ~10x slower than a plain one (measured here:
 *   75 ms against 4 ms for the same 1088×256×64 product), and every linear layer of the tower
 *   multiplies by Wᵀ forward and by transposed operands backward. The wrapper transposes the
 *   operand into a new buffer first, then runs the plain product.
 */
import type * as tfc from "@tensorflow/tfjs";
import { tf } from "../../engine/backends/tfjs";

interface WasmHeap {
  typedArrayFromHeap(t: tfc.TensorInfo): Float32Array;
  makeOutput(shape: number[], dtype: tfc.DataType): tfc.TensorInfo;
  disposeData(dataId: tfc.DataId): boolean;
}

type KernelArgs = Parameters<tfc.KernelFunc>[0];

let registered = false;

export function registerTrainingKernels(): void {
  if (registered) return;
  registered = true;
  registerConvFilterGradient();
  registerPlainBatchMatMul();
}

function registerPlainBatchMatMul(): void {
  const matmul = tf.getKernel("BatchMatMul", "wasm");
  const transpose = tf.getKernel("Transpose", "wasm");
  if (!matmul || !transpose) throw new Error("the wasm backend lacks BatchMatMul or Transpose");
  tf.unregisterKernel("BatchMatMul", "wasm");
  tf.registerKernel({
    kernelName: "BatchMatMul",
    backendName: "wasm",
    kernelFunc: (args: KernelArgs) => {
      const { inputs, backend, attrs } = args;
      const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
      if (!transposeA && !transposeB) return matmul.kernelFunc(args);
      const swapLast = (t: tfc.TensorInfo) => {
        const r = t.shape.length;
        const perm = [...Array.from({ length: r - 2 }, (_, i) => i), r - 1, r - 2];
        return transpose.kernelFunc({ inputs: { x: t }, backend, attrs: { perm } }) as tfc.TensorInfo;
      };
      const a = transposeA ? swapLast(inputs.a as tfc.TensorInfo) : (inputs.a as tfc.TensorInfo);
      const b = transposeB ? swapLast(inputs.b as tfc.TensorInfo) : (inputs.b as tfc.TensorInfo);
      const out = matmul.kernelFunc({ inputs: { a, b }, backend, attrs: { ...attrs, transposeA: false, transposeB: false } });
      for (const [t, made] of [[a, transposeA], [b, transposeB]] as const) if (made) (backend as unknown as WasmHeap).disposeData(t.dataId);
      return out;
    },
  });
}

/**
 * dW = patchesᵀ · dy: the input's patches gathered in JavaScript (im2col, already transposed to
 * [FH·FW·Ci, B·OH·OW]), the product by the backend's plain matmul. Channels-last, dilation 1.
 */
function registerConvFilterGradient(): void {
  if (tf.getKernel("Conv2DBackpropFilter", "wasm")) return;
  const matmul = tf.getKernel("BatchMatMul", "wasm")!;
  tf.registerKernel({
    kernelName: "Conv2DBackpropFilter",
    backendName: "wasm",
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, dy } = inputs as { x: tfc.TensorInfo; dy: tfc.TensorInfo };
      const a = attrs as unknown as { strides: [number, number] | number; pad: "valid" | "same" | number; dataFormat: "NHWC" | "NCHW"; dimRoundingMode?: "floor" | "round" | "ceil"; filterShape: [number, number, number, number] };
      if (a.dataFormat === "NCHW") throw new Error("Conv2DBackpropFilter (demo wasm kernel): channels-first input is not supported");
      const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false, "channelsLast");
      const { batchSize: B, inHeight: H, inWidth: W, inChannels: Ci, outHeight: OH, outWidth: OW, outChannels: Co, filterHeight: FH, filterWidth: FW, strideHeight: sh, strideWidth: sw } = info;
      const { top, left } = info.padInfo;
      const heap = backend as unknown as WasmHeap;
      const xv = heap.typedArrayFromHeap(x);
      const N = B * OH * OW;
      const K = FH * FW * Ci;
      const cols = new Float32Array(K * N); // [K, N]; zero where the filter hangs over the padding
      for (let b = 0; b < B; b++)
        for (let oh = 0; oh < OH; oh++)
          for (let ow = 0; ow < OW; ow++) {
            const n = (b * OH + oh) * OW + ow;
            for (let fh = 0; fh < FH; fh++) {
              const ih = oh * sh + fh - top;
              if (ih < 0 || ih >= H) continue;
              for (let fw = 0; fw < FW; fw++) {
                const iw = ow * sw + fw - left;
                if (iw < 0 || iw >= W) continue;
                const xi = ((b * H + ih) * W + iw) * Ci;
                const k = (fh * FW + fw) * Ci;
                for (let ci = 0; ci < Ci; ci++) cols[(k + ci) * N + n] = xv[xi + ci];
              }
            }
          }
      const colsT = heap.makeOutput([1, K, N], "float32"); // may grow the heap: xv is not used after this
      heap.typedArrayFromHeap(colsT).set(cols);
      const dy2: tfc.TensorInfo = { dataId: dy.dataId, shape: [1, N, Co], dtype: dy.dtype };
      const dw = matmul.kernelFunc({ inputs: { a: colsT, b: dy2 }, backend, attrs: { transposeA: false, transposeB: false } }) as tfc.TensorInfo; // [1, K, Co]
      heap.disposeData(colsT.dataId);
      return { dataId: dw.dataId, shape: a.filterShape, dtype: dw.dtype }; // [FH, FW, Ci, Co]: the same bytes
    },
  });
}
