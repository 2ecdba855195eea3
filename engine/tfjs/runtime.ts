/** ModelRuntime on tfjs: owns the TfjsLlama and the adapter's tensors on the backend. */
import type * as tfc from "@tensorflow/tfjs";
import { tf, type TfjsBackendInfo } from "../backends/tfjs";
import type { Adapter } from "../adapters";
import { tensorName, VISION_TENSORS } from "../excitor/config";
import type { LoraAdapter } from "../lora/adapter";
import { loraScaling, loraTensorName } from "../lora/config";
import type { ModelConfig } from "../model/config";
import { checkRows, weightedTokens, type AttentionProbs, type DecodeSession, type ImageFeatures, type LossAndGrads, type ModelRuntime, type TrainBatch } from "../runtime";
import type { F32Tensor } from "../formats/safetensors";
import { type ExcitorTensors, type ForwardOptions, type ImageInputs, type LayerCache, type LoraLayer, type TrainableWeight, TfjsLlama } from "./llama";

interface UploadedLayer {
  layer: number;
  vars: ExcitorTensors; // tf.Variables, so that training can differentiate through them
  names: [string, tfc.Variable][];
}

/** An uploaded LoRA adapter: per layer its linears' A/B variables, and every variable by PEFT name. */
interface UploadedLora {
  layers: Map<number, LoraLayer>;
  names: [string, tfc.Variable][];
}

export class TfjsRuntime implements ModelRuntime {
  private uploaded: UploadedLayer[] = [];
  /** A multimodal Excitor's image projections Wvk, Wvv [Cq, Cv] (variables). */
  private vision?: { key: tfc.Variable; value: tfc.Variable; names: [string, tfc.Variable][] };
  private lora?: UploadedLora;
  private full?: TrainableWeight[];

  constructor(
    private readonly model: TfjsLlama,
    private readonly info: TfjsBackendInfo,
    private readonly fastBackward = true,
  ) {}

  readonly keepsBaseInFullTraining = false;

  get backend(): string {
    return `tfjs-${this.info.name}`;
  }
  get backendNote(): string {
    return this.info.note;
  }
  get config(): ModelConfig {
    return this.model.config;
  }

  setAdapter(adapter: Adapter | null): void {
    if (adapter?.method === "lora") {
      this.setExcitor(null);
      this.setLora(adapter);
      return;
    }
    this.setLora(null);
    this.setExcitor(adapter);
  }

  /** Uploads LoRA's A and B as variables (assigned in place when the layout is unchanged). */
  private setLora(adapter: LoraAdapter | null): void {
    const names = adapter ? Object.entries(adapter.namedTensors()) : [];
    const same = this.lora && this.lora.names.length === names.length && names.every(([n, t], i) => this.lora!.names[i][0] === n && this.lora!.names[i][1].shape.join(",") === t.shape.join(","));
    if (same) {
      names.forEach(([, t], i) => tf.tidy(() => this.lora!.names[i][1].assign(tf.tensor(t.data, t.shape, "float32"))));
      // A new scaling (alpha) with the same shapes is still taken.
      for (const l of this.lora!.layers.values()) for (const m of Object.values(l)) m.scaling = loraScaling(adapter!.config);
      return;
    }
    for (const [, v] of this.lora?.names ?? []) v.dispose();
    this.lora = undefined;
    if (!adapter) return;
    const scaling = loraScaling(adapter.config);
    const layers = new Map<number, LoraLayer>();
    const out: [string, tfc.Variable][] = [];
    for (const p of adapter.pairs) {
      const A = tf.variable(tf.tensor(p.A.data, p.A.shape, "float32"), true);
      const B = tf.variable(tf.tensor(p.B.data, p.B.shape, "float32"), true);
      out.push([loraTensorName(p.layer, p.module, "A"), A], [loraTensorName(p.layer, p.module, "B"), B]);
      const l = layers.get(p.layer) ?? {};
      l[p.module] = { A: A as unknown as tfc.Tensor2D, B: B as unknown as tfc.Tensor2D, scaling };
      layers.set(p.layer, l);
    }
    this.lora = { layers, names: out };
  }

  private setExcitor(adapter: Adapter | null): void {
    if (adapter?.method === "lora") return;
    this.setVision(adapter?.vision);
    const same = adapter && this.uploaded.length === adapter.layers.length && adapter.layers.every((l, i) => {
      const u = this.uploaded[i];
      return u.layer === l.layer && u.vars.prompts.shape[0] === l.prompts.shape[0] && u.vars.down.shape[0] === l.down.shape[0];
    });
    if (same) {
      adapter.layers.forEach((l, i) => {
        const v = this.uploaded[i].vars as unknown as Record<string, tfc.Variable>;
        for (const [key, t] of [["prompts", l.prompts], ["down", l.down], ["up", l.up], ["gate", l.gate]] as const)
          tf.tidy(() => v[key].assign(tf.tensor(t.data, t.shape, "float32")));
      });
      return;
    }
    for (const u of this.uploaded) for (const [, v] of u.names) v.dispose();
    this.uploaded = (adapter?.layers ?? []).map((l) => {
      const mk = (t: { data: Float32Array; shape: number[] }) => tf.variable(tf.tensor(t.data, t.shape, "float32"), true);
      const vars = { prompts: mk(l.prompts), down: mk(l.down), up: mk(l.up), gate: mk(l.gate) } as unknown as ExcitorTensors;
      const names: [string, tfc.Variable][] = [
        [tensorName(l.layer, "prompts"), vars.prompts as unknown as tfc.Variable],
        [tensorName(l.layer, "down.weight"), vars.down as unknown as tfc.Variable],
        [tensorName(l.layer, "up.weight"), vars.up as unknown as tfc.Variable],
        [tensorName(l.layer, "gate"), vars.gate as unknown as tfc.Variable],
      ];
      return { layer: l.layer, vars, names };
    });
  }

  /** Uploads a multimodal adapter's projections (assigned in place when the shapes are unchanged). */
  private setVision(v: { key: { data: Float32Array; shape: number[] }; value: { data: Float32Array; shape: number[] } } | undefined): void {
    if (v && this.vision && this.vision.key.shape.join(",") === v.key.shape.join(",")) {
      tf.tidy(() => {
        this.vision!.key.assign(tf.tensor(v.key.data, v.key.shape, "float32"));
        this.vision!.value.assign(tf.tensor(v.value.data, v.value.shape, "float32"));
      });
      return;
    }
    this.vision?.key.dispose();
    this.vision?.value.dispose();
    this.vision = undefined;
    if (!v) return;
    const key = tf.variable(tf.tensor(v.key.data, v.key.shape, "float32"), true);
    const value = tf.variable(tf.tensor(v.value.data, v.value.shape, "float32"), true);
    this.vision = { key, value, names: [[VISION_TENSORS.key, key], [VISION_TENSORS.value, value]] };
  }

  /** The forward's image inputs (call inside tf.tidy): only a multimodal Excitor in use sees the picture. */
  private imageOptions(useAdapter: boolean, image: ImageFeatures | undefined): { image?: ImageInputs } {
    if (!image || !useAdapter || !this.vision || this.uploaded.length === 0) return {};
    const { rows, numTokens: Nv, hidden: Cv } = image;
    const mask = new Float32Array(rows * Nv);
    for (let r = 0; r < rows; r++) if (!image.present[r]) mask.fill(-1e9, r * Nv, (r + 1) * Nv);
    return {
      image: {
        key: this.vision.key as unknown as tfc.Tensor2D,
        value: this.vision.value as unknown as tfc.Tensor2D,
        feats: tf.tensor3d(image.data, [rows, Nv, Cv]),
        mask: tf.tensor3d(mask, [rows, 1, Nv]),
      },
    };
  }

  /** The forward's adapter options: the Excitor or LoRA tensors, or none (the base model). */
  private adapterOptions(useAdapter: boolean): Pick<ForwardOptions, "excitor" | "lora"> {
    if (!useAdapter) return {};
    if (this.lora) return { lora: this.lora.layers };
    if (this.uploaded.length === 0) return {};
    return { excitor: new Map(this.uploaded.map((u) => [u.layer, u.vars])) };
  }

  async tokenLogprobs(ids: number[], useAdapter: boolean, image?: ImageFeatures): Promise<Float32Array> {
    const M = ids.length;
    if (M < 2) return new Float32Array(0);
    const out = tf.tidy(() => {
      const logits = this.model.forward(tf.tensor2d(ids, [1, M], "int32"), { ...this.adapterOptions(useAdapter), ...this.imageOptions(useAdapter, image) }); // [1, M, V]
      const lp = tf.logSoftmax(tf.reshape(logits, [M, this.config.vocabSize])); // [M, V]
      const picked = tf.mul(tf.slice(lp, [0, 0], [M - 1, this.config.vocabSize]), tf.oneHot(tf.tensor1d(ids.slice(1), "int32"), this.config.vocabSize));
      return tf.sum(picked, 1); // [M-1]
    });
    const data = (await out.data()) as Float32Array;
    out.dispose();
    return data;
  }

  async logprobRows(ids: Int32Array, batch: number, seqLen: number, useAdapter: boolean, image?: ImageFeatures): Promise<Float32Array> {
    const out = tf.tidy(() =>
      tf.logSoftmax(tf.reshape(this.model.forward(tf.tensor2d(ids, [batch, seqLen], "int32"), { ...this.adapterOptions(useAdapter), ...this.imageOptions(useAdapter, image) }), [batch * seqLen, this.config.vocabSize])),
    );
    const data = (await out.data()) as Float32Array;
    out.dispose();
    return data;
  }

  startDecode(useAdapter: boolean, rows = 1, image?: ImageFeatures): DecodeSession {
    const cache: (LayerCache | undefined)[] = new Array(this.config.numLayers);
    const adapter = this.adapterOptions(useAdapter);
    const images = () => this.imageOptions(useAdapter, image);
    const model = this.model;
    let length = 0;
    return {
      get length() {
        return length;
      },
      async feed(ids: number[]): Promise<Float32Array> {
        const T = checkRows(ids, rows);
        const logits = tf.tidy(() => model.forward(tf.tensor2d(ids, [rows, T], "int32"), { ...adapter, ...images(), cache, lastOnly: true })); // [B, 1, V]
        length += T;
        const data = (await logits.data()) as Float32Array;
        logits.dispose();
        return data;
      },
      dispose() {
        for (const c of cache) {
          c?.k.dispose();
          c?.v.dispose();
        }
        cache.fill(undefined);
      },
    };
  }

  async attentionProbs(ids: number[], useAdapter: boolean, image?: ImageFeatures): Promise<AttentionProbs> {
    const capture = { tuned: [] as tfc.Tensor4D[], base: [] as tfc.Tensor4D[], image: undefined as tfc.Tensor3D[] | undefined };
    const imageOpts = () => this.imageOptions(useAdapter, image);
    let withImage = false;
    tf.tidy(() => {
      const im = imageOpts();
      withImage = !!im.image;
      this.model.forward(tf.tensor2d(ids, [1, ids.length], "int32"), { ...this.adapterOptions(useAdapter), ...im, capture, lastOnly: true });
    });
    const read = async (ts: (tfc.Tensor | undefined)[]) => {
      const out: (Float32Array | undefined)[] = [];
      for (let i = 0; i < ts.length; i++) {
        out.push(ts[i] && ((await ts[i]!.data()) as Float32Array));
        ts[i]?.dispose();
      }
      return out;
    };
    const base = (await read(capture.base)) as Float32Array[];
    const tuned = (await read(capture.tuned)) as Float32Array[];
    if (!withImage) return { base, tuned };
    const imageAttn = await read(Array.from({ length: this.config.numLayers }, (_, l) => capture.image?.[l])); // [1, M, Nv] per adapted layer
    return { base, tuned, image: imageAttn };
  }

  prepareTraining(adapter: Adapter): void {
    this.setAdapter(adapter);
    if (this.fastBackward) this.model.prepareBackward(Math.min(...adapter.config.layers));
  }

  /** Σ weights·(−log p(target)) over the batch (soft targets: Σ weights·(−Σ_v soft·log p)), as a scalar tensor. */
  private nllSum(batch: TrainBatch, adapter: Pick<ForwardOptions, "excitor" | "lora">): tfc.Scalar {
    const { batch: B, seqLen: T } = batch;
    const V = this.config.vocabSize;
    const logits = this.model.forward(tf.tensor2d(batch.ids, [B, T], "int32"), { ...adapter, ...this.imageOptions(adapter.excitor !== undefined, batch.image) }); // [B, T, V]
    const lp = tf.logSoftmax(tf.reshape(logits, [B * T, V])); // [B·T, V]
    // oneHot·sum instead of gather: gather has no gradient on the wasm backend.
    const target = batch.soft ? tf.tensor2d(batch.soft, [B * T, V]) : tf.oneHot(tf.tensor1d(batch.targets, "int32"), V); // [B·T, V]
    const picked = tf.sum(tf.mul(lp, target), 1); // [B·T]
    return tf.neg(tf.sum(tf.mul(picked, tf.tensor1d(batch.weights)))) as tfc.Scalar;
  }

  beginFullTraining(): Map<string, F32Tensor> {
    this.full = this.model.enableFullTraining();
    const out = new Map<string, F32Tensor>();
    for (const w of this.full) {
      const t = tf.tidy(() => (w.transposed ? tf.transpose(w.variable) : tf.clone(w.variable)));
      out.set(w.name, { shape: t.shape.slice(), data: t.dataSync() as Float32Array });
      t.dispose();
    }
    return out;
  }

  setBaseWeights(values: Map<string, Float32Array>): void {
    if (!this.full) throw new Error("setBaseWeights needs beginFullTraining first");
    for (const w of this.full) {
      const data = values.get(w.name);
      if (!data) throw new Error(`setBaseWeights: no value for ${w.name}`);
      const shape = w.transposed ? [w.variable.shape[1]!, w.variable.shape[0]!] : w.variable.shape;
      tf.tidy(() => {
        const t = tf.tensor(data, shape, "float32");
        w.variable.assign(w.transposed ? tf.transpose(t) : t);
      });
    }
  }

  async lossAndGrads(batch: TrainBatch, scale: number): Promise<LossAndGrads> {
    const adapter = this.adapterOptions(true);
    const trainable: [string, tfc.Variable, boolean][] = this.full
      ? this.full.map((w) => [w.name, w.variable, w.transposed])
      : [...this.uploaded.flatMap((u) => u.names), ...(this.vision?.names ?? []), ...(this.lora?.names ?? [])].map(([n, v]) => [n, v, false] as [string, tfc.Variable, boolean]);
    if (!trainable.length) throw new Error("lossAndGrads needs an adapter (prepareTraining) or beginFullTraining");
    let lossT: tfc.Scalar | undefined;
    const { grads } = tf.variableGrads(() => {
      lossT = tf.keep(this.nllSum(batch, adapter));
      return tf.mul(lossT, scale) as tfc.Scalar;
    }, trainable.map(([, v]) => v));
    const out = new Map<string, Float32Array>();
    for (const [name, v, transposed] of trainable) {
      // A batch without pictures does not reach a multimodal adapter's image projections: zero gradients.
      if (!grads[v.name]) {
        out.set(name, new Float32Array(v.size));
        continue;
      }
      const g = transposed ? tf.tidy(() => tf.transpose(grads[v.name])) : grads[v.name];
      out.set(name, (await g.data()) as Float32Array);
      if (transposed) g.dispose();
    }
    for (const g of Object.values(grads)) g.dispose();
    const lossSum = (await lossT!.data())[0];
    lossT!.dispose();
    return { lossSum, tokens: weightedTokens(batch), grads: out };
  }

  async evalLoss(batch: TrainBatch, useAdapter: boolean): Promise<{ lossSum: number; tokens: number }> {
    const t = tf.tidy(() => this.nllSum(batch, this.adapterOptions(useAdapter)));
    const lossSum = (await t.data())[0];
    t.dispose();
    return { lossSum, tokens: weightedTokens(batch) };
  }

  dispose(): void {
    this.setAdapter(null);
    this.model.dispose();
  }
}
