/**
 * The seam between what the engine does (score, generate, capture attention, train) and the
 * tensor library that computes it. Callers hold a ModelRuntime and never a tensor: the
 * onnxruntime engine (engine/onnx, the default) and the tfjs engine (engine/tfjs, the readable
 * reference) implement it. Everything crossing the seam is plain typed arrays.
 */
import type { Adapter } from "./adapters";
import type { F32Tensor } from "./formats/safetensors";
import type { ModelConfig } from "./model/config";

/**
 * Image features for the rows of a call (spec § Multimodal): F of each row's image, [rows, Nv, Cv]
 * row-major. A row whose `present` is 0 has no image: its features are ignored and the adapter
 * works on it as a text adapter. Only a multimodal Excitor adapter reads them.
 */
export interface ImageFeatures {
  rows: number;
  numTokens: number; // Nv
  hidden: number; // Cv
  data: Float32Array;
  present: Uint8Array;
}

/** One image's features [Nv, Cv] as the features of a one-row call. */
export function singleImage(features: Float32Array, numTokens: number, hidden: number): ImageFeatures {
  return { rows: 1, numTokens, hidden, data: features, present: Uint8Array.of(1) };
}

/** The same image for each of `rows` rows (sampling a set of answers to one picture). */
export function repeatImage(f: ImageFeatures, rows: number): ImageFeatures {
  if (f.rows === rows) return f;
  const one = f.numTokens * f.hidden;
  const data = new Float32Array(rows * one);
  for (let r = 0; r < rows; r++) data.set(f.data.subarray(0, one), r * one);
  return { ...f, rows, data, present: new Uint8Array(rows).fill(f.present[0]) };
}

/** A padded batch of training rows, row-major [batch, seqLen]. */
export interface TrainBatch {
  batch: number;
  seqLen: number;
  /** Input ids, right-padded. */
  ids: Int32Array;
  /** targets[b, t] = the token to predict after ids[b, ≤t]. */
  targets: Int32Array;
  /** 1 where targets[b, t] counts in the loss, else 0 (prompt tokens, padding). */
  weights: Float32Array;
  /**
   * Soft targets, [batch·seqLen, V] row-major probabilities (e.g. the base model's next-token
   * distributions): when present the loss is Σ weights·(−Σ_v soft·log p), the cross-entropy to
   * them (KL(soft ‖ model) up to a constant), and `targets` is ignored.
   */
  soft?: Float32Array;
  /** Each row's image (multimodal adapters); absent when no row has one. */
  image?: ImageFeatures;
}

/** Target tokens that count in a batch's loss (its weights' sum). */
export function weightedTokens(b: TrainBatch): number {
  let n = 0;
  for (const w of b.weights) n += w;
  return n;
}

export interface LossAndGrads {
  /** Σ over weighted tokens of −log p(target). */
  lossSum: number;
  tokens: number;
  /** d(lossSum · scale)/dθ for every adapter tensor, by its spec name. */
  grads: Map<string, Float32Array>;
}

/**
 * Incremental decoding with a KV cache (K' cached per query head, as the spec says), of one row
 * or of several in lockstep (sampling a set of texts at once: one forward per token for all).
 */
export interface DecodeSession {
  /** Appends tokens (row-major, the same count per row) and returns each row's next-token logits after its last one, [rows, V]. */
  feed(ids: number[]): Promise<Float32Array>;
  /** Tokens per row in the cache. */
  readonly length: number;
  dispose(): void;
}

export interface ModelRuntime {
  readonly backend: string;
  /** Why this backend runs (and why a faster one does not). */
  readonly backendNote: string;
  /** Bytes of frozen weights held, by kind, and those a live decode session was handed (the onnxruntime engine: OrtRuntime.heldBytes). */
  heldBytes?(): { float32: number; q8: number; q4: number; decodeCopy: number };
  readonly config: ModelConfig;
  /** Uploads the adapter's current values (null removes it). Cheap to call every step. */
  setAdapter(adapter: Adapter | null): void;
  /** logprobs[i] = log p(ids[i+1] | ids[0..i]); with useAdapter false, the base model. `image`: one row's picture. */
  tokenLogprobs(ids: number[], useAdapter: boolean, image?: ImageFeatures): Promise<Float32Array>;
  /**
   * Next-token log-probabilities of every position, [batch·seqLen, V] row-major (log-softmax of
   * the logits): what the retention monitor compares between the base and the tuned model.
   */
  logprobRows(ids: Int32Array, batch: number, seqLen: number, useAdapter: boolean, image?: ImageFeatures): Promise<Float32Array>;
  /** `image`: the picture of every row (its rows match `rows`). */
  startDecode(useAdapter: boolean, rows?: number, image?: ImageFeatures): DecodeSession;
  /**
   * Attention probabilities of every layer, each [H, M, M] row-major (query, key): `tuned` as
   * the model computes them, `base` from the base scores alone (gates at 0) on the same layer
   * input. Without the adapter both are the base model's. With an image, `image[l]` of an
   * adapted layer is the Excitor's prompt attention onto the image tokens, A[:, K:] [M, Nv].
   */
  attentionProbs(ids: number[], useAdapter: boolean, image?: ImageFeatures): Promise<AttentionProbs>;
  /** Prepares for lossAndGrads (e.g. keeps extra weight copies for fast backward passes). */
  prepareTraining(adapter: Adapter): void;
  /**
   * Full-parameter training (fine-tuning every weight, or pretraining a base model): from now on
   * every weight is trainable and lossAndGrads returns their gradients. Returns the current
   * values by Hugging Face name, in the checkpoint's layout.
   */
  beginFullTraining(): Map<string, F32Tensor>;
  /**
   * Whether, during full training, `useAdapter: false` still computes the untouched base model
   * (the engine keeps both weight sets) — what the retention monitor needs. Where it is false
   * the trained weights replace the base ones for every call.
   */
  readonly keepsBaseInFullTraining: boolean;
  /** Uploads updated weights (names and layouts as beginFullTraining returned them); `useAdapter: true` computes with them. */
  setBaseWeights(values: Map<string, Float32Array>): void;
  /** Gradients of the adapter's tensors, or of every base weight after beginFullTraining. */
  lossAndGrads(batch: TrainBatch, scale: number): Promise<LossAndGrads>;
  evalLoss(batch: TrainBatch, useAdapter: boolean): Promise<{ lossSum: number; tokens: number }>;
  dispose(): void;
}

export interface AttentionProbs {
  base: Float32Array[];
  tuned: Float32Array[];
  image?: (Float32Array | undefined)[];
}

/** Tokens per row of a decode feed (ids are row-major, the same count for every row). */
export function checkRows(ids: number[], rows: number): number {
  if (ids.length === 0 || ids.length % rows !== 0) throw new Error(`decode: ${ids.length} ids do not split into ${rows} equal rows`);
  return ids.length / rows;
}
