/**
 * The LLaMA forward pass with Excitor attention, in tfjs. Read it next to
 * ../shared/docs/excitor-method.md ("Forward pass of one adapted attention layer"):
 * each step there is one line here. Shapes: B batch, T new tokens, S = cached + T keys,
 * C hidden, H query heads, Hkv kv heads, d head dim, Cq = H·d, K prompts, r rank, V vocab.
 */
import type * as tfc from "@tensorflow/tfjs";
import { tf } from "../backends/tfjs";
import type { LoraModule } from "../lora/config";
import type { ModelConfig } from "../model/config";
import { causalMask as causalMaskData } from "../model/mask";
import { ropeTables } from "../model/rope";
import type { WeightSource } from "../model/weights";

type T1 = tfc.Tensor1D;
type T2 = tfc.Tensor2D;
type T3 = tfc.Tensor3D;
type T4 = tfc.Tensor4D;

/**
 * A frozen linear layer. `wt` is W pre-transposed to [in, out]: the wasm backend's matmul
 * with a transposed operand is ~10x slower than a plain one. `w` ([out, in], as stored)
 * exists only while training, for a custom gradient dx = dy·W that avoids the same slow path.
 */
export interface FrozenLinear {
  wt: T2; // [in, out]
  w?: T2; // [out, in]
  b?: T1; // [out]
  /** Full-parameter training: wt (and b) are variables that receive gradients. */
  trainable?: boolean;
}

/** A base weight made trainable: its variable, and whether it is stored transposed from the HF layout. */
export interface TrainableWeight {
  name: string;
  variable: tfc.Variable;
  transposed: boolean;
}

interface Block {
  attnNorm: T1; // [C]
  q: FrozenLinear; // C -> Cq
  k: FrozenLinear; // C -> Hkv·d
  v: FrozenLinear; // C -> Hkv·d
  o: FrozenLinear; // Cq -> C
  mlpNorm: T1; // [C]
  gate: FrozenLinear; // C -> I
  up: FrozenLinear; // C -> I
  down: FrozenLinear; // I -> C
}

/** One adapted layer's tensors on the backend (variables while training). */
export interface ExcitorTensors {
  prompts: T2; // P      [K, Cq]
  down: T2; //    Wdown  [r, C]
  up: T2; //      Wup    [Cq, r]
  gate: T1; //    g      [H]
}

/** A multimodal adapter's image inputs for one forward (spec § Multimodal). */
export interface ImageInputs {
  key: T2; //   Wvk  [Cq, Cv] (variables while training)
  value: T2; // Wvv  [Cq, Cv]
  feats: T3; // F    [B, Nv, Cv]
  mask: T3; //  0, or −1e9 where a row has no image  [B, 1, Nv]
}

/** One LoRA'd linear's tensors on the backend (variables): y += scaling·(x·Aᵀ)·Bᵀ. */
export interface LoraTensors {
  A: T2; // [r, in]
  B: T2; // [out, r]
  scaling: number;
}

/** A layer's LoRA'd linears by module name. */
export type LoraLayer = Partial<Record<LoraModule, LoraTensors>>;

/** Keys (K', after RoPE, one per query head) and values of the tokens seen so far. */
export interface LayerCache {
  k: T4; // [B, H, S, d]
  v: T4; // [B, H, S, d]
}

export interface ForwardOptions {
  /** Adapted layers by index; a layer not in the map is the base layer, untouched. */
  excitor?: Map<number, ExcitorTensors>;
  /** LoRA'd layers by index; linears not listed are the base ones. */
  lora?: Map<number, LoraLayer>;
  /** Per-layer cache, extended in place (old tensors disposed); its length sets the positions. */
  cache?: (LayerCache | undefined)[];
  /**
   * Collect each layer's attention probabilities [B, H, T, S]: `tuned` as computed, `base`
   * from the base scores alone (g = 0) on the same layer input; equal in base layers.
   */
  capture?: { tuned: T4[]; base: T4[]; image?: T3[] };
  /** The picture of each row, for a multimodal Excitor: its features join every adapted layer's prompts. */
  image?: ImageInputs;
  /** Return logits for the last position only ([B, 1, V]). */
  lastOnly?: boolean;
}

export class TfjsLlama {
  private fullTraining = false;

  private constructor(
    readonly config: ModelConfig,
    private embed: T2, // [V, C]
    private readonly blocks: Block[],
    private finalNorm: T1, // [C]
    private lmHead: FrozenLinear, // C -> V
    private readonly tiedHead: boolean,
  ) {}

  static load(config: ModelConfig, files: WeightSource): TfjsLlama {
    const c = config;
    const cq = c.numHeads * c.headDim;
    const ckv = c.numKvHeads * c.headDim;
    const tensor = (name: string, shape: number[]): tfc.Tensor => {
      const t = files.read(name, shape);
      return tf.tensor(t.data, t.shape, "float32");
    };
    const linear = (name: string, out: number, inp: number, bias: boolean): FrozenLinear => {
      const w = tensor(`${name}.weight`, [out, inp]) as T2;
      const wt = tf.transpose(w) as T2;
      w.dispose();
      return { wt, b: bias ? (tensor(`${name}.bias`, [out]) as T1) : undefined };
    };
    const blocks: Block[] = [];
    for (let i = 0; i < c.numLayers; i++) {
      const p = `model.layers.${i}`;
      blocks.push({
        attnNorm: tensor(`${p}.input_layernorm.weight`, [c.hiddenSize]) as T1,
        q: linear(`${p}.self_attn.q_proj`, cq, c.hiddenSize, c.qkvBias),
        k: linear(`${p}.self_attn.k_proj`, ckv, c.hiddenSize, c.qkvBias),
        v: linear(`${p}.self_attn.v_proj`, ckv, c.hiddenSize, c.qkvBias),
        o: linear(`${p}.self_attn.o_proj`, c.hiddenSize, cq, c.oBias),
        mlpNorm: tensor(`${p}.post_attention_layernorm.weight`, [c.hiddenSize]) as T1,
        gate: linear(`${p}.mlp.gate_proj`, c.intermediateSize, c.hiddenSize, false),
        up: linear(`${p}.mlp.up_proj`, c.intermediateSize, c.hiddenSize, false),
        down: linear(`${p}.mlp.down_proj`, c.hiddenSize, c.intermediateSize, false),
      });
    }
    const embed = tensor("model.embed_tokens.weight", [c.vocabSize, c.hiddenSize]) as T2;
    const tied = c.tieWordEmbeddings || !files.has("lm_head.weight");
    const lmHead = tied ? { wt: tf.transpose(embed) as T2 } : linear("lm_head", c.vocabSize, c.hiddenSize, false);
    const finalNorm = tensor("model.norm.weight", [c.hiddenSize]) as T1;
    return new TfjsLlama(config, embed, blocks, finalNorm, lmHead, tied);
  }

  /**
   * Full-parameter training (pretraining a base model): every weight becomes a variable, by its
   * Hugging Face name. Linear weights stay pre-transposed ([in, out]); `transposed` says so.
   */
  enableFullTraining(): TrainableWeight[] {
    if (this.fullTraining) throw new Error("full training is already enabled");
    this.fullTraining = true;
    const out: TrainableWeight[] = [];
    const v = <T extends tfc.Tensor>(t: T, name: string, transposed = false): T => {
      const variable = tf.variable(t, true);
      t.dispose();
      out.push({ name, variable, transposed });
      return variable as unknown as T;
    };
    const lin = (l: FrozenLinear, name: string) => {
      l.wt = v(l.wt, `${name}.weight`, true);
      if (l.b) l.b = v(l.b, `${name}.bias`);
      l.w?.dispose();
      l.w = undefined;
      l.trainable = true;
    };
    this.embed = v(this.embed, "model.embed_tokens.weight");
    this.blocks.forEach((b, i) => {
      const p = `model.layers.${i}`;
      b.attnNorm = v(b.attnNorm, `${p}.input_layernorm.weight`);
      b.mlpNorm = v(b.mlpNorm, `${p}.post_attention_layernorm.weight`);
      for (const [key, name] of [["q", "self_attn.q_proj"], ["k", "self_attn.k_proj"], ["v", "self_attn.v_proj"], ["o", "self_attn.o_proj"], ["gate", "mlp.gate_proj"], ["up", "mlp.up_proj"], ["down", "mlp.down_proj"]] as const)
        lin(b[key], `${p}.${name}`);
    });
    this.finalNorm = v(this.finalNorm, "model.norm.weight");
    if (this.tiedHead) this.lmHead.wt.dispose(); // rebuilt from the embedding variable in each forward
    else lin(this.lmHead, "lm_head");
    return out;
  }

  /**
   * Makes backward passes fast from layer `fromLayer` up: keeps W next to W^T for every
   * frozen linear that gradients flow through (layers below the lowest adapter need none).
   */
  prepareBackward(fromLayer: number): void {
    const add = (l: FrozenLinear) => {
      if (!l.w) l.w = tf.transpose(l.wt) as T2;
    };
    for (const b of this.blocks.slice(fromLayer)) for (const l of [b.q, b.k, b.v, b.o, b.gate, b.up, b.down]) add(l);
    add(this.lmHead);
  }

  /** ids [B, T] -> logits [B, T, V] (or [B, 1, V] with lastOnly). Call inside tf.tidy. */
  forward(ids: tfc.Tensor2D, opts: ForwardOptions = {}): tfc.Tensor3D {
    const c = this.config;
    const [B, T] = ids.shape;
    const past = opts.cache?.[0]?.k.shape[2] ?? 0;
    const { cos, sin } = ropeTables(c, past, T);
    const rope = { cos: tf.tensor4d(cos, [1, T, 1, c.headDim]), sin: tf.tensor4d(sin, [1, T, 1, c.headDim]) };
    const mask = causalMask(T, past, c.slidingWindow); // [T, S]

    // The image's keys and values F Wv^T, shared by every adapted layer.  [B, Nv, Cq]
    const im = opts.image;
    const imageKv = im && opts.excitor ? { k: imageProjection(im.feats, im.key), v: imageProjection(im.feats, im.value), mask: im.mask } : undefined;
    let x = tf.reshape(embedLookup(this.embed, tf.reshape(ids, [B * T]) as T1, this.fullTraining), [B, T, c.hiddenSize]) as tfc.Tensor3D; // [B, T, C]
    this.blocks.forEach((blk, i) => {
      const lora = opts.lora?.get(i);
      const h = rmsNorm(x, blk.attnNorm, c.rmsNormEps); // [B, T, C]
      const attn = this.attention(blk, h, i, rope, mask, opts, imageKv); // [B, T, C]
      x = tf.add(x, attn) as tfc.Tensor3D;
      const h2 = tf.reshape(rmsNorm(x, blk.mlpNorm, c.rmsNormEps), [B * T, c.hiddenSize]); // [B·T, C]
      const g = linear(h2 as T2, blk.gate, lora?.gate_proj); // [B·T, I]
      const act = tf.mul(tf.sigmoid(g), g); // silu
      const mlp = linear(tf.mul(act, linear(h2 as T2, blk.up, lora?.up_proj)) as T2, blk.down, lora?.down_proj); // [B·T, C]
      x = tf.add(x, tf.reshape(mlp, [B, T, c.hiddenSize])) as tfc.Tensor3D;
    });
    let hLast = rmsNorm(x, this.finalNorm, c.rmsNormEps); // [B, T, C]
    let rows = T;
    if (opts.lastOnly) {
      hLast = tf.slice(hLast, [0, T - 1, 0], [B, 1, c.hiddenSize]) as tfc.Tensor3D;
      rows = 1;
    }
    const head = this.fullTraining && this.tiedHead ? { wt: tf.transpose(this.embed) as T2, trainable: true } : this.lmHead;
    const logits = linear(tf.reshape(hLast, [B * rows, c.hiddenSize]) as T2, head); // [B·T, V]
    return tf.reshape(logits, [B, rows, c.vocabSize]) as tfc.Tensor3D;
  }

  private attention(
    blk: Block,
    h: tfc.Tensor3D, // [B, T, C]
    layer: number,
    rope: { cos: T4; sin: T4 },
    mask: T2,
    opts: ForwardOptions,
    image?: { k: T3; v: T3; mask: T3 },
  ): tfc.Tensor3D {
    const c = this.config;
    const [B, T] = h.shape;
    const { numHeads: H, numKvHeads: Hkv, headDim: d } = c;
    const x = tf.reshape(h, [B * T, c.hiddenSize]) as T2; // [B·T, C]
    const lora = opts.lora?.get(layer);
    const q = tf.reshape(linear(x, blk.q, lora?.q_proj), [B, T, H, d]) as T4; // Q  [B, T, H, d]
    const kb = repeatKv(tf.reshape(linear(x, blk.k, lora?.k_proj), [B, T, Hkv, d]) as T4, H); // Kb per query head  [B, T, H, d]
    const v = repeatKv(tf.reshape(linear(x, blk.v, lora?.v_proj), [B, T, Hkv, d]) as T4, H); // V per query head  [B, T, H, d]

    let k = kb;
    const ex = opts.excitor?.get(layer);
    if (ex) {
      const cq = H * d;
      const qe = tf.matMul(tf.matMul(x, tf.transpose(ex.down)), tf.transpose(ex.up)); // QE = (X Wdown^T) Wup^T  [B·T, Cq]
      let e: T4;
      if (image) {
        // Kx = Vx = [P ; F Wv^T]: A = softmax over the K prompts and the Nv image tokens.
        const K = ex.prompts.shape[0];
        const Nv = image.k.shape[1];
        const zp = tf.reshape(tf.matMul(qe, tf.transpose(ex.prompts)), [B, T, K]); // QE P^T  [B, T, K]
        const zv = tf.matMul(tf.reshape(qe, [B, T, cq]), tf.transpose(image.k, [0, 2, 1])); // QE (F Wvk^T)^T  [B, T, Nv] (explicit transpose: wasm's transposed matmul is slow)
        const a = tf.softmax(tf.concat([tf.div(zp, Math.sqrt(cq)), tf.add(tf.div(zv, Math.sqrt(cq)), image.mask)], 2)); // [B, T, K+Nv]
        const ap = tf.reshape(tf.slice(a, [0, 0, 0], [B, T, K]), [B * T, K]) as T2;
        const av = tf.slice(a, [0, 0, K], [B, T, Nv]) as T3; // [B, T, Nv]
        if (opts.capture) (opts.capture.image ??= [])[layer] = tf.keep(av);
        e = tf.reshape(tf.add(tf.reshape(tf.matMul(ap, ex.prompts), [B, T, cq]), tf.matMul(av, image.v)), [B, T, H, d]); // E = A Vx  [B, T, H, d]
      } else {
        const a = tf.softmax(tf.div(tf.matMul(qe, tf.transpose(ex.prompts)), Math.sqrt(cq))); // A = softmax_K(QE P^T / sqrt(Cq))  [B·T, K]
        e = tf.reshape(tf.matMul(a as T2, ex.prompts), [B, T, H, d]); // E = A P  [B, T, H, d]
      }
      k = tf.add(kb, tf.mul(tf.reshape(ex.gate, [1, 1, H, 1]), e)) as T4; // K'_h = Kb_kv(h) + g_h E_h  [B, T, H, d]
    }

    const qr = tf.transpose(applyRope(q, rope), [0, 2, 1, 3]) as T4; // [B, H, T, d]
    let kr = tf.transpose(applyRope(k, rope), [0, 2, 1, 3]) as T4; // [B, H, T, d]
    let vr = tf.transpose(v, [0, 2, 1, 3]) as T4; // [B, H, T, d]
    const cache = opts.cache;
    if (cache) {
      const old = cache[layer];
      if (old) {
        kr = tf.concat([old.k, kr], 2); // [B, H, S, d]
        vr = tf.concat([old.v, vr], 2);
        old.k.dispose();
        old.v.dispose();
      }
      cache[layer] = { k: tf.keep(kr), v: tf.keep(vr) };
    }
    const scores = tf.add(tf.div(tf.matMul(qr, tf.transpose(kr, [0, 1, 3, 2])), Math.sqrt(d)), mask); // S_h  [B, H, T, S]
    const probs = tf.softmax(scores) as T4; // [B, H, T, S]
    if (opts.capture) {
      opts.capture.tuned[layer] = tf.keep(probs);
      let base = ex && !cache ? this.baseProbs(qr, kb, rope, mask, d) : tf.clone(probs);
      if (lora && !cache) {
        // Without LoRA: the base Q and K on the same layer input.
        const qBase = tf.transpose(applyRope(tf.reshape(linear(x, blk.q), [B, T, H, d]) as T4, rope), [0, 2, 1, 3]) as T4;
        base = this.baseProbs(qBase, repeatKv(tf.reshape(linear(x, blk.k), [B, T, Hkv, d]) as T4, H), rope, mask, d);
      }
      opts.capture.base[layer] = tf.keep(base);
    }
    const out = tf.reshape(tf.transpose(tf.matMul(probs, vr), [0, 2, 1, 3]), [B * T, H * d]) as T2; // concat_h  [B·T, Cq]
    return tf.reshape(linear(out, blk.o, lora?.o_proj), [B, T, c.hiddenSize]) as tfc.Tensor3D;
  }

  /** softmax(RoPE(Q) RoPE(Kb)^T / sqrt(d) + mask): what the layer would attend without its adapter. */
  private baseProbs(qr: T4, kb: T4, rope: { cos: T4; sin: T4 }, mask: T2, d: number): T4 {
    const kr = tf.transpose(applyRope(kb, rope), [0, 2, 3, 1]); // [B, H, d, T]
    return tf.softmax(tf.add(tf.div(tf.matMul(qr, kr), Math.sqrt(d)), mask)) as T4; // [B, H, T, T]
  }

  dispose(): void {
    const lin = (l: FrozenLinear) => [l.wt, l.w, l.b];
    const all: (tfc.Tensor | undefined)[] = [this.embed, this.finalNorm, ...lin(this.lmHead)];
    for (const b of this.blocks) all.push(b.attnNorm, b.mlpNorm, ...[b.q, b.k, b.v, b.o, b.gate, b.up, b.down].flatMap(lin));
    for (const t of new Set(all)) t?.dispose();
  }
}

/** F [B, Nv, Cv] -> F W^T [B, Nv, Cq]. */
function imageProjection(feats: T3, w: T2): T3 {
  const [B, Nv, Cv] = feats.shape;
  return tf.reshape(tf.matMul(tf.reshape(feats, [B * Nv, Cv]), tf.transpose(w)), [B, Nv, w.shape[0]]); // explicit transpose: wasm's transposed matmul is slow
}

/** x [N, in] -> [N, out] (+ LoRA's scaling·(x·Aᵀ)·Bᵀ); see FrozenLinear for why the gradient is custom. */
function linear(x: T2, l: FrozenLinear, lora?: LoraTensors): T2 {
  const y = frozenLinear(x, l);
  if (!lora) return y;
  const u = tf.matMul(x, lora.A, false, true); // x·Aᵀ  [N, r]
  return tf.add(y, tf.mul(tf.matMul(u, lora.B, false, true), lora.scaling)) as T2; // + s·u·Bᵀ  [N, out]
}

function frozenLinear(x: T2, l: FrozenLinear): T2 {
  let y: T2;
  if (l.trainable) {
    // Both gradients as plain matmuls of explicit transposes (see FrozenLinear).
    // Inputs reach gradFunc through save(): tensors closed over are disposed by then.
    const f = tf.customGrad(((xi: T2, wt: T2, save: (ts: tfc.Tensor[]) => void) => {
      save([xi, wt]);
      return {
        value: tf.matMul(xi, wt),
        gradFunc: (dy: T2, [x, w]: T2[]) => [tf.matMul(dy, tf.transpose(w)), tf.matMul(tf.transpose(x), dy)], // dx [N, in], dW^T [in, out]
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    y = f(x, l.wt) as T2;
  } else if (l.w) {
    const w = l.w;
    const f = tf.customGrad(((xi: T2) => ({
      value: tf.matMul(xi, l.wt),
      gradFunc: (dy: T2) => tf.matMul(dy, w), // dx = dy W   [N, in]
    })) as unknown as Parameters<typeof tf.customGrad>[0]);
    y = f(x) as T2;
  } else {
    y = tf.matMul(x, l.wt);
  }
  return l.b ? (tf.add(y, l.b) as T2) : y;
}

/**
 * Embedding rows for ids [N] -> [N, C]. gather has no gradient on the wasm backend, so when the
 * table trains its gradient is written as oneHot(ids)^T · dy.
 */
function embedLookup(table: T2, ids: T1, trainable: boolean): T2 {
  if (!trainable) return tf.gather(table, ids) as T2;
  const V = table.shape[0];
  const f = tf.customGrad(((t: T2, i: T1, save: (ts: tfc.Tensor[]) => void) => {
    save([i]);
    return {
      value: tf.gather(t, i) as T2,
      gradFunc: (dy: T2, [saved]: T1[]) => [tf.matMul(tf.transpose(tf.cast(tf.oneHot(saved, V), "float32")), dy), tf.zerosLike(saved)], // [V, C]; ids get none
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(table, ids) as T2;
}

/** RMSNorm over the last axis: x / sqrt(mean(x²) + eps) · w. */
function rmsNorm(x: tfc.Tensor3D, w: T1, eps: number): tfc.Tensor3D {
  const ms = tf.mean(tf.square(x), -1, true); // [B, T, 1]
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), w) as tfc.Tensor3D;
}

/** [B, T, Hkv, d] -> [B, T, H, d]; query head h reads kv head floor(h / (H/Hkv)). */
function repeatKv(x: T4, H: number): T4 {
  const [B, T, Hkv, d] = x.shape;
  if (Hkv === H) return x;
  // Rank-4 tile: tfjs has no tile gradient for rank 5.
  const grouped = tf.reshape(x, [B * T, Hkv, 1, d]); // [B·T, Hkv, 1, d]
  return tf.reshape(tf.tile(grouped, [1, 1, H / Hkv, 1]), [B, T, H, d]) as T4;
}

/** Rotate-half RoPE: x·cos + rotate_half(x)·sin, x [B, T, H, d]. */
function applyRope(x: T4, rope: { cos: T4; sin: T4 }): T4 {
  const [B, T, H, d] = x.shape;
  const half = d / 2;
  const x1 = tf.slice(x, [0, 0, 0, 0], [B, T, H, half]);
  const x2 = tf.slice(x, [0, 0, 0, half], [B, T, H, half]);
  const rotated = tf.concat([tf.neg(x2), x1], 3);
  return tf.add(tf.mul(x, rope.cos), tf.mul(rotated, rope.sin)) as T4;
}

/** The causal mask as a tensor [T, S]. */
function causalMask(T: number, past: number, window?: number): T2 {
  return tf.tensor2d(causalMaskData(T, past, window), [T, past + T]);
}
