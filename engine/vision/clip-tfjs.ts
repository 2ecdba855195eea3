/**
 * The CLIP vision tower's forward pass in tfjs, read next to ../shared/docs/excitor-method.md
 * ("Multimodal", the CLIPVisionModel block): each step there is one line here. Pure and
 * differentiable (no tidy, no disposal): the caller wraps it in tf.tidy. Shapes: B images,
 * S picture side, P patch side, G = S/P, Nv = 1 + G² tokens, Cv hidden, h heads, d = Cv/h,
 * I MLP width.
 */
import type * as tfc from "@tensorflow/tfjs";
import { tf } from "../backends/tfjs";
import type { VisionConfig } from "./config";

type T1 = tfc.Tensor1D;
type T2 = tfc.Tensor2D;
type T3 = tfc.Tensor3D;
type T4 = tfc.Tensor4D;

/**
 * The tower's tensors, keyed by their Hugging Face names without the `vision_model.` prefix
 * (`embeddings.patch_embedding.weight`, `encoder.layers.0.self_attn.q_proj.weight`,
 * `pre_layrnorm.weight`, ...), in the stored layouts (linear weights [out, in]).
 */
export type ClipWeights = Record<string, tfc.Tensor>;

/** Tensor names and shapes the forward pass reads, up to and including layer `layers - 1`. */
export function clipTensorShapes(c: VisionConfig, layers = c.numLayers): Map<string, number[]> {
  const { hiddenSize: C, intermediateSize: I, patchSize: P } = c;
  const m = new Map<string, number[]>([
    ["embeddings.patch_embedding.weight", [C, c.numChannels, P, P]],
    ["embeddings.class_embedding", [C]],
    ["embeddings.position_embedding.weight", [1 + (c.imageSize / P) ** 2, C]],
    ["pre_layrnorm.weight", [C]],
    ["pre_layrnorm.bias", [C]],
  ]);
  for (let i = 0; i < layers; i++) {
    const p = `encoder.layers.${i}`;
    for (const n of ["q_proj", "k_proj", "v_proj", "out_proj"]) {
      m.set(`${p}.self_attn.${n}.weight`, [C, C]);
      m.set(`${p}.self_attn.${n}.bias`, [C]);
    }
    for (const n of ["layer_norm1", "layer_norm2"]) {
      m.set(`${p}.${n}.weight`, [C]);
      m.set(`${p}.${n}.bias`, [C]);
    }
    m.set(`${p}.mlp.fc1.weight`, [I, C]);
    m.set(`${p}.mlp.fc1.bias`, [I]);
    m.set(`${p}.mlp.fc2.weight`, [C, I]);
    m.set(`${p}.mlp.fc2.bias`, [C]);
  }
  return m;
}

/**
 * How many encoder layers feature layer `featureLayer` (-1: the last, -2: the one before, ...)
 * needs; the caller has checked it is in -numLayers..-1.
 */
export const layersFor = (c: VisionConfig, featureLayer: number): number => c.numLayers + 1 + featureLayer;

/** pixels [B, 3, S, S] (preprocessed) -> F [B, Nv, Cv]: the hidden state after layer `featureLayer`. */
export function clipForward(w: ClipWeights, c: VisionConfig, pixels: T4, featureLayer: number): T3 {
  const [B] = pixels.shape;
  const { hiddenSize: C, patchSize: P } = c;
  const G = c.imageSize / P;
  const get = <T extends tfc.Tensor>(name: string) => {
    const t = w[name];
    if (!t) throw new Error(`CLIP weights lack ${name}`);
    return t as T;
  };

  // conv2d with stride P, no bias; tfjs convolves channels-last.
  const filter = tf.transpose(get<T4>("embeddings.patch_embedding.weight"), [2, 3, 1, 0]) as T4; // [P, P, 3, Cv]
  const patches = tf.conv2d(tf.transpose(pixels, [0, 2, 3, 1]) as T4, filter, P, "valid"); // [B, G, G, Cv]
  const grid = tf.reshape(patches, [B, G * G, C]) as T3; // row-major over the grid
  const cls = tf.tile(tf.reshape(get<T1>("embeddings.class_embedding"), [1, 1, C]), [B, 1, 1]) as T3; // [B, 1, Cv]
  let x = tf.add(tf.concat([cls, grid], 1), get<T2>("embeddings.position_embedding.weight")) as T3; // [B, Nv, Cv]
  x = layerNorm(x, get("pre_layrnorm.weight"), get("pre_layrnorm.bias"), c.layerNormEps);

  const layers = layersFor(c, featureLayer);
  for (let i = 0; i < layers; i++) {
    const p = `encoder.layers.${i}`;
    const lin = (t: T3, name: string) => linear(t, get(`${p}.${name}.weight`), get(`${p}.${name}.bias`));
    const h = layerNorm(x, get(`${p}.layer_norm1.weight`), get(`${p}.layer_norm1.bias`), c.layerNormEps); // [B, Nv, Cv]
    x = tf.add(x, lin(attention(h, lin, c), "self_attn.out_proj")) as T3;
    const h2 = layerNorm(x, get(`${p}.layer_norm2.weight`), get(`${p}.layer_norm2.bias`), c.layerNormEps); // [B, Nv, Cv]
    x = tf.add(x, lin(activation(lin(h2, "mlp.fc1"), c), "mlp.fc2")) as T3; // fc1: [B, Nv, I]
  }
  return x;
}

/** Multi-head self-attention without a mask, h [B, Nv, Cv] -> heads concatenated [B, Nv, Cv] (before out_proj). */
function attention(h: T3, lin: (t: T3, name: string) => T3, c: VisionConfig): T3 {
  const [B, N, C] = h.shape;
  const { numHeads: H, headDim: d } = c;
  const heads = (t: T3) => tf.transpose(tf.reshape(t, [B, N, H, d]), [0, 2, 1, 3]) as T4; // [B, h, Nv, d]
  const q = heads(tf.mul(lin(h, "self_attn.q_proj"), d ** -0.5) as T3); // q scaled by head_dim^-0.5
  const k = heads(lin(h, "self_attn.k_proj"));
  const v = heads(lin(h, "self_attn.v_proj"));
  const probs = tf.softmax(tf.matMul(q, k, false, true)); // [B, h, Nv, Nv]
  return tf.reshape(tf.transpose(tf.matMul(probs, v), [0, 2, 1, 3]), [B, N, C]) as T3;
}

/** x [B, N, in] -> x Wᵀ + b [B, N, out], W [out, in]. */
function linear(x: T3, w: tfc.Tensor, b: tfc.Tensor): T3 {
  const [B, N, inp] = x.shape;
  const out = w.shape[0];
  const y = tf.matMul(tf.reshape(x, [B * N, inp]) as T2, w as T2, false, true); // [B·N, out]
  return tf.reshape(tf.add(y, b), [B, N, out]) as T3;
}

/** LayerNorm over the last axis (biased variance, as torch). */
function layerNorm(x: T3, w: tfc.Tensor, b: tfc.Tensor, eps: number): T3 {
  const mean = tf.mean(x, -1, true); // [B, N, 1]
  const centred = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centred), -1, true); // [B, N, 1]
  return tf.add(tf.mul(tf.mul(centred, tf.rsqrt(tf.add(variance, eps))), w), b) as T3;
}

/** quick_gelu x·σ(1.702x), or gelu with erf (transformers' "gelu"). */
function activation(x: T3, c: VisionConfig): T3 {
  if (c.hiddenAct === "quick_gelu") return tf.mul(x, tf.sigmoid(tf.mul(x, 1.702))) as T3;
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))) as T3;
}
