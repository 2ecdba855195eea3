/**
 * ModelRuntime on onnxruntime-node. Five graphs, each generated from the model and adapter
 * configs on first use and compiled once per adapter layout (Excitor or LoRA): `eval` (log p
 * of targets, for scoring and validation), `rows` (every next-token distribution), `decode`
 * (KV cache, last logits), `attention` (probabilities of every layer) and `train` (loss and
 * gradients of the adapter or, in full training, of every weight: train-graph.ts).
 *
 * Frozen weights are graph inputs, not initializers: onnxruntime-node wraps a JS typed
 * array without copying, so one float32 copy of the model in host memory feeds all the
 * sessions (initializers would be copied into each), and nothing is written to disk.
 * The adapter's tensors are inputs too, so each step feeds the optimizer's current values.
 * Full training keeps a second copy (the trained weights) next to the untouched base, and
 * the same graphs run on either: `useAdapter` picks which set is fed.
 */
import type * as OrtModule from "onnxruntime-node";
import type { OrtInfo } from "../backends/onnxruntime";
import { ExcitorInputError } from "../errors";
import type { Adapter } from "../adapters";
import type { F32Tensor } from "../formats/safetensors";
import type { ModelConfig } from "../model/config";
import { causalMask } from "../model/mask";
import { ropeTables } from "../model/rope";
import type { WeightSource } from "../model/weights";
import { checkRows, weightedTokens, type AttentionProbs, type DecodeSession, type ImageFeatures, type LossAndGrads, type ModelRuntime, type TrainBatch } from "../runtime";
import { loraScaling } from "../lora/config";
import { type AdapterLayout, INPUTS, imageAttnName, buildAttentionGraph, buildDecodeGraph, buildEvalGraph, buildRowsGraph, cacheNames, layoutKey } from "./llama-graph";
import { buildTrainGraph, gradOutput } from "./train-graph";

type Tensor = OrtModule.Tensor;
type Session = OrtModule.InferenceSession;
type GraphKind = "eval" | "rows" | "decode" | "decode_rows" | "attention" | "train";

export class OrtRuntime implements ModelRuntime {
  private adapterFeeds = new Map<string, Tensor>();
  private layout?: AdapterLayout;
  /** Full training: the trained copy of every weight (the base in `weights` stays untouched). */
  private trained?: Map<string, Tensor>;
  private readonly sessions = new Map<string, Promise<Session>>();

  private constructor(
    readonly config: ModelConfig,
    private readonly info: OrtInfo,
    /** Frozen weights by checkpoint name, over host memory. */
    private readonly weights: Map<string, Tensor>,
    private readonly tiedHead: boolean,
  ) {}

  static load(config: ModelConfig, files: WeightSource, info: OrtInfo): OrtRuntime {
    const c = config;
    const cq = c.numHeads * c.headDim;
    const ckv = c.numKvHeads * c.headDim;
    const weights = new Map<string, Tensor>();
    const read = (name: string, shape: number[]) => {
      const t = files.read(name, shape);
      weights.set(name, new info.ort.Tensor("float32", t.data, t.shape));
    };
    const linear = (name: string, out: number, inp: number, bias: boolean) => {
      read(`${name}.weight`, [out, inp]);
      if (bias) read(`${name}.bias`, [out]);
    };
    read("model.embed_tokens.weight", [c.vocabSize, c.hiddenSize]);
    for (let i = 0; i < c.numLayers; i++) {
      const p = `model.layers.${i}`;
      read(`${p}.input_layernorm.weight`, [c.hiddenSize]);
      linear(`${p}.self_attn.q_proj`, cq, c.hiddenSize, c.qkvBias);
      linear(`${p}.self_attn.k_proj`, ckv, c.hiddenSize, c.qkvBias);
      linear(`${p}.self_attn.v_proj`, ckv, c.hiddenSize, c.qkvBias);
      linear(`${p}.self_attn.o_proj`, c.hiddenSize, cq, c.oBias);
      read(`${p}.post_attention_layernorm.weight`, [c.hiddenSize]);
      linear(`${p}.mlp.gate_proj`, c.intermediateSize, c.hiddenSize, false);
      linear(`${p}.mlp.up_proj`, c.intermediateSize, c.hiddenSize, false);
      linear(`${p}.mlp.down_proj`, c.hiddenSize, c.intermediateSize, false);
    }
    read("model.norm.weight", [c.hiddenSize]);
    const tied = c.tieWordEmbeddings || !files.has("lm_head.weight");
    if (!tied) read("lm_head.weight", [c.vocabSize, c.hiddenSize]);
    return new OrtRuntime(config, info, weights, tied);
  }

  readonly keepsBaseInFullTraining = true;

  get backend(): string {
    return `onnxruntime-${this.info.provider}`;
  }
  get backendNote(): string {
    return this.info.note;
  }

  setAdapter(adapter: Adapter | null): void {
    this.adapterFeeds = new Map();
    this.layout =
      !adapter ? undefined
      : adapter.method === "excitor" ? { method: "excitor", layers: adapter.config.layers, numPrompts: adapter.config.numPrompts, rank: adapter.config.rank, vision: adapter.config.vision && { numTokens: adapter.config.vision.numTokens, hidden: adapter.config.vision.hiddenSize } }
      : { method: "lora", layers: adapter.config.layers, targets: adapter.config.targets, r: adapter.config.r, scaling: loraScaling(adapter.config) };
    for (const [name, t] of Object.entries(adapter?.namedTensors() ?? {})) this.adapterFeeds.set(name, new this.info.ort.Tensor("float32", t.data, t.shape));
  }

  /**
   * The compiled graph of this kind for the current adapter layout (or the base model; full
   * training runs the base graphs on the trained weights). `soft`: the train graph for soft targets.
   */
  private session(kind: GraphKind, useAdapter: boolean, soft = false, image = false): Promise<Session> {
    const layout = this.layoutFor(useAdapter, image);
    const full = kind === "train" && this.trained;
    const key = `${kind}:${full ? "full" : layoutKey(layout)}${kind === "train" && soft ? ":soft" : ""}`;
    let s = this.sessions.get(key);
    if (!s) {
      const c = this.config;
      const bytes =
        kind === "eval" ? buildEvalGraph(c, layout, this.tiedHead)
        : kind === "rows" ? buildRowsGraph(c, layout, this.tiedHead)
        : kind === "decode" ? buildDecodeGraph(c, layout, this.tiedHead)
        : kind === "decode_rows" ? buildDecodeGraph(c, layout, this.tiedHead, "many")
        : kind === "attention" ? buildAttentionGraph(c, layout)
        : buildTrainGraph(c, full ? { method: "full" } : layout!, this.tiedHead, soft);
      s = this.info.ort.InferenceSession.create(bytes, this.info.sessionOptions);
      s.catch(() => undefined); // compiled ahead (prepareTraining, startDecode): the error surfaces where it is awaited
      this.sessions.set(key, s);
    }
    return s;
  }

  /** The adapter layout a call computes with: none for the base model; a multimodal adapter's image inputs only when the call has an image. */
  private layoutFor(useAdapter: boolean, image: boolean): AdapterLayout | undefined {
    const layout = useAdapter && !this.trained ? this.layout : undefined;
    if (layout?.method === "excitor" && layout.vision && !image) return { ...layout, vision: undefined };
    return layout;
  }

  /** Whether a call with `image` computes with it (a multimodal adapter in use); the base model and text adapters cannot see images. */
  private usesImage(useAdapter: boolean, image: ImageFeatures | undefined): image is ImageFeatures {
    const layout = this.layoutFor(useAdapter, true);
    return !!image && layout?.method === "excitor" && layout.vision !== undefined;
  }

  /** Features and the additive mask that hides the image tokens of rows without a picture. */
  private imageFeeds(image: ImageFeatures, rows: number): Record<string, Tensor> {
    const { Tensor } = this.info.ort;
    const v = (this.layout as { vision?: { numTokens: number; hidden: number } }).vision!;
    if (image.rows !== rows || image.numTokens !== v.numTokens || image.hidden !== v.hidden)
      throw new Error(`image features are [${image.rows}, ${image.numTokens}, ${image.hidden}], the call needs [${rows}, ${v.numTokens}, ${v.hidden}]`);
    const mask = new Float32Array(rows * v.numTokens);
    for (let r = 0; r < rows; r++) if (!image.present[r]) mask.fill(-1e9, r * v.numTokens, (r + 1) * v.numTokens);
    return {
      [INPUTS.imageFeatures]: new Tensor("float32", image.data, [rows, v.numTokens, v.hidden]),
      [INPUTS.imageMask]: new Tensor("float32", mask, [rows, 1, v.numTokens]),
    };
  }

  /**
   * Runs a session: each input is taken from `extra`, the weights or the adapter, by name. The
   * weights are the base model's, or with `useAdapter` during full training the trained copy.
   */
  private async run(session: Session, useAdapter: boolean, extra: Record<string, Tensor>, outputs?: string[]): Promise<Record<string, Tensor>> {
    const feeds: Record<string, Tensor> = {};
    const weights = useAdapter && this.trained ? this.trained : this.weights;
    for (const name of session.inputNames) {
      const t = extra[name] ?? weights.get(name) ?? this.adapterFeeds.get(name);
      if (!t) throw new Error(`onnxruntime: no value for graph input ${name}`);
      feeds[name] = t;
    }
    return outputs ? session.run(feeds, outputs) : session.run(feeds);
  }

  /** onnxruntime's Gather fails with a bare bounds error; a tokenizer larger than the model deserves a clear one. */
  private checkIds(ids: Int32Array): Int32Array {
    const V = this.config.vocabSize;
    const bad = ids.findIndex((id) => id < 0 || id >= V);
    if (bad >= 0) throw new ExcitorInputError(`token id ${ids[bad]} is outside the model's vocabulary (vocab_size ${V} in config.json)`);
    return ids;
  }

  /** ids, RoPE tables and mask for T new tokens after `past` cached ones. */
  private positionFeeds(ids: Int32Array, B: number, T: number, past: number): Record<string, Tensor> {
    const { Tensor } = this.info.ort;
    this.checkIds(ids);
    const { cos, sin } = ropeTables(this.config, past, T);
    const d = this.config.headDim;
    return {
      [INPUTS.ids]: new Tensor("int32", ids, [B, T]),
      [INPUTS.cos]: new Tensor("float32", cos, [T, d]),
      [INPUTS.sin]: new Tensor("float32", sin, [T, d]),
      [INPUTS.mask]: new Tensor("float32", causalMask(T, past, this.config.slidingWindow), [T, past + T]),
    };
  }

  /** log p(targets[b, t] | ids[b, ≤t]) for every position, [B·T]. */
  private async pickedLogprobs(ids: Int32Array, targets: Int32Array, B: number, T: number, useAdapter: boolean, image?: ImageFeatures): Promise<Float32Array> {
    const withImage = this.usesImage(useAdapter, image);
    const s = await this.session("eval", useAdapter, false, withImage);
    const feeds = { ...this.positionFeeds(ids, B, T, 0), ...(withImage ? this.imageFeeds(image, B) : {}), targets: new this.info.ort.Tensor("int32", this.checkIds(targets), [B, T]) };
    const out = await this.run(s, useAdapter, feeds, ["logprob"]);
    return out.logprob.data as Float32Array;
  }

  async tokenLogprobs(ids: number[], useAdapter: boolean, image?: ImageFeatures): Promise<Float32Array> {
    const M = ids.length;
    if (M < 2) return new Float32Array(0);
    // Causal: the logits at positions 0..M-2 do not depend on the last token, so it is not fed.
    return this.pickedLogprobs(Int32Array.from(ids.slice(0, -1)), Int32Array.from(ids.slice(1)), 1, M - 1, useAdapter, image);
  }

  async logprobRows(ids: Int32Array, batch: number, seqLen: number, useAdapter: boolean, image?: ImageFeatures): Promise<Float32Array> {
    const withImage = this.usesImage(useAdapter, image);
    const s = await this.session("rows", useAdapter, false, withImage);
    const out = await this.run(s, useAdapter, { ...this.positionFeeds(ids, batch, seqLen, 0), ...(withImage ? this.imageFeeds(image, batch) : {}) }, ["logprobs"]);
    return out.logprobs.data as Float32Array;
  }

  async evalLoss(batch: TrainBatch, useAdapter: boolean): Promise<{ lossSum: number; tokens: number }> {
    if (batch.soft) {
      // Σ weights·(−Σ_v soft·log p), from every row's distribution.
      const V = this.config.vocabSize;
      const rows = await this.logprobRows(batch.ids, batch.batch, batch.seqLen, useAdapter, batch.image);
      let lossSum = 0;
      for (let i = 0; i < batch.weights.length; i++) {
        if (batch.weights[i] === 0) continue;
        let ce = 0;
        for (let v = 0; v < V; v++) ce -= batch.soft[i * V + v] * rows[i * V + v];
        lossSum += batch.weights[i] * ce;
      }
      return { lossSum, tokens: weightedTokens(batch) };
    }
    const lp = await this.pickedLogprobs(batch.ids, batch.targets, batch.batch, batch.seqLen, useAdapter, batch.image);
    let lossSum = 0;
    for (let i = 0; i < lp.length; i++) lossSum -= batch.weights[i] * lp[i];
    return { lossSum, tokens: weightedTokens(batch) };
  }

  startDecode(useAdapter: boolean, rows = 1, image?: ImageFeatures): DecodeSession {
    const rt = this;
    const c = this.config;
    // Only an Excitor changes the cache's layout (K' per query head).
    const layout = useAdapter && !this.trained ? this.layout : undefined;
    const withImage = this.usesImage(useAdapter, image);
    const imageFeeds = withImage ? this.imageFeeds(image, rows) : {};
    const adapted = new Set(layout?.method === "excitor" ? layout.layers : []);
    const { Tensor } = this.info.ort;
    const empty = (dims: number[]) => new Tensor("float32", new Float32Array(0), dims);
    // K' per query head in adapted layers, transposed ([B, Hkv, G, d, S]); base keys ([B, Hkv, 1, d, S])
    // and all values ([B, Hkv, 1, S, d]) per kv head.
    let cache = new Map<string, Tensor>();
    for (let i = 0; i < c.numLayers; i++) {
      const n = cacheNames(i);
      cache.set(n.pastK, empty([rows, c.numKvHeads, adapted.has(i) ? c.numHeads / c.numKvHeads : 1, c.headDim, 0]));
      cache.set(n.pastV, empty([rows, c.numKvHeads, 1, 0, c.headDim]));
    }
    const session = this.session(rows === 1 ? "decode" : "decode_rows", useAdapter, false, withImage);
    let length = 0;
    return {
      get length() {
        return length;
      },
      async feed(ids: number[]): Promise<Float32Array> {
        const s = await session;
        const T = checkRows(ids, rows);
        const out = await rt.run(s, useAdapter, { ...rt.positionFeeds(Int32Array.from(ids), rows, T, length), ...imageFeeds, ...Object.fromEntries(cache) });
        const next = new Map<string, Tensor>();
        for (let i = 0; i < c.numLayers; i++) {
          const n = cacheNames(i);
          next.set(n.pastK, out[n.presentK]);
          next.set(n.pastV, out[n.presentV]);
        }
        cache = next;
        length += T;
        return out.logits.data as Float32Array;
      },
      dispose() {
        cache.clear();
      },
    };
  }

  async attentionProbs(ids: number[], useAdapter: boolean, image?: ImageFeatures): Promise<AttentionProbs> {
    const withImage = this.usesImage(useAdapter, image);
    const s = await this.session("attention", useAdapter, false, withImage);
    const out = await this.run(s, useAdapter, { ...this.positionFeeds(Int32Array.from(ids), 1, ids.length, 0), ...(withImage ? this.imageFeeds(image, 1) : {}) });
    const tuned: Float32Array[] = [];
    const base: Float32Array[] = [];
    const imageAttn: (Float32Array | undefined)[] = [];
    for (let i = 0; i < this.config.numLayers; i++) {
      tuned.push(out[`probs_${i}`].data as Float32Array); // [1, Hkv, G, M, M] = [H, M, M]
      base.push((out[`base_probs_${i}`] ?? out[`probs_${i}`]).data as Float32Array);
      imageAttn.push(out[imageAttnName(i)]?.data as Float32Array | undefined); // [1, M, Nv]
    }
    return withImage ? { base, tuned, image: imageAttn } : { base, tuned };
  }

  prepareTraining(adapter: Adapter): void {
    this.setAdapter(adapter);
    void this.session("train", true); // compile while the caller prepares its data
  }

  /**
   * Full training: a copy of every weight becomes the trained set (the base stays as loaded, for
   * `useAdapter: false`). The returned arrays ARE that copy, fed without copying: the caller's
   * in-place updates take effect at its next setBaseWeights (or run).
   */
  beginFullTraining(): Map<string, F32Tensor> {
    if (this.trained) throw new Error("full training is already enabled");
    this.setAdapter(null);
    this.trained = new Map();
    const out = new Map<string, F32Tensor>();
    for (const [name, t] of this.weights) {
      const copy = { shape: t.dims.slice(), data: (t.data as Float32Array).slice() };
      this.trained.set(name, new this.info.ort.Tensor("float32", copy.data, copy.shape));
      out.set(name, copy);
    }
    void this.session("train", true);
    return out;
  }

  setBaseWeights(values: Map<string, Float32Array>): void {
    if (!this.trained) throw new Error("setBaseWeights needs beginFullTraining first");
    for (const [name, t] of this.trained) {
      const data = values.get(name);
      if (!data) throw new Error(`setBaseWeights: no value for ${name}`);
      if (data.length !== t.size) throw new Error(`setBaseWeights: ${name} has ${data.length} values, expected ${t.size}`);
      if (data !== t.data) this.trained.set(name, new this.info.ort.Tensor("float32", data, t.dims));
    }
  }

  async lossAndGrads(batch: TrainBatch, scale: number): Promise<LossAndGrads> {
    if (!this.layout && !this.trained) throw new Error("lossAndGrads needs an adapter (prepareTraining) or beginFullTraining");
    const { batch: B, seqLen: T } = batch;
    const V = this.config.vocabSize;
    const { Tensor } = this.info.ort;
    const names = [...(this.trained ?? this.adapterFeeds).keys()];
    const image = batch.image;
    const withImage = this.usesImage(true, image);
    const s = await this.session("train", true, !!batch.soft, withImage);
    // A batch without pictures leaves a multimodal adapter's image projections untouched: zero gradients.
    const computed = names.filter((n) => s.outputNames.includes(gradOutput(n)));
    const rows: number[] = [];
    batch.weights.forEach((w, i) => w !== 0 && rows.push(i));
    const N = rows.length;
    let target: Record<string, Tensor>;
    if (batch.soft) {
      const soft = new Float32Array(N * V); // the loss rows' distributions  [N, V]
      rows.forEach((r, j) => soft.set(batch.soft!.subarray(r * V, (r + 1) * V), j * V));
      target = { soft: new Tensor("float32", soft, [N, V]) };
    } else {
      target = { targets: new Tensor("int32", this.checkIds(Int32Array.from(rows, (i) => batch.targets[i])), [N]) };
    }
    const out = await this.run(
      s,
      true,
      {
        ...this.positionFeeds(batch.ids, B, T, 0),
        ...(withImage ? this.imageFeeds(image, B) : {}),
        ...target,
        loss_rows: new Tensor("int32", Int32Array.from(rows), [N]),
        weights: new Tensor("float32", Float32Array.from(rows, (i) => batch.weights[i]), [N]),
        scale: new Tensor("float32", Float32Array.of(scale), []),
      },
      ["loss_sum", ...computed.map(gradOutput)],
    );
    const grads = new Map(names.map((n) => [n, (out[gradOutput(n)]?.data as Float32Array | undefined) ?? new Float32Array(this.adapterFeeds.get(n)!.size)]));
    return { lossSum: (out.loss_sum.data as Float32Array)[0], tokens: weightedTokens(batch), grads };
  }

  dispose(): void {
    for (const s of this.sessions.values()) void s.then((x) => x.release()).catch(() => undefined);
    this.sessions.clear();
    this.weights.clear();
    this.trained?.clear();
    this.adapterFeeds.clear();
  }
}
