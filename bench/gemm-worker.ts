/**
 * The matmul rate onnxruntime reaches on the TinyLlama-1.1B shape's training GEMMs (256 rows ×
 * the model's weight matrices, W in its stored [out, in] layout, as the engine runs them):
 * `node dist/bench/gemm-worker.js '<json [[M, K, N], ...]>'` prints GFLOP/s per shape, medians.
 * bench/peer_torch.py measures the same shapes for PyTorch (`--gemm`), so bench/run.ts can
 * show how much of each engine's training step is matrix multiplication at its peak.
 */
import { initOrt } from "../engine/backends/onnxruntime";
import { Graph } from "../engine/onnx/graph";

async function main(): Promise<void> {
  const shapes = JSON.parse(process.argv[2]) as [number, number, number][];
  const { ort, sessionOptions } = await initOrt("cpu");
  const out: number[] = [];
  for (const [M, K, N] of shapes) {
    const g = new Graph("gemm");
    g.output(g.gemmT(g.input("x", "float32", [M, K]), g.input("w", "float32", [N, K])), "y");
    const s = await ort.InferenceSession.create(g.encode(), sessionOptions);
    const feeds = { x: new ort.Tensor("float32", new Float32Array(M * K).fill(0.01), [M, K]), w: new ort.Tensor("float32", new Float32Array(N * K).fill(0.01), [N, K]) };
    for (let i = 0; i < 3; i++) await s.run(feeds);
    const t: number[] = [];
    for (let r = 0; r < 7; r++) {
      const t0 = performance.now();
      await s.run(feeds);
      t.push((performance.now() - t0) / 1000);
    }
    t.sort((a, b) => a - b);
    out.push((2 * M * K * N) / t[3] / 1e9);
    await s.release();
  }
  console.log(JSON.stringify(out));
}

void main();
