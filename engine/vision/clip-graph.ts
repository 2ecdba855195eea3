/**
 * The CLIP vision tower's forward pass as an ONNX graph: the same math as clip-tfjs.ts and the
 * CLIPVisionModel block of ../shared/docs/excitor-method.md, one node per step. As in
 * llama-graph.ts the weights are graph inputs named by their checkpoint names
 * (`vision_model.…`), fed from host memory on every run, and the residual stream is 2-D,
 * [B·Nv, Cv], so every linear is one Gemm reading W in its stored [out, in] layout.
 * Shapes: B images, S picture side, P patch side, G = S/P, Nv = 1 + G², Cv hidden, h heads, d = Cv/h.
 */
import { Graph } from "../onnx/graph";
import { clipTensorShapes, layersFor } from "./clip-tfjs";
import { visionGrid, visionTokens, type VisionConfig } from "./config";

export const CLIP_GRAPH_IO = { pixels: "pixels", features: "features" } as const;
/** Checkpoint names carry this prefix in CLIPVisionModel and CLIPModel files alike. */
export const VISION_PREFIX = "vision_model.";

/** pixels [B, 3, S, S] -> features [B, Nv, Cv], the hidden state after layer `featureLayer`. */
export function buildClipGraph(c: VisionConfig, featureLayer: number): Uint8Array {
  const g = new Graph("clip_vision");
  const { hiddenSize: C, numHeads: H, headDim: d, patchSize: P, imageSize: S } = c;
  const G = visionGrid(c);
  const Nv = visionTokens(c);
  const layers = layersFor(c, featureLayer);
  const shapes = clipTensorShapes(c, layers);
  const declared = new Set<string>();
  const w = (name: string): string => {
    const full = VISION_PREFIX + name;
    if (!declared.has(full)) {
      g.input(full, "float32", shapes.get(name)!);
      declared.add(full);
    }
    return full;
  };
  const pixels = g.input(CLIP_GRAPH_IO.pixels, "float32", ["B", c.numChannels, S, S]);

  const patches = g.op("Conv", [pixels, w("embeddings.patch_embedding.weight")], { kernel_shape: [P, P], strides: [P, P] }); // [B, Cv, G, G]
  const grid = g.transpose(g.reshape(patches, g.ints([0, C, G * G])), [0, 2, 1]); // [B, G·G, Cv], row-major over the grid
  const batch = g.slice(g.op("Shape", [pixels]), 0, 0, 1); // [1]: B
  const cls = g.op("Expand", [g.reshape(w("embeddings.class_embedding"), g.ints([1, 1, C])), g.concat([batch, g.ints([1, C])], 0)]); // [B, 1, Cv]
  const tokens = g.add(g.concat([cls, grid], 1), w("embeddings.position_embedding.weight")); // [B, Nv, Cv]
  let x = layerNorm(g, g.reshape(tokens, g.ints([-1, C])), w("pre_layrnorm.weight"), w("pre_layrnorm.bias"), c.layerNormEps); // [B·Nv, Cv]

  for (let i = 0; i < layers; i++) {
    const p = `encoder.layers.${i}`;
    const lin = (t: string, name: string) => g.add(g.gemmT(t, w(`${p}.${name}.weight`)), w(`${p}.${name}.bias`));
    const h = layerNorm(g, x, w(`${p}.layer_norm1.weight`), w(`${p}.layer_norm1.bias`), c.layerNormEps); // [B·Nv, Cv]
    const heads = (t: string, perm: number[]) => g.transpose(g.reshape(t, g.ints([-1, Nv, H, d])), perm);
    const q = heads(g.scale(lin(h, "self_attn.q_proj"), d ** -0.5), [0, 2, 1, 3]); // q·d^-0.5  [B, h, Nv, d]
    const kT = heads(lin(h, "self_attn.k_proj"), [0, 2, 3, 1]); // [B, h, d, Nv]
    const v = heads(lin(h, "self_attn.v_proj"), [0, 2, 1, 3]); // [B, h, Nv, d]
    const probs = g.softmax(g.matmul(q, kT)); // no mask  [B, h, Nv, Nv]
    const o = g.reshape(g.transpose(g.matmul(probs, v), [0, 2, 1, 3]), g.ints([-1, C])); // concat_h  [B·Nv, Cv]
    x = g.add(x, lin(o, "self_attn.out_proj"));
    const h2 = layerNorm(g, x, w(`${p}.layer_norm2.weight`), w(`${p}.layer_norm2.bias`), c.layerNormEps);
    x = g.add(x, lin(activation(g, lin(h2, "mlp.fc1"), c), "mlp.fc2")); // fc1: [B·Nv, I]
  }
  g.output(g.reshape(x, g.ints([-1, Nv, C])), CLIP_GRAPH_IO.features);
  return g.encode();
}

/** LayerNorm over the last axis (opset 17's LayerNormalization). */
function layerNorm(g: Graph, x: string, weight: string, bias: string, eps: number): string {
  return g.op("LayerNormalization", [x, weight, bias], { axis: -1, epsilon: { f: eps } });
}

/** quick_gelu x·σ(1.702x), or gelu with erf. */
function activation(g: Graph, x: string, c: VisionConfig): string {
  if (c.hiddenAct === "quick_gelu") return g.mul(x, g.sigmoid(g.scale(x, 1.702)));
  return g.mul(g.scale(x, 0.5), g.add(g.scalar(1), g.op("Erf", [g.scale(x, Math.SQRT1_2)])));
}
