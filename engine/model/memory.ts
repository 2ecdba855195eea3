/**
 * How much memory a model will take, before it is loaded: the weights as the engine will hold
 * them (float32, or quantized to MatMulNBits blocks), the KV cache, the activations of the
 * largest pass, the trainable tensors with their AdamW state, and the runtime itself. Read from
 * the config and the weights' headers only, so `excitor info` and the editor's fit check can
 * answer for a 7 B model in milliseconds.
 *
 * It is a model of the onnxruntime engine (engine/onnx), not a measurement: every part is
 * written out below with the tensors it counts, so a change in the engine that moves memory
 * has one place to be reflected in.
 */
import type { TuningMethod } from "../adapters";
import { defaultLayers, expectedShapes } from "../excitor/config";
import { ggmlTypeByName } from "../formats/ggml-types";
import { LORA_DEFAULTS, moduleShape, type LoraModule } from "../lora/config";
import { excitorSize, TRAIN_DEFAULTS } from "../train/trainer";
import { RETENTION_DEFAULTS, ROWS_PER_PASS, SAMPLE_ROWS } from "../train/retention";
import { countBaseParameters, type ModelConfig } from "./config";
import { heldLayout, type HeldLayout, type WeightPrecision } from "./quantized";
import { expectedWeights, type WeightSource } from "./weights";

/** How frozen weights are held: as the file stores them (see heldLayout in quantized.ts), or all at one precision. */
export type HeldPrecision = WeightPrecision | "stored";

/** What a WeightSource must tell: which tensors it has and how each is stored. */
export type WeightHeaders = Pick<WeightSource, "has" | "shape" | "storedType">;

/** Elements per MatMulNBits block: ggml's Q8_0 / Q4_0 block, with one float32 scale each (symmetric: no zero points). */
export const QUANT_BLOCK = 32;
/**
 * The process before any tensor: Node, onnxruntime's library, the compiled graphs and the
 * tokenizer. Measured as peak RSS on stories260K (0.3 M parameters, Node 20, onnxruntime 1.30 on
 * the CPU): `excitor generate` 117 MiB, `excitor train` (2 steps) 217 MiB; rounded up.
 */
export const RUNTIME_BYTES = { chat: 160 * 2 ** 20, train: 256 * 2 ** 20 } as const;
/** Allocators keep freed blocks and round sizes up: this share is added to the tensors' bytes. */
export const ALLOCATOR_SLACK = 0.1;
/** The chat's context when none is given: the model's, up to this many tokens. */
export const CHAT_CONTEXT = 4096;
/** Trainable tensor, its gradient and AdamW's two moments, all float32. */
const OPTIMIZER_BYTES_PER_PARAM = 16;
const F32 = 4;

export interface MemoryPlan {
  task: "train" | "chat";
  /** chat: tokens in the context (default: the model's, at most CHAT_CONTEXT); train: tokens per example (default: --max-length's 512, at most the model's). */
  context?: number;
  /** train: examples per forward/backward pass (--micro-batch; default 4). */
  batch?: number;
  /** train: what is trained (default excitor). chat: whether an Excitor adapter is attached (default: yes, on the spec's layers). */
  method?: TuningMethod | "none";
  /** Excitor's K and r (default: the trainer's, by model size) and the adapted layers (Excitor: the spec's; LoRA: all). */
  numPrompts?: number;
  rank?: number;
  layers?: number[];
  /** LoRA's rank and modules (default PEFT's r 8 on q_proj, v_proj). */
  loraR?: number;
  loraTargets?: LoraModule[];
  /** train: whether the forgetting monitor runs (default yes): its sampling cache and its [rows, V] passes. */
  retention?: boolean;
}

/** Bytes, by what holds them. */
export interface MemoryEstimate {
  task: "train" | "chat";
  /** The precision asked for (full fine-tuning always holds float32). */
  precision: HeldPrecision;
  context: number;
  batch: number;
  /** The frozen weights as the forward pass reads them. */
  weights: number;
  /**
   * chat: the decode session's prepacked copy of the quantized matrices it multiplies by
   * (onnxruntime's MatMulNBits keeps its own); 0 for float32 weights. Training dequantizes each
   * matrix where it is used and holds no second copy (the decode session is released while it runs).
   */
  decodeCopy: number;
  /** chat: the conversation's keys and values; train: the forgetting monitor's sampling cache. Both with the step's new copy. */
  kvCache: number;
  /** The largest pass's intermediate tensors. */
  activations: number;
  /** train: trainable parameters × 16 bytes (the tensor, its gradient, AdamW's m and v). */
  optimizer: number;
  trainableParameters: number;
  /** RUNTIME_BYTES, the float32 copy of the largest tensor while it is read, and ALLOCATOR_SLACK. */
  overhead: number;
  total: number;
}

// ---------------------------------------------------------------- weights as held

/** Bits a stored type spends per weight, scales included (Q8_0: 8.5, Q4_K: 4.5, F16: 16). */
export function storedBitsPerWeight(storedType: string): number {
  const t = ggmlTypeByNameOrUndefined(storedType);
  return t ? (8 * t.typeSize) / t.blockSize : 32;
}

/**
 * Bytes a weight takes held as `l`: float32, or MatMulNBits blocks of QUANT_BLOCK along cols with
 * a float32 scale each (and, with zero points, 4 bits packed plus one byte unpacked a block).
 */
export function heldBytes(shape: readonly number[], l: HeldLayout): number {
  const count = shape.reduce((a, b) => a * b, 1);
  if (l.kind === "float32") return count * F32;
  const blocks = (count / shape[shape.length - 1]) * Math.ceil(shape[shape.length - 1] / QUANT_BLOCK);
  return blockBytes(shape, l.bits) + (l.asymmetric ? blocks * 1.5 : 0);
}

/** Bytes of a [rows, cols] weight as MatMulNBits blocks of `bits`. */
function blockBytes(shape: readonly number[], bits: number): number {
  const cols = shape[shape.length - 1];
  const rows = shape.reduce((a, b) => a * b, 1) / cols;
  return rows * Math.ceil(cols / QUANT_BLOCK) * ((QUANT_BLOCK * bits) / 8 + F32);
}

/** The tensors the engine reads, with their shapes (lm_head only when the file has its own). */
function heldTensors(c: ModelConfig, source: WeightHeaders): [string, number[]][] {
  return [...expectedWeights(c)].filter(([name]) => name !== "lm_head.weight" || source.has(name));
}

/**
 * Bytes of the frozen weights held at `precision`, and of the copy a quantized model's decode
 * session prepacks: every quantized matrix it multiplies by (the embedding only when it is also the head).
 */
/** Bytes a decode session's MatMulNBits kernels keep per byte of quantized weights they prepack (measured 1.2-1.7x on the 1.1B shape). */
export const PREPACKED_PER_BYTE = 1.5;

export function weightBytes(c: ModelConfig, source: WeightHeaders, precision: HeldPrecision): { weights: number; decodeCopy: number; largestF32: number } {
  let weights = 0;
  let decodeCopy = 0;
  let largestF32 = 0;
  const tiedHead = !source.has("lm_head.weight");
  for (const [name, shape] of heldTensors(c, source)) {
    const l = heldLayout(shape, source.storedType(name), precision);
    const bytes = heldBytes(shape, l);
    weights += bytes;
    if (l.kind === "blocks" && (name !== "model.embed_tokens.weight" || tiedHead)) decodeCopy += bytes;
    largestF32 = Math.max(largestF32, heldBytes(shape, { kind: "float32" }));
  }
  return { weights, decodeCopy: PREPACKED_PER_BYTE * decodeCopy, largestF32 };
}

// ---------------------------------------------------------------- what the file stores

export interface StoredShare {
  /** "F32", "F16", "BF16", or a ggml type ("Q8_0", "Q4_K"). */
  type: string;
  tensors: number;
  parameters: number;
  bytes: number;
  /** Of all parameters / of all bytes, 0..1. */
  parameterShare: number;
  byteShare: number;
}

/** Each stored type's share of the model's tensors, largest by bytes first. */
export function storedComposition(c: ModelConfig, source: WeightHeaders): StoredShare[] {
  const by = new Map<string, StoredShare>();
  let params = 0;
  let bytes = 0;
  for (const [name, shape] of heldTensors(c, source)) {
    const type = source.storedType(name);
    const n = shape.reduce((a, b) => a * b, 1);
    const b = (n * storedBitsPerWeight(type)) / 8;
    const s = by.get(type) ?? { type, tensors: 0, parameters: 0, bytes: 0, parameterShare: 0, byteShare: 0 };
    s.tensors++;
    s.parameters += n;
    s.bytes += b;
    by.set(type, s);
    params += n;
    bytes += b;
  }
  return [...by.values()]
    .map((s) => ({ ...s, parameterShare: s.parameters / params, byteShare: s.bytes / bytes }))
    .sort((a, b) => b.bytes - a.bytes || a.type.localeCompare(b.type));
}

// ---------------------------------------------------------------- the estimate

export function estimateMemory(c: ModelConfig, source: WeightHeaders, precision: HeldPrecision, plan: MemoryPlan): MemoryEstimate {
  return plan.task === "chat" ? chatMemory(c, source, precision, plan) : trainMemory(c, source, precision, plan);
}

const cq = (c: ModelConfig) => c.numHeads * c.headDim;
const ckv = (c: ModelConfig) => c.numKvHeads * c.headDim;

/**
 * Floats one cached token takes in a layer: keys (an Excitor layer caches K' per query head,
 * [Hkv, G, d], others per kv head) and values per kv head.
 */
function kvFloatsPerToken(c: ModelConfig, adapted: boolean): number {
  return (adapted ? cq(c) : ckv(c)) + ckv(c);
}

function withOverhead(e: Omit<MemoryEstimate, "overhead" | "total">, runtime: number, largestF32: number): MemoryEstimate {
  const tensors = e.weights + e.decodeCopy + e.kvCache + e.activations + e.optimizer;
  const overhead = Math.round(runtime + largestF32 + ALLOCATOR_SLACK * tensors);
  return { ...e, overhead, total: tensors + overhead };
}

/**
 * Chat: the weights, the conversation's cache at `context` tokens, and the largest pass — the
 * prompt's prefill, one layer at a time: its attention scores and probabilities [H, T, T]
 * (the engine's attention is explicit), the MLP's three [T, I] and a few [T, C] / [T, Cq].
 */
function chatMemory(c: ModelConfig, source: WeightHeaders, precision: HeldPrecision, plan: MemoryPlan): MemoryEstimate {
  const T = Math.min(plan.context ?? CHAT_CONTEXT, c.maxPositions);
  const adapted = new Set(plan.method === "none" ? [] : (plan.layers ?? defaultLayers(c.numLayers)));
  const { weights, decodeCopy, largestF32 } = weightBytes(c, source, precision);
  let cacheFloats = 0;
  for (let i = 0; i < c.numLayers; i++) cacheFloats += kvFloatsPerToken(c, adapted.has(i)) * T;
  // onnxruntime returns the grown cache as new tensors: past and present are held together for a step.
  const kvCache = 2 * cacheFloats * F32;
  const layer = T * (4 * c.hiddenSize + 3 * cq(c) + 2 * ckv(c) + 3 * c.intermediateSize) + 2 * c.numHeads * T * T;
  const activations = (layer + c.vocabSize) * F32; // + the last position's logits
  return withOverhead({ task: "chat", precision, context: T, batch: 1, weights, decodeCopy, kvCache, activations, optimizer: 0, trainableParameters: 0 }, RUNTIME_BYTES.chat, largestF32);
}

/**
 * Trainable parameters, the lowest trained layer (the gradient flows from the top down to it),
 * the layers whose keys are K' per query head (Excitor's), and the floats per row a trained
 * layer keeps besides the block's own.
 */
function trainables(c: ModelConfig, plan: MemoryPlan): { params: number; lowest: number; excitorLayers: Set<number>; extraPerRow: (layer: number) => number } {
  const method = plan.method ?? "excitor";
  if (method === "full") return { params: countBaseParameters(c), lowest: 0, excitorLayers: new Set(), extraPerRow: () => 0 };
  if (method === "lora") {
    const r = plan.loraR ?? LORA_DEFAULTS.r;
    const targets = plan.loraTargets ?? LORA_DEFAULTS.targets;
    const layers = plan.layers ?? Array.from({ length: c.numLayers }, (_, i) => i);
    const perLayer = targets.reduce((n, t) => n + r * moduleShape(c, t).reduce((a, b) => a + b, 0), 0);
    // x·Aᵀ [rows, r] is kept per adapted module.
    const adapted = new Set(layers);
    return { params: perLayer * layers.length, lowest: Math.min(...layers), excitorLayers: new Set(), extraPerRow: (i) => (adapted.has(i) ? r * targets.length : 0) };
  }
  const size = excitorSize(c);
  const layers = plan.layers ?? defaultLayers(c.numLayers);
  const shapes = expectedShapes(c, { numPrompts: plan.numPrompts ?? size.numPrompts, rank: plan.rank ?? size.rank, layers, baseModel: "", extra: {} });
  const perLayer = Object.values(shapes).reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);
  // QE [rows, Cq] and the prompt attention [rows, K] are kept per adapted layer; its keys are K' per query head.
  const adapted = new Set(layers);
  const K = plan.numPrompts ?? size.numPrompts;
  return { params: perLayer * layers.length, lowest: Math.min(...layers), excitorLayers: adapted, extraPerRow: (i) => (adapted.has(i) ? cq(c) + K : 0) };
}

/**
 * Training: the weights (a quantized matrix is dequantized where it is used, one at a time), the trainable tensors
 * with AdamW's state, and three passes, each on its own onnxruntime session; a session keeps its
 * memory arena after a run, so their peaks add up rather than take turns:
 * - the train step on `batch` × `context` tokens: every layer from the lowest trained one up
 *   keeps what its backward reads (engine/onnx/llama-graph.ts BlockSaved: normed inputs, Q, K, V,
 *   the attention probabilities [B, H, T, T], the heads' output, the MLP's four [B·T, I]), the
 *   backward of one layer adds its gradients and a second [B, H, T, T], and the head's logits,
 *   log-probabilities and their gradient are [B·T, V] each;
 * - the validation loss, forward only on the same batches: one layer's working set and the
 *   head's logits and log-probabilities;
 * - the forgetting monitor's measuring pass: ROWS_PER_PASS rows of the tuned and the base
 *   model's [rows, V] distributions plus the logits they come from.
 * The monitor's sampling also keeps SAMPLE_ROWS KV caches of 128 tokens.
 * Measured (peak RSS, 4 × 512 tokens, one validation example): a 25 M-parameter model (6 layers
 * of 512, vocabulary 8,000) 1.81 GiB against 1.96 GiB estimated, and 1.13 GiB without the monitor
 * against 1.66; stories260K (Q8_0 GGUF) 565 MiB against 668 MiB. The estimate errs high, as a warning should.
 */
function trainMemory(c: ModelConfig, source: WeightHeaders, precision: HeldPrecision, plan: MemoryPlan): MemoryEstimate {
  const method = plan.method ?? "excitor";
  const full = method === "full";
  // Full fine-tuning trains float32 weights; the quantized ones are frozen-only.
  const held: HeldPrecision = full ? "f32" : precision;
  const T = Math.min(plan.context ?? TRAIN_DEFAULTS.maxLength, c.maxPositions);
  const B = plan.batch ?? TRAIN_DEFAULTS.microBatch;
  const rows = B * T;
  const { weights, largestF32 } = weightBytes(c, source, held);
  const t = trainables(c, { ...plan, method: method === "none" ? "excitor" : method });
  const C = c.hiddenSize;
  const I = c.intermediateSize;
  const attention = B * c.numHeads * T * T; // [B, H, T, T]
  let saved = 0;
  for (let i = t.lowest; i < c.numLayers; i++) {
    const keys = t.excitorLayers.has(i) ? cq(c) : ckv(c);
    saved += rows * (4 * C + 2 * cq(c) + keys + ckv(c) + 4 * I + t.extraPerRow(i)) + attention;
  }
  const backwardLayer = rows * (4 * C + 2 * cq(c) + 2 * ckv(c) + 4 * I) + attention;
  const step = saved + backwardLayer + 3 * rows * c.vocabSize + 2 * rows * C;
  const validation = rows * (4 * C + 2 * cq(c) + 2 * ckv(c) + 3 * I) + 2 * attention + 2 * rows * c.vocabSize;
  const monitorOn = plan.retention ?? true;
  const measure = monitorOn ? 3 * ROWS_PER_PASS * c.vocabSize : 0;
  const activations = (step + validation + measure) * F32;
  const sampleTokens = Math.min(RETENTION_DEFAULTS.maxTokens, c.maxPositions);
  const kvCache = monitorOn ? 2 * SAMPLE_ROWS * sampleTokens * c.numLayers * kvFloatsPerToken(c, false) * F32 : 0;
  return withOverhead(
    {
      task: "train",
      precision: held,
      context: T,
      batch: B,
      weights,
      decodeCopy: 0,
      kvCache,
      activations,
      optimizer: t.params * OPTIMIZER_BYTES_PER_PARAM,
      trainableParameters: t.params,
    },
    RUNTIME_BYTES.train,
    largestF32,
  );
}

function ggmlTypeByNameOrUndefined(name: string) {
  try {
    return ggmlTypeByName(name);
  } catch {
    return undefined; // a safetensors dtype ggml does not name (F64 and the integer types are named)
  }
}
