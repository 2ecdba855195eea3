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
 *
 * Quantized weights (OrtLoadOptions.weights, held-weights.ts) are fed the same way, as codes,
 * scales and zero points that each use dequantizes (quant-graph.ts), so every graph still shares
 * one copy. Only decoding runs MatMulNBits over initializers: a token reads every weight, and
 * onnxruntime's prepacked int8 kernels read 4-8x fewer bytes than float32, but the session holds
 * its own prepacked copy. So a quantized model keeps one decode session (many rows, the adapter's
 * graph also serving the base model with the adapter's gates or B at zero, which is exact), and
 * it is released while training runs (and the training sessions while it decodes).
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
import { blockBytes, type WeightPrecision } from "../model/quantized";
import { checkRows, weightedTokens, type AttentionProbs, type DecodeSession, type ImageFeatures, type LossAndGrads, type ModelRuntime, type TrainBatch } from "../runtime";
import { loraScaling } from "../lora/config";
import { type AdapterLayout, type HeldGraph, INPUTS, imageAttnName, buildAttentionGraph, buildDecodeGraph, buildEvalGraph, buildRowsGraph, cacheNames, layoutKey } from "./llama-graph";
import { type HeldBytes, type HeldWeight, type QuantInfo, heldBytesOf, holdWeights, quantInfo, quantNames, ZeroPointCache } from "./held-weights";
import { nbitsNames, runsNBits } from "./quant-graph";
import { tensorName } from "../excitor/config";
import { loraTensorName } from "../lora/config";
import { buildTrainGraph, gradOutput } from "./train-graph";

type Tensor = OrtModule.Tensor;
type Session = OrtModule.InferenceSession;
type GraphKind = "eval" | "rows" | "decode" | "decode_rows" | "attention" | "train";

export interface OrtLoadOptions {
  /** How frozen matrices are held (held-weights.ts); default "stored". */
  weights?: WeightPrecision | "stored";
  /**
   * MatMulNBits' accuracy_level in the decode graphs of a quantized model: 4 (default) computes
   * with the activations quantized to int8 per block, as llama.cpp does; 1 in float32. onnxruntime
   * has no float32 kernel for 8-bit weights on the CPU: at 1 they are dequantized on every call.
   */
  accuracyLevel?: 1 | 4;
}

/** A quantized model's decode graphs run MatMulNBits over a prepacked copy of the weights: one such session is alive at a time. */
const PACKED_KINDS: GraphKind[] = ["decode", "decode_rows"];

export class OrtRuntime implements ModelRuntime {
  private adapterFeeds = new Map<string, Tensor>();
  private layout?: AdapterLayout;
  /** Full training: the trained copy of every weight (the base in `weights` stays untouched). */
  private trained?: Map<string, Tensor>;
  private readonly sessions = new Map<string, Promise<Session>>();
  /** Gates (Excitor) or B matrices (LoRA) at zero: the adapter's graph computing the base model exactly. */
  private neutralFeeds = new Map<string, Tensor>();
  private readonly held: HeldGraph;

  private constructor(
    readonly config: ModelConfig,
    private readonly info: OrtInfo,
    /** Frozen weights as graph inputs over host memory: float32 tensors by checkpoint name, quantized ones as quantNames(name). */
    private readonly weights: Map<string, Tensor>,
    private readonly tiedHead: boolean,
    /** The quantized weights (MatMulNBits initializers of the decode graphs). */
    private readonly quantized: Map<string, HeldWeight & { kind: "quantized" }>,
    private readonly bytes: HeldBytes,
    accuracyLevel: number,
  ) {
    const quant = new Map<string, QuantInfo>([...quantized].map(([n, h]) => [n, quantInfo(h.blocks)]));
    this.held = { quant };
    this.nbitsHeld = { quant, nbits: { accuracyLevel } };
  }

  private readonly nbitsHeld: HeldGraph;

  static load(config: ModelConfig, files: WeightSource, info: OrtInfo, opts: OrtLoadOptions = {}): OrtRuntime {
    const { Tensor } = info.ort;
    const weights = new Map<string, Tensor>();
    const quantized = new Map<string, HeldWeight & { kind: "quantized" }>();
    const zeroPoints = new ZeroPointCache();
    const bytes: HeldBytes = { float32: 0, q8: 0, q4: 0 };
    for (const [name, h] of holdWeights(files, config, opts.weights ?? "stored")) {
      const b = heldBytesOf([h]);
      bytes.float32 += b.float32;
      bytes.q8 += b.q8;
      bytes.q4 += b.q4;
      if (h.kind === "float32") {
        weights.set(name, new Tensor("float32", h.tensor.data, h.tensor.shape));
        continue;
      }
      // The same buffers, viewed as the 2-D inputs DequantizeLinear and Gather read.
      const q = h.blocks;
      if (q.blockSize !== 32) throw new Error(`${name}: blocks of ${q.blockSize}; the engine computes with blocks of 32`);
      const nb = Math.ceil(q.cols / q.blockSize);
      const n = quantNames(name);
      weights.set(n.codes, new Tensor("uint8", q.data, [q.rows, q.data.length / q.rows]));
      weights.set(n.scales, new Tensor("float32", q.scales, [q.rows, nb]));
      weights.set(n.zp, new Tensor("uint8", zeroPoints.get(q), [q.rows, nb]));
      quantized.set(name, h);
    }
    const tied = config.tieWordEmbeddings || !files.has("lm_head.weight");
    return new OrtRuntime(config, info, weights, tied, quantized, bytes, opts.accuracyLevel ?? 4);
  }

  /**
   * Bytes of frozen weights held in host memory, by kind (quantized: codes, scales and zero
   * points); `decodeCopy`: the quantized bytes handed to the live decode session (0 while none is
   * alive), which onnxruntime holds prepacked in 1.2-1.7x as many (measured on the 1.1B shape).
   */
  heldBytes(): HeldBytes & { decodeCopy: number } {
    const live = [...this.sessions.keys()].some((k) => k.endsWith(":nbits"));
    let decodeCopy = 0;
    if (live) for (const [, h] of this.packedWeights()) decodeCopy += blockBytes(h.blocks);
    return { ...this.bytes, decodeCopy };
  }

  /** Whether any frozen matrix is held quantized. */
  get isQuantized(): boolean {
    return this.quantized.size > 0;
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
    this.neutralFeeds = new Map();
    const l = this.layout;
    const zeros = (name: string) => {
      const t = this.adapterFeeds.get(name);
      if (t) this.neutralFeeds.set(name, new this.info.ort.Tensor("float32", new Float32Array(t.size), t.dims));
    };
    if (l?.method === "excitor") l.layers.forEach((i) => zeros(tensorName(i, "gate")));
    if (l?.method === "lora") for (const i of l.layers) for (const m of l.targets) zeros(loraTensorName(i, m, "B"));
  }

  /**
   * The compiled graph of this kind for the current adapter layout (or the base model; full
   * training runs the base graphs on the trained weights). `soft`: the train graph for soft targets.
   */
  private session(kind: GraphKind, useAdapter: boolean, soft = false, image = false): Promise<Session> {
    const packed = this.isQuantized && PACKED_KINDS.includes(kind);
    // A quantized model decodes through one graph (many rows, the adapter's layout with neutral
    // feeds for the base model: packedLayout), so one prepacked copy serves every decode.
    if (packed) kind = "decode_rows";
    const layout = packed ? this.packedLayout(image) : this.layoutFor(useAdapter, image);
    const full = kind === "train" && this.trained;
    const key = `${kind}:${full ? "full" : layoutKey(layout)}${kind === "train" && soft ? ":soft" : ""}${packed ? ":nbits" : ""}`;
    let s = this.sessions.get(key);
    if (!s) {
      // What a quantized model's phases hold apart: the decode session's prepacked weights, and the
      // training sessions' activations (the largest buffers a session keeps in its arena).
      if (this.isQuantized) this.releaseWhere((k) => (packed ? k.startsWith("train:") || k.endsWith(":nbits") : kind === "train" && k.endsWith(":nbits")));
      const c = this.config;
      const held = packed ? this.nbitsHeld : this.held;
      const bytes =
        kind === "eval" ? buildEvalGraph(c, layout, this.tiedHead, held)
        : kind === "rows" ? buildRowsGraph(c, layout, this.tiedHead, held)
        : kind === "decode" ? buildDecodeGraph(c, layout, this.tiedHead, "one", held)
        : kind === "decode_rows" ? buildDecodeGraph(c, layout, this.tiedHead, "many", held)
        : kind === "attention" ? buildAttentionGraph(c, layout, held)
        : buildTrainGraph(c, full ? { method: "full" } : layout!, this.tiedHead, soft, held);
      s = this.info.ort.InferenceSession.create(bytes, packed ? { ...this.info.sessionOptions, externalData: this.nbitsBuffers() } : this.info.sessionOptions);
      s.catch(() => undefined); // compiled ahead (prepareTraining, startDecode): the error surfaces where it is awaited
      this.sessions.set(key, s);
    }
    return s;
  }

  /** The layout of a quantized model's decode graph: the adapter's whether or not a call uses it. */
  private packedLayout(image: boolean): AdapterLayout | undefined {
    return this.layoutFor(true, image);
  }

  /** The weights a decode graph multiplies by with MatMulNBits (the embedding is only gathered, from the fed codes, unless it is also the head). */
  private *packedWeights(): Iterable<[string, HeldWeight & { kind: "quantized" }]> {
    const level = this.nbitsHeld.nbits!.accuracyLevel;
    for (const [name, h] of this.quantized) if ((name !== "model.embed_tokens.weight" || this.tiedHead) && runsNBits(quantInfo(h.blocks), level)) yield [name, h];
  }

  /** The MatMulNBits initializers' buffers (onnxruntime copies them into the session, then prepacks). */
  private nbitsBuffers(): { path: string; data: Uint8Array }[] {
    const out: { path: string; data: Uint8Array }[] = [];
    for (const [name, h] of this.packedWeights()) {
      const n = nbitsNames(name);
      const q = h.blocks;
      out.push({ path: n.B, data: q.data }, { path: n.S, data: new Uint8Array(q.scales.buffer, q.scales.byteOffset, q.scales.byteLength) });
      if (q.zeroPoints) out.push({ path: n.Z, data: q.zeroPoints });
    }
    return out;
  }

  /** Releases the sessions whose keys match (their memory goes back once no run is using them). */
  private releaseWhere(match: (key: string) => boolean): void {
    for (const [key, s] of this.sessions) {
      if (!match(key)) continue;
      this.sessions.delete(key);
      void s.then(async (x) => {
        await this.running.get(x)?.catch(() => undefined); // a run in flight finishes first
        await x.release();
      }).catch(() => undefined);
    }
  }

  /** The last run of each session, so that a release waits for it. */
  private readonly running = new WeakMap<Session, Promise<unknown>>();

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
    const out = outputs ? session.run(feeds, outputs) : session.run(feeds);
    this.running.set(session, out);
    return out;
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
    const withImage = this.usesImage(useAdapter, image);
    const layout = this.isQuantized ? this.packedLayout(withImage) : useAdapter && !this.trained ? this.layout : undefined;
    const neutral = this.isQuantized && !useAdapter ? Object.fromEntries(this.neutralFeeds) : {};
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
    const kind = rows === 1 ? "decode" : "decode_rows";
    void this.session(kind, useAdapter, false, withImage); // compiled while the caller prepares its prompt
    let length = 0;
    return {
      get length() {
        return length;
      },
      async feed(ids: number[]): Promise<Float32Array> {
        // Looked up per call: a quantized model's decode session is released while it trains.
        const s = await rt.session(kind, useAdapter, false, withImage);
        const T = checkRows(ids, rows);
        const out = await rt.run(s, useAdapter, { ...rt.positionFeeds(Int32Array.from(ids), rows, T, length), ...imageFeeds, ...neutral, ...Object.fromEntries(cache) });
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
    if (this.isQuantized)
      throw new ExcitorInputError("full fine-tuning updates every base weight, and this model's are held quantized; load it with --weights f32 to fine-tune them all (an adapter trains on quantized weights)");
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
