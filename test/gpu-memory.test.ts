/** The per-GPU memory of the exported PyTorch job (engine/export/gpu-memory.ts), against sums done by hand. */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { CUDA_RUNTIME_BYTES, LLAMA2, gpuMemory, gpuMemoryTable } from "../engine/export/gpu-memory";

const plan = { gpus: 8, microBatch: 1, seqLen: 512 };

test("LLaMA-2 7B with DDP: bf16 weights, the paper's 7.6 M Excitor parameters, activations of the 30 adapted layers", () => {
  const m = gpuMemory(LLAMA2["7B"], { ...plan, fsdp: false, checkpointing: false });
  // 32 × (4·4096² + 3·4096·11008 + 2·4096) + 2·32000·4096 + 4096 parameters, 2 bytes each.
  assert.equal(m.weights, 6_738_415_616 * 2);
  // Per adapted layer K·Cq + r·C + Cq·r + H = 30·4096 + 16·4096 + 4096·16 + 32 = 253,984; top 30 of 32 layers.
  assert.equal(m.trainableParams, 7_619_520);
  assert.equal(m.trainable, 7_619_520 * 16);
  // Bytes per token per tracked layer: norms 2·(8+2)·4096 = 81,920; Excitor 2·(16 + 8192) + 6·30 = 16,596;
  // RoPE 8·4096 + 4·4096 = 49,152; probabilities 6·32·512 = 98,304; V and o_proj's input 4·4096 = 16,384;
  // SwiGLU 8·11008 = 88,064: 350,420. Logits 32000·10 = 320,000. Layers 2..31 are tracked (30).
  assert.equal(m.activations, 512 * (30 * 350_420 + 320_000));
  assert.equal(m.total, m.weights + m.trainable + m.activations + CUDA_RUNTIME_BYTES);
});

test("FSDP over 8 GPUs holds an eighth of the base, the root unit and two gathered layers; checkpointing keeps only layer inputs", () => {
  const c = LLAMA2["70B"];
  const ddp = gpuMemory(c, { ...plan, fsdp: false, checkpointing: false });
  const fsdp = gpuMemory(c, { ...plan, fsdp: true, checkpointing: false });
  const root = 2 * 32000 * 8192 + 8192;
  const layer = 4 * 8192 * 8192 / 4 * 2 + 2 * 8192 * 1024 + 3 * 8192 * 28672 + 2 * 8192; // q, o [8192²]; k, v [1024 × 8192]; MLP; norms
  assert.equal(fsdp.weights, ((80 * layer + root) * 2) / 8 + root * 2 + 2 * layer * 2);
  assert.equal(fsdp.activations, ddp.activations);
  const ck = gpuMemory(c, { ...plan, fsdp: true, checkpointing: true });
  // 75 adapted layers (ceil(15/16 · 80)): each keeps its bf16 input [512, 8192]; one layer is recomputed at a time.
  const perToken = 2 * (2 * 4 * 8192 + 2 * 8192) + 2 * (16 + 2 * 8192) + 6 * 30 + 12 * 8192 + 6 * 64 * 512 + 4 * 8192 + 8 * 28672;
  assert.equal(ck.activations, 512 * (75 * 2 * 8192 + perToken + 320_000));
  assert.ok(fsdp.total < 80 * 2 ** 30 && ddp.total > 141 * 2 ** 30, "70B: FSDP ×8 fits an 80 GB GPU, DDP fits none");
});

test("the README's table is the one gpuMemoryTable computes", () => {
  const readme = fs.readFileSync(path.resolve(__dirname, "../../README.md"), "utf8");
  assert.ok(readme.includes(gpuMemoryTable()), "README.md's per-GPU memory table is out of date: paste gpuMemoryTable()'s output");
});
