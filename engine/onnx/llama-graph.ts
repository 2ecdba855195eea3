/**
 * The LLaMA forward pass with Excitor attention (or LoRA) as an ONNX graph: the same math as
 * engine/tfjs/llama.ts and ../shared/docs/excitor-method.md, one node per step.
 *
 * Layout. The residual stream is 2-D, [B·T, C], so every frozen linear is one Gemm that
 * reads W in its stored [out, in] layout (transB) and the backward dx = dy·W is a plain
 * MatMul: no weight is ever transposed or copied. Attention works on
 * [B, Hkv, G, T, d] with G = H/Hkv query heads per kv head: a base key is [B, Hkv, 1, T, d]
 * and broadcasts over its group, an Excitor key K' = Kb + g·E is [B, Hkv, G, T, d] (one per
 * query head, as the spec requires), and values stay [B, Hkv, 1, T, d] — grouped-query
 * attention without a repeat.
 *
 * LoRA (the comparison method) adds s·(x·Aᵀ)·Bᵀ to the adapted linears (moduleLinear) and
 * leaves the attention layout as in the base model.
 *
 * Frozen weights and adapter tensors (Excitor's spec names, LoRA's PEFT names) are graph inputs
 * named by their checkpoint names, fed from host memory on every run: one float32 copy serves
 * every graph (see runtime.ts). Weights held block-quantized enter through quant-graph.ts
 * (dequantized where used, or MatMulNBits in decode graphs).
 */
import type { ModelConfig } from "../model/config";
import { tensorName, VISION_TENSORS } from "../excitor/config";
import { type LoraModule, LORA_MODULES, loraTensorName } from "../lora/config";
import { Graph, OPSET, OPSET_QUANT } from "./graph";
import type { QuantLayout } from "./held-weights";
import { chunkedMatmul, chunkedMatmulT, gatherDequantized, matmulNBits, quantMatmul, quantMatmulT, runsNBits, type Declare } from "./quant-graph";

/** How a graph reads the frozen weights: which are quantized, and whether through MatMulNBits initializers (quant-graph.ts). */
export interface HeldGraph {
  quant: QuantLayout;
  /** Quantized matrices as MatMulNBits over initializers the session prepacks, at this accuracy_level (decode graphs). */
  nbits?: { accuracyLevel: number };
}

/** Every weight float32, fed as a graph input. */
export const FLOAT_HELD: HeldGraph = { quant: new Map() };

/** Which layers carry an Excitor and its sizes; a graph is built for one layout. */
export interface ExcitorLayout {
  method: "excitor";
  layers: number[];
  numPrompts: number;
  rank: number;
  /** The graph takes image features (a multimodal adapter, called with an image): Nv tokens of width Cv. */
  vision?: { numTokens: number; hidden: number };
}

/** Which linears carry LoRA (every target in every listed layer), its rank and alpha/r. */
export interface LoraLayout {
  method: "lora";
  r: number;
  scaling: number;
  targets: LoraModule[];
  layers: number[];
}

export type AdapterLayout = ExcitorLayout | LoraLayout;

/** A string that differs exactly when two layouts need different graphs (session cache keys). */
export function layoutKey(l: AdapterLayout | undefined): string {
  if (!l) return "base";
  return l.method === "excitor" ? `excitor:${l.layers.join(",")}/${l.numPrompts}/${l.rank}${l.vision ? `/image${l.vision.numTokens}x${l.vision.hidden}` : ""}` : `lora:${l.layers.join(",")}/${l.targets.join(",")}/${l.r}/${l.scaling}`;
}

/** A linear's Hugging Face weight prefix, e.g. model.layers.3.self_attn.q_proj. */
export const modulePrefix = (layer: number, module: LoraModule) => `model.layers.${layer}.${LORA_MODULES[module]}.${module}`;

export const INPUTS = { ids: "ids", cos: "rope_cos", sin: "rope_sin", mask: "mask", imageFeatures: "image_features", imageMask: "image_mask" } as const;

/** Graph output of an adapted layer's prompt attention onto the image tokens (attention graphs). */
export const imageAttnName = (i: number) => `image_attn_${i}`;

/** The image's keys and values, F·Wvkᵀ and F·Wvvᵀ, shared by every adapted layer. */
export interface ImageKv {
  feats2: string; // F [B·Nv, Cv]
  k3: string; // [B, Nv, Cq]
  v3: string; // [B, Nv, Cq]
  mask: string; // [B, 1, Nv]: 0, or −1e9 for a row without an image
}

/** What one block's forward keeps for a backward pass (value names in the graph). */
export interface BlockSaved {
  attnNorm: RmsSaved;
  h: string; // normed input [B·T, C]
  qr: string; // RoPE(Q) [B, Hkv, G, T, d]
  kr: string; // RoPE(K') [B, Hkv, G|1, T, d]
  vt: string; // V [B, Hkv, 1, T, d]
  o: string; // concat_h of the heads' outputs, o_proj's input [B·T, Cq]
  mlpNorm: RmsSaved;
  h2: string; // normed MLP input [B·T, C]
  act: string; // silu(gt)·up, down_proj's input [B·T, I]
  gt: string; // gate_proj [B·T, I]
  up: string; // up_proj [B·T, I]
  /** `a` is [B·T, K]; with an image `a` is [B, T, K+Nv], `ap` its prompt part [B·T, K], `av` its image part [B, T, Nv]. */
  ex?: { u: string; qe: string; a: string; e5: string; gate5: string; prompts: string; ap: string; av?: string; qe3?: string };
  /** x·Aᵀ [B·T, r] of each LoRA-adapted linear of the layer. */
  lora: Partial<Record<LoraModule, string>>;
}

export interface RmsSaved {
  n: string; // x / rms [B·T, C]
  rms: string; // sqrt(mean(x²) + eps) [B·T, 1]
  w: string; // weight [C]
}

export interface BlockOptions {
  /** Past keys (transposed, [B, Hkv, G|1, d, P]) and values ([B, Hkv, 1, P, d]) of this layer (decode graphs). */
  past?: { k: string; v: string };
  /** Collect the layer's probabilities; `base` also for adapted layers (g = 0 on the same input). */
  capture?: boolean;
}

export interface BlockResult {
  out: string; // [B·T, C]
  saved: BlockSaved;
  present?: { k: string; v: string };
  probs?: { tuned: string; base?: string };
  /** An adapted layer's prompt attention onto the image tokens [B, T, Nv] (with an image). */
  imageAttn?: string;
}

/** Swaps the last two axes of a rank-5 value. */
const T5 = [0, 1, 2, 4, 3];

export class LlamaGraph {
  readonly g: Graph;
  readonly ids: string;
  /** [B, T] as an int64 shape vector, for reshapes (made on first use). */
  private bt?: string;
  private readonly cos: string;
  private readonly sin: string;
  private readonly mask: string;
  private readonly declared = new Set<string>();
  private readonly shapes = new Map<string, string>();
  private imageKvValues?: ImageKv;
  readonly G: number;
  readonly cq: number;
  readonly ckv: number;

  constructor(
    readonly c: ModelConfig,
    readonly adapter: AdapterLayout | undefined,
    name: string,
    private readonly tiedHead: boolean,
    /** The batch is one sequence (decode, attention): reshapes use constant shapes. */
    private readonly singleRow = false,
    readonly held: HeldGraph = FLOAT_HELD,
  ) {
    this.g = new Graph(name, held.quant.size ? OPSET_QUANT : OPSET);
    const d = c.headDim;
    this.G = c.numHeads / c.numKvHeads;
    this.cq = c.numHeads * d;
    this.ckv = c.numKvHeads * d;
    this.ids = this.g.input(INPUTS.ids, "int32", [singleRow ? 1 : "B", "T"]);
    this.cos = this.g.input(INPUTS.cos, "float32", ["T", d]);
    this.sin = this.g.input(INPUTS.sin, "float32", ["T", d]);
    this.mask = this.g.input(INPUTS.mask, "float32", ["T", "S"]);
  }

  /** A frozen weight, declared as a graph input on first use. */
  weight(name: string, dims: number[]): string {
    return this.declare(name, "float32", dims);
  }

  /** A graph input, declared on first use. */
  private readonly declare: Declare = (name, type, dims) => {
    if (!this.declared.has(name)) {
      this.g.input(name, type, dims);
      this.declared.add(name);
    }
    return name;
  };

  /** dy [N, out] · W for a frozen matrix W [out, in] (train graphs): the float32 input, or W dequantized anew. */
  matmulBackward(dy: string, name: string, dims: [number, number]): string {
    const q = this.held.quant.get(name);
    return q ? quantMatmul(this.g, this.declare, dy, name, q) : this.g.matmul(dy, this.weight(name, dims));
  }

  /** x [N, in] · Wᵀ for a frozen matrix W [out, in], however it is held. */
  private matmulT(x: string, name: string, dims: [number, number]): string {
    const q = this.held.quant.get(name);
    if (!q) return this.g.gemmT(x, this.weight(name, dims));
    const nbits = this.held.nbits;
    if (nbits && runsNBits(q, nbits.accuracyLevel)) return matmulNBits(this.g, x, name, q, nbits.accuracyLevel);
    return quantMatmulT(this.g, this.declare, x, name, q);
  }

  /** Whether the layer carries an Excitor (its keys K' are per query head). */
  hasExcitor(layer: number): boolean {
    return this.adapter?.method === "excitor" && this.adapter.layers.includes(layer);
  }

  /** The graph takes an image (its adapter is multimodal and the call has a picture). */
  get vision(): ExcitorLayout["vision"] {
    return this.adapter?.method === "excitor" ? this.adapter.vision : undefined;
  }

  /** The image inputs and their projections, made once and read by every adapted layer. */
  imageKv(): ImageKv {
    if (this.imageKvValues) return this.imageKvValues;
    const g = this.g;
    const { numTokens: Nv, hidden: Cv } = this.vision!;
    const B = this.singleRow ? 1 : "B";
    const feats = g.input(INPUTS.imageFeatures, "float32", [B, Nv, Cv]);
    const mask = g.input(INPUTS.imageMask, "float32", [B, 1, Nv]);
    const feats2 = g.reshape(feats, g.ints([-1, Cv])); // [B·Nv, Cv]
    const to3 = (x: string) => g.reshape(x, g.ints([-1, Nv, this.cq])); // [B·Nv, Cq] -> [B, Nv, Cq]
    const k3 = to3(g.gemmT(feats2, this.weight(VISION_TENSORS.key, [this.cq, Cv]))); // F Wvk^T
    const v3 = to3(g.gemmT(feats2, this.weight(VISION_TENSORS.value, [this.cq, Cv]))); // F Wvv^T
    return (this.imageKvValues = { feats2, k3, v3, mask });
  }

  /** Whether this linear carries LoRA. */
  hasLora(layer: number, module: LoraModule): boolean {
    return this.adapter?.method === "lora" && this.adapter.layers.includes(layer) && this.adapter.targets.includes(module);
  }

  /** Whether the layer is tuned at all (its attention has a base to compare with). */
  isAdapted(layer: number): boolean {
    return this.adapter?.layers.includes(layer) ?? false;
  }

  /** [B·T] ids -> [B·T, C]. */
  embed(): string {
    const c = this.c;
    const flat = this.g.reshape(this.ids, this.g.ints([-1]));
    const name = "model.embed_tokens.weight";
    const q = this.held.quant.get(name);
    if (q) return gatherDequantized(this.g, this.declare, name, q, flat);
    return this.g.op("Gather", [this.weight(name, [c.vocabSize, c.hiddenSize]), flat], { axis: 0 });
  }

  /** [B, T] + tail, as a shape vector: a constant when the graph's batch is 1, else built from ids' shape once per tail. */
  shapeBT(tail: number[]): string {
    if (this.singleRow) return this.g.ints([1, -1, ...tail]);
    const key = tail.join(",");
    let v = this.shapes.get(key);
    this.bt ??= this.g.op("Shape", [this.ids]);
    if (!v) this.shapes.set(key, (v = this.g.concat([this.bt, this.g.ints(tail)], 0)));
    return v;
  }

  rmsNorm(x: string, weightName: string): { h: string; saved: RmsSaved } {
    const g = this.g;
    const w = this.weight(weightName, [this.c.hiddenSize]);
    // x / sqrt(mean(x²) + eps): the pattern onnxruntime fuses into one kernel when the backward
    // does not also read n and rms (forward-only graphs).
    const ms = g.mean(g.op("Pow", [x, g.scalar(2)]), [-1]); // [B·T, 1]
    const rms = g.op("Sqrt", [g.add(ms, g.scalar(this.c.rmsNormEps))]);
    const n = g.op("Div", [x, rms]);
    return { h: g.mul(n, w), saved: { n, rms, w } };
  }

  /** x [N, in] -> [N, out] with W [out, in] (+ bias). */
  linear(x: string, name: string, out: number, inp: number, bias = false): string {
    const y = this.matmulT(x, `${name}.weight`, [out, inp]);
    return bias ? this.g.add(y, this.weight(`${name}.bias`, [out])) : y;
  }

  /**
   * One of a layer's seven linears: `base` = x·Wᵀ (+ bias), and `y` = base + s·(x·Aᵀ)·Bᵀ where
   * it carries LoRA (`u` = x·Aᵀ [N, r], kept for the backward); else y = base.
   */
  moduleLinear(layer: number, module: LoraModule, x: string, bias = false): { y: string; base: string; u?: string } {
    const [out, inp] = this.moduleShape(module);
    const base = this.linear(x, modulePrefix(layer, module), out, inp, bias);
    if (!this.hasLora(layer, module)) return { y: base, base };
    const { scaling } = this.adapter as LoraLayout;
    const [A, B] = this.loraWeights(layer, module);
    const u = this.g.gemmT(x, A); // x·Aᵀ  [N, r]
    return { y: this.g.add(base, this.g.gemmT(u, B, scaling)), base, u }; // + s·u·Bᵀ  [N, out]
  }

  /** A [r, in] and B [out, r] of a LoRA'd linear, as graph inputs under PEFT's names. */
  loraWeights(layer: number, module: LoraModule): [string, string] {
    const [out, inp] = this.moduleShape(module);
    const { r } = this.adapter as LoraLayout;
    return [this.weight(loraTensorName(layer, module, "A"), [r, inp]), this.weight(loraTensorName(layer, module, "B"), [out, r])];
  }

  /** [out, in] of a module's weight. */
  moduleShape(module: LoraModule): [number, number] {
    const { hiddenSize: C, intermediateSize: I } = this.c;
    return { q_proj: [this.cq, C], k_proj: [this.ckv, C], v_proj: [this.ckv, C], o_proj: [C, this.cq], gate_proj: [I, C], up_proj: [I, C], down_proj: [C, I] }[module] as [number, number];
  }

  /** Rotate-half RoPE on [..., T, d]: x·cos + rotate_half(x)·sin, rotate_half(x) = x·R. */
  rope(x: string): string {
    const g = this.g;
    return g.add(g.mul(x, this.cos), g.mul(g.matmul(x, this.rotation(false)), this.sin));
  }

  /** The adjoint of rope: dx = dy·cos + rotate_half^T(dy·sin), rotate_half^T(z) = z·R^T. */
  ropeBackward(dy: string): string {
    const g = this.g;
    return g.add(g.mul(dy, this.cos), g.matmul(g.mul(dy, this.sin), this.rotation(true)));
  }

  /** R [d, d] with x·R = [−x2, x1] (halves of x), or its transpose. */
  private rotation(transposed: boolean): string {
    const d = this.c.headDim;
    const half = d / 2;
    const r = new Array<number>(d * d).fill(0);
    for (let i = 0; i < half; i++) {
      r[(i + half) * d + i] = -1; // out[i] = −x[i + half]
      r[i * d + i + half] = 1; // out[i + half] = x[i]
    }
    const rt = transposed ? r.map((_, k) => r[(k % d) * d + Math.floor(k / d)]) : r;
    return this.g.floatsShaped(rt, [d, d]);
  }

  /** [B·T, heads·d] -> [B, Hkv, heads/Hkv, T, d]. */
  toHeads(x: string, group: number): string {
    return this.g.transpose(this.g.reshape(x, this.shapeBT([this.c.numKvHeads, group, this.c.headDim])), [0, 2, 3, 1, 4]);
  }

  block(i: number, x: string, opts: BlockOptions = {}): BlockResult {
    const { g, c } = this;
    const { numKvHeads: Hkv, headDim: d } = c;
    const G = this.G;
    const C = c.hiddenSize;
    const lora: BlockSaved["lora"] = {};
    const lin = (module: LoraModule, input: string, bias = false) => {
      const r = this.moduleLinear(i, module, input, bias);
      if (r.u) lora[module] = r.u;
      return r;
    };

    const an = this.rmsNorm(x, `model.layers.${i}.input_layernorm.weight`);
    const h = an.h; // [B·T, C]
    const ql = lin("q_proj", h, c.qkvBias); // Q  [B·T, Cq]
    const kl = lin("k_proj", h, c.qkvBias); // Kb [B·T, Hkv·d]
    const q = ql.y;
    const k = kl.y;
    const v = lin("v_proj", h, c.qkvBias).y; // V  [B·T, Hkv·d]
    let k5 = g.reshape(k, this.shapeBT([Hkv, 1, d])); // [B, T, Hkv, 1, d]

    let ex: BlockSaved["ex"];
    if (this.hasExcitor(i)) {
      const { numPrompts: K, rank: r } = this.adapter as ExcitorLayout;
      const prompts = this.weight(tensorName(i, "prompts"), [K, this.cq]);
      const u = g.gemmT(h, this.weight(tensorName(i, "down.weight"), [r, C])); // X Wdown^T  [B·T, r]
      const qe = g.gemmT(u, this.weight(tensorName(i, "up.weight"), [this.cq, r])); // QE  [B·T, Cq]
      const zp = g.gemmT(qe, prompts, 1 / Math.sqrt(this.cq)); // QE P^T / sqrt(Cq)  [B·T, K]
      const gate5 = g.reshape(this.weight(tensorName(i, "gate"), [c.numHeads]), g.ints([Hkv, G, 1])); // g  [Hkv, G, 1]
      let e5: string;
      if (this.vision) {
        // Kx = Vx = [P ; F Wv^T]: the image's Nv rows join the K prompts (keys F Wvk^T, values F Wvv^T).
        const iv = this.imageKv();
        const Nv = this.vision.numTokens;
        const qe3 = g.reshape(qe, this.shapeBT([this.cq])); // [B, T, Cq]
        const zv = g.add(g.scale(g.matmul(qe3, g.transpose(iv.k3, [0, 2, 1])), 1 / Math.sqrt(this.cq)), iv.mask); // QE (F Wvk^T)^T / sqrt(Cq)  [B, T, Nv]
        const a = g.softmax(g.concat([g.reshape(zp, this.shapeBT([K])), zv], 2)); // A = softmax over K+Nv  [B, T, K+Nv]
        const ap = g.reshape(g.slice(a, 2, 0, K), g.ints([-1, K])); // [B·T, K]
        const av = g.slice(a, 2, K, K + Nv); // [B, T, Nv]
        const e3 = g.add(g.reshape(g.matmul(ap, prompts), this.shapeBT([this.cq])), g.matmul(av, iv.v3)); // E = A Vx  [B, T, Cq]
        e5 = g.reshape(e3, this.shapeBT([Hkv, G, d])); // [B, T, Hkv, G, d]
        ex = { u, qe, a, e5, gate5, prompts, ap, av, qe3 };
      } else {
        const a = g.softmax(zp); // A = softmax_K(QE P^T / sqrt(Cq))  [B·T, K]
        e5 = g.reshape(g.matmul(a, prompts), this.shapeBT([Hkv, G, d])); // E = A P  [B, T, Hkv, G, d]
        ex = { u, qe, a, e5, gate5, prompts, ap: a };
      }
      k5 = g.add(k5, g.mul(e5, gate5)); // K'_h = Kb_kv(h) + g_h E_h  [B, T, Hkv, G, d]
    }

    const qr = this.rope(this.toHeads(q, G)); // [B, Hkv, G, T, d]
    const kr = this.rope(g.transpose(k5, [0, 2, 3, 1, 4])); // RoPE(K') of the new tokens [B, Hkv, G|1, T, d]
    const vNew = this.toHeads(v, 1); // [B, Hkv, 1, T, d]
    const krT = opts.past ? g.concat([opts.past.k, g.transpose(kr, T5)], 4) : g.transpose(kr, T5); // K'^T [B, Hkv, G|1, d, S]
    const vt = opts.past ? g.concat([opts.past.v, vNew], 3) : vNew; // [B, Hkv, 1, S, d]
    const probs = this.attend(qr, krT); // [B, Hkv, G, T, S]
    const o5 = g.matmul(probs, vt); // [B, Hkv, G, T, d]
    const o = g.reshape(g.transpose(o5, [0, 3, 1, 2, 4]), g.ints([-1, this.cq])); // concat_h  [B·T, Cq]
    const x1 = g.add(x, lin("o_proj", o, c.oBias).y);

    const mn = this.rmsNorm(x1, `model.layers.${i}.post_attention_layernorm.weight`);
    const gt = lin("gate_proj", mn.h).y; // [B·T, I]
    const up = lin("up_proj", mn.h).y;
    const sg = g.sigmoid(gt);
    const act = g.mul(g.mul(gt, sg), up); // silu(gate) · up
    const out = g.add(x1, lin("down_proj", act).y); // [B·T, C]

    const result: BlockResult = { out, saved: { attnNorm: an.saved, h, qr, kr, vt, o, mlpNorm: mn.saved, h2: mn.h, act, gt, up, ex, lora } };
    if (opts.past) result.present = { k: krT, v: vt };
    if (opts.capture) {
      // What the layer would attend without its adapter, on the same input: base Q and base keys.
      let base: string | undefined;
      if (this.isAdapted(i)) {
        const qb = ql.base === q ? qr : this.rope(this.toHeads(ql.base, G));
        base = this.attend(qb, g.transpose(this.rope(this.toHeads(kl.base, 1)), T5));
      }
      result.probs = { tuned: probs, base };
      result.imageAttn = ex?.av;
    }
    return result;
  }

  /** softmax(q k^T / sqrt(d) + mask): [B, Hkv, G, T, d] x k^T [B, Hkv, G|1, d, S] -> [B, Hkv, G, T, S]. */
  attend(qr: string, krT: string): string {
    const g = this.g;
    const scores = g.scale(g.matmul(qr, krT), 1 / Math.sqrt(this.c.headDim));
    return g.softmax(g.add(scores, this.mask));
  }

  /** Final norm and lm_head: [B·T, C] -> logits [B·T, V]. */
  head(x: string): { logits: string; norm: RmsSaved; h: string } {
    const c = this.c;
    const fn = this.rmsNorm(x, "model.norm.weight");
    const q = this.held.quant.get(this.headName);
    const nbits = this.held.nbits;
    const logits =
      q && !(nbits && runsNBits(q, nbits.accuracyLevel)) ? chunkedMatmulT(this.g, this.declare, fn.h, this.headName, q) // a float32 copy of the whole head would be the step's largest tensor
      : this.matmulT(fn.h, this.headName, [c.vocabSize, c.hiddenSize]);
    return { logits, norm: fn.saved, h: fn.h };
  }

  /** dlogits [N, V] · lm_head -> [N, C] (train graphs). */
  headBackward(dlogits: string): string {
    const q = this.held.quant.get(this.headName);
    if (q) return chunkedMatmul(this.g, this.declare, dlogits, this.headName, q);
    return this.g.matmul(dlogits, this.weight(this.headName, [this.c.vocabSize, this.c.hiddenSize]));
  }

  /** The weight lm_head reads: its own, or the embedding when tied. */
  get headName(): string {
    return this.tiedHead ? "model.embed_tokens.weight" : "lm_head.weight";
  }

  /** Per-row log p(target): logits [N, V], targets (N of them, any shape) -> [N, 1]. */
  pickLogprobs(logits: string, targets: string): { lp: string; picked: string; flatTargets: string } {
    const g = this.g;
    const lp = g.logSoftmax(logits);
    const flatTargets = g.reshape(targets, g.ints([-1, 1]));
    return { lp, picked: g.op("GatherElements", [lp, flatTargets], { axis: 1 }), flatTargets };
  }
}

/** Graph inputs for the past keys/values of layer i and its present outputs. */
export const cacheNames = (i: number) => ({ pastK: `past_k_${i}`, pastV: `past_v_${i}`, presentK: `present_k_${i}`, presentV: `present_v_${i}` });

/** log p(target) per position: ids, targets [B, T] -> `logprob` [B·T, 1]. */
export function buildEvalGraph(c: ModelConfig, adapter: AdapterLayout | undefined, tiedHead: boolean, held: HeldGraph = FLOAT_HELD): Uint8Array {
  const lg = new LlamaGraph(c, adapter, "eval", tiedHead, false, held);
  const targets = lg.g.input("targets", "int32", ["B", "T"]);
  let x = lg.embed();
  for (let i = 0; i < c.numLayers; i++) x = lg.block(i, x).out;
  const { picked } = lg.pickLogprobs(lg.head(x).logits, targets);
  lg.g.output(picked, "logprob");
  return lg.g.encode();
}

/** Next-token log-probabilities of every position: ids [B, T] -> `logprobs` [B·T, V]. */
export function buildRowsGraph(c: ModelConfig, adapter: AdapterLayout | undefined, tiedHead: boolean, held: HeldGraph = FLOAT_HELD): Uint8Array {
  const lg = new LlamaGraph(c, adapter, "rows", tiedHead, false, held);
  let x = lg.embed();
  for (let i = 0; i < c.numLayers; i++) x = lg.block(i, x).out;
  lg.g.output(lg.g.logSoftmax(lg.head(x).logits), "logprobs");
  return lg.g.encode();
}

/** One decoding step with a KV cache: ids [1, T] + past -> last logits [1, V] + present. */
export function buildDecodeGraph(c: ModelConfig, adapter: AdapterLayout | undefined, tiedHead: boolean, rows: "one" | "many" = "one", held: HeldGraph = FLOAT_HELD): Uint8Array {
  // One row (chat) reshapes with constant shapes; many rows (sampling a set in lockstep) read B from the ids.
  const single = rows === "one";
  const lg = new LlamaGraph(c, adapter, single ? "decode" : "decode_rows", tiedHead, single, held);
  const B = single ? 1 : "B";
  let x = lg.embed();
  for (let i = 0; i < c.numLayers; i++) {
    const n = cacheNames(i);
    const kg = lg.hasExcitor(i) ? lg.G : 1;
    const past = {
      k: lg.g.input(n.pastK, "float32", [B, c.numKvHeads, kg, c.headDim, "P"]),
      v: lg.g.input(n.pastV, "float32", [B, c.numKvHeads, 1, "P", c.headDim]),
    };
    const r = lg.block(i, x, { past });
    lg.g.output(r.present!.k, n.presentK);
    lg.g.output(r.present!.v, n.presentV);
    x = r.out;
  }
  // The next token needs only each row's last position: [B·T, C] -> [B, C].
  const last = single
    ? lg.g.slice(x, 0, -1, 2 ** 31 - 1)
    : lg.g.reshape(lg.g.slice(lg.g.reshape(x, lg.shapeBT([c.hiddenSize])), 1, -1, 2 ** 31 - 1), lg.g.ints([-1, c.hiddenSize]));
  lg.g.output(lg.head(last).logits, "logits");
  return lg.g.encode();
}

/** Attention probabilities of every layer, `probs_i` and (adapted layers) `base_probs_i`. */
export function buildAttentionGraph(c: ModelConfig, adapter: AdapterLayout | undefined, held: HeldGraph = FLOAT_HELD): Uint8Array {
  const lg = new LlamaGraph(c, adapter, "attention", false, true, held);
  let x = lg.embed();
  for (let i = 0; i < c.numLayers; i++) {
    const r = lg.block(i, x, { capture: true });
    lg.g.output(r.probs!.tuned, `probs_${i}`);
    if (r.probs!.base) lg.g.output(r.probs!.base, `base_probs_${i}`);
    if (r.imageAttn) lg.g.output(r.imageAttn, imageAttnName(i));
    if (i < c.numLayers - 1) x = r.out;
  }
  return lg.g.encode();
}
