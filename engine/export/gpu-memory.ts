/**
 * The memory one GPU needs to run the exported PyTorch job (excitor_torch) on a base model: the
 * frozen bf16 weights (whole with DDP, a 1/G shard plus the units FSDP gathers with FSDP), the
 * Excitor tensors with their gradients and AdamW state, and the activations autograd saves for
 * the backward pass. A model of excitor_torch/model.py under bf16 autocast, not a measurement:
 * each tensor it counts is written out below, so a change in the model has one place to follow.
 */
import { expectedShapes, defaultLayers } from "../excitor/config";
import { countBaseParameters, type ModelConfig } from "../model/config";
import { excitorSize } from "../train/trainer";

export interface GpuPlan {
  /** FSDP shards the frozen base over `gpus` GPUs; DDP keeps it whole on each. */
  fsdp: boolean;
  gpus: number;
  /** Examples per forward/backward pass and tokens per example. */
  microBatch: number;
  seqLen: number;
  /** --activation-checkpointing: each layer keeps only its input and is recomputed in the backward. */
  checkpointing: boolean;
  numPrompts?: number;
  rank?: number;
  layers?: number[];
}

export interface GpuMemory {
  weights: number;
  /** Excitor tensors (float32), their gradients and AdamW's two moments. */
  trainable: number;
  trainableParams: number;
  activations: number;
  /** CUDA context, cuBLAS workspace and NCCL buffers. */
  runtime: number;
  total: number;
}

const BF16 = 2;
const F32 = 4;
/** CUDA context, cuBLAS workspace, NCCL buffers: about 1 GiB on current drivers. */
export const CUDA_RUNTIME_BYTES = 2 ** 30;
/** The gathered units FSDP holds at once: the one computing and the one prefetched. */
const FSDP_GATHERED_UNITS = 2;

export function gpuMemory(c: ModelConfig, p: GpuPlan): GpuMemory {
  const size = excitorSize(c);
  const K = p.numPrompts ?? size.numPrompts;
  const r = p.rank ?? size.rank;
  const layers = p.layers ?? defaultLayers(c.numLayers);
  const shapes = expectedShapes(c, { numPrompts: K, rank: r, layers, baseModel: "", extra: {} });
  const perLayer = Object.values(shapes).reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);
  const trainableParams = perLayer * layers.length;

  const base = countBaseParameters(c);
  const rootParams = c.vocabSize * c.hiddenSize * (c.tieWordEmbeddings ? 1 : 2) + c.hiddenSize;
  const layerParams = (base - rootParams) / c.numLayers;
  // FSDP: this GPU's shard, the root unit (embeddings, lm_head: the root stays gathered through the
  // forward and the backward), and the decoder layers gathered at a time.
  const weights = p.fsdp ? (base * BF16) / p.gpus + rootParams * BF16 + FSDP_GATHERED_UNITS * layerParams * BF16 : base * BF16;

  // Autograd saves activations from the lowest adapted layer up; below it nothing needs a gradient.
  const tracked = c.numLayers - Math.min(...layers);
  const tokens = p.microBatch * p.seqLen;
  const C = c.hiddenSize;
  const Cq = c.numHeads * c.headDim;
  const I = c.intermediateSize;
  const T = p.seqLen;
  const layerBytesPerToken =
    2 * (2 * F32 * C + BF16 * C) + // the two RMSNorms: float32 input and normalised copy, bf16 output
    BF16 * (r + 2 * Cq) + (F32 + BF16) * K + // Excitor: down and up outputs, E; the prompt weights A (float32 softmax, bf16 copy)
    BF16 * 4 * Cq + BF16 * 2 * Cq + // RoPE: Q and K' and their rotated halves; Q, K' cast for the scores
    (F32 + BF16) * c.numHeads * T + // attention probabilities (float32 softmax, bf16 copy for P·V)
    BF16 * 2 * Cq + // V (one per query head) and the attention output, o_proj's input
    BF16 * 4 * I; // SwiGLU: gate and up outputs, silu(gate), their product
  const logitsBytesPerToken = c.vocabSize * (BF16 + F32 + F32); // lm_head output, its float32 copy, log-softmax
  const activations = p.checkpointing
    ? tokens * (tracked * BF16 * C + layerBytesPerToken + logitsBytesPerToken) // each layer's input, one layer recomputed
    : tokens * (tracked * layerBytesPerToken + logitsBytesPerToken);
  const trainable = trainableParams * 4 * F32;
  const total = weights + trainable + activations + CUDA_RUNTIME_BYTES;
  return { weights, trainable, trainableParams, activations, runtime: CUDA_RUNTIME_BYTES, total };
}

/** LLaMA-2's published shapes (config.json of meta-llama/Llama-2-{7b,13b,70b}-hf), for the README's table. */
export const LLAMA2: Record<string, ModelConfig> = {
  "7B": llama2(4096, 11008, 32, 32, 32),
  "13B": llama2(5120, 13824, 40, 40, 40),
  "70B": llama2(8192, 28672, 80, 64, 8),
};

function llama2(hiddenSize: number, intermediateSize: number, numLayers: number, numHeads: number, numKvHeads: number): ModelConfig {
  return {
    architecture: "LlamaForCausalLM",
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim: hiddenSize / numHeads,
    vocabSize: 32000,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    maxPositions: 4096,
    tieWordEmbeddings: false,
    qkvBias: false,
    oBias: false,
    eosTokenIds: [2],
  };
}

/** The README's table: GiB per GPU for LLaMA-2 7B/13B/70B, DDP vs FSDP over 8 GPUs, micro-batch 1 × 512 tokens. */
export function gpuMemoryTable(): string {
  const gib = (b: number) => (b / 2 ** 30).toFixed(1);
  const rows = Object.entries(LLAMA2).map(([name, c]) => {
    const plan = { gpus: 8, microBatch: 1, seqLen: 512 };
    const ddp = gpuMemory(c, { ...plan, fsdp: false, checkpointing: false });
    const fsdp = gpuMemory(c, { ...plan, fsdp: true, checkpointing: false });
    const ddpCk = gpuMemory(c, { ...plan, fsdp: false, checkpointing: true });
    const fsdpCk = gpuMemory(c, { ...plan, fsdp: true, checkpointing: true });
    const m = (ddp.trainableParams / 1e6).toFixed(1);
    return `| ${name} | ${gib(countBaseParameters(c) * BF16)} | ${m} M | ${gib(ddp.total)} | ${gib(fsdp.total)} | ${gib(ddpCk.total)} | ${gib(fsdpCk.total)} |`;
  });
  return [
    "| base | bf16 weights GiB | Excitor params | DDP GiB/GPU | FSDP ×8 GiB/GPU | DDP + checkpointing | FSDP ×8 + checkpointing |",
    "|---|---|---|---|---|---|---|",
    ...rows,
  ].join("\n");
}
