/**
 * An Excitor adapter as host (JS) float32 tensors: create with the spec's init, save, load,
 * and check that it fits a model. Backends upload these; the optimizer updates them.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ExcitorInputError } from "../errors";
import { readHeader, readTensorF32, refuseUnusedTensors, writeSafetensors, numel, type F32Tensor } from "../formats/safetensors";
import { writeFileAtomic } from "../fs-atomic";
import type { ModelConfig } from "../model/config";
import { Rng } from "../rng";
import { type ExcitorConfig, type VisionBlock, expectedShapes, excitorConfigJson, readExcitorConfig, tensorName, defaultLayers, visionShape, EXCITOR_PARTS, VISION_TENSORS } from "./config";

export const ADAPTER_WEIGHTS = "adapter_model.safetensors";
export const ADAPTER_CONFIG = "adapter_config.json";

/** One adapted layer's trainable tensors (shapes per the spec). */
export interface ExcitorLayer {
  layer: number;
  prompts: F32Tensor; // [K, Cq]
  down: F32Tensor; // [r, C]
  up: F32Tensor; // [Cq, r]
  gate: F32Tensor; // [H]
}

/** A multimodal adapter's projections of the image features, shared by all adapted layers. */
export interface VisionProjections {
  key: F32Tensor; // Wvk [Cq, Cv]
  value: F32Tensor; // Wvv [Cq, Cv]
}

export class ExcitorAdapter {
  readonly method = "excitor" as const;

  constructor(
    readonly config: ExcitorConfig,
    readonly layers: ExcitorLayer[],
    /** Present exactly when config.vision is. */
    readonly vision?: VisionProjections,
  ) {}

  static create(model: ModelConfig, opts: { numPrompts: number; rank: number; layers?: number[]; seed: number; baseModel?: string; vision?: VisionBlock; extra?: Record<string, unknown> }): ExcitorAdapter {
    const layers = opts.layers ?? defaultLayers(model.numLayers);
    const config: ExcitorConfig = { numPrompts: opts.numPrompts, rank: opts.rank, layers, baseModel: opts.baseModel ?? "", ...(opts.vision ? { vision: opts.vision } : {}), extra: opts.extra ?? {} };
    validateLayers(model, config, "adapter");
    const s = expectedShapes(model, config);
    const rng = new Rng(opts.seed);
    const normal = (shape: number[], std: number): F32Tensor => {
      const data = new Float32Array(numel(shape));
      for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
      return { shape, data };
    };
    const out = layers.map((layer) => ({
      layer,
      prompts: normal(s.prompts, 1),
      down: normal(s["down.weight"], 1 / Math.sqrt(model.hiddenSize)),
      up: normal(s["up.weight"], 1 / Math.sqrt(opts.rank)),
      gate: { shape: s.gate, data: new Float32Array(model.numHeads) },
    }));
    // Drawn after every layer's tensors, so a text adapter's values do not depend on whether it sees images.
    const vision = opts.vision && { key: normal(visionShape(model, opts.vision), 1 / Math.sqrt(opts.vision.hiddenSize)), value: normal(visionShape(model, opts.vision), 1 / Math.sqrt(opts.vision.hiddenSize)) };
    return new ExcitorAdapter(config, out, vision);
  }

  static load(dir: string, model: ModelConfig): ExcitorAdapter {
    const config = readExcitorConfig(dir);
    const file = path.join(dir, ADAPTER_WEIGHTS);
    if (!fs.existsSync(file)) throw new ExcitorInputError(`${file}: not found`, file);
    validateLayers(model, config, path.join(dir, ADAPTER_CONFIG));
    const header = readHeader(file);
    const shapes = expectedShapes(model, config);
    const readNamed = (name: string, shape: number[], why: string): F32Tensor => {
      const info = header.tensors[name];
      if (!info) throw new ExcitorInputError(`${file}: tensor ${name} is missing (${why})`, file);
      if (info.shape.join(",") !== shape.join(","))
        throw new ExcitorInputError(`${file}: tensor ${name} has shape [${info.shape}] but this model needs [${shape}]; the adapter was made for another model`, file);
      return readTensorF32(header, name);
    };
    const read = (layer: number, part: keyof typeof shapes): F32Tensor => readNamed(tensorName(layer, part), shapes[part], `adapter_config.json lists layer ${layer}`);
    const layers = config.layers.map((layer) => ({
      layer,
      prompts: read(layer, "prompts"),
      down: read(layer, "down.weight"),
      up: read(layer, "up.weight"),
      gate: read(layer, "gate"),
    }));
    const v = config.vision;
    const vision = v && {
      key: readNamed(VISION_TENSORS.key, visionShape(model, v), "adapter_config.json has a vision block"),
      value: readNamed(VISION_TENSORS.value, visionShape(model, v), "adapter_config.json has a vision block"),
    };
    const used = new Set(config.layers.flatMap((l) => EXCITOR_PARTS.map((part) => tensorName(l, part))));
    if (v) for (const n of Object.values(VISION_TENSORS)) used.add(n);
    refuseUnusedTensors(header, used, v ? "adapter_config.json's layers and vision block" : "adapter_config.json's layers");
    return new ExcitorAdapter(config, layers, vision);
  }

  /** Writes adapter_model.safetensors then adapter_config.json, each atomically. */
  save(dir: string, metadata: Record<string, string> = {}): void {
    fs.mkdirSync(dir, { recursive: true });
    writeSafetensors(path.join(dir, ADAPTER_WEIGHTS), this.namedTensors(), { format: "pt", ...metadata });
    writeFileAtomic(path.join(dir, ADAPTER_CONFIG), excitorConfigJson(this.config));
  }

  /** Every trainable tensor under its spec name, in a fixed order (layer, then part). */
  namedTensors(): Record<string, F32Tensor> {
    const out: Record<string, F32Tensor> = {};
    for (const l of this.layers) {
      out[tensorName(l.layer, "prompts")] = l.prompts;
      out[tensorName(l.layer, "down.weight")] = l.down;
      out[tensorName(l.layer, "up.weight")] = l.up;
      out[tensorName(l.layer, "gate")] = l.gate;
    }
    if (this.vision) {
      out[VISION_TENSORS.key] = this.vision.key;
      out[VISION_TENSORS.value] = this.vision.value;
    }
    return out;
  }

  /** The prompt template the adapter was trained with (the trainer records it). */
  get template(): string | undefined {
    const t = this.config.extra["template"];
    return typeof t === "string" ? t : undefined;
  }

  get parameterCount(): number {
    return Object.values(this.namedTensors()).reduce((n, t) => n + t.data.length, 0);
  }

  /** Gate values per adapted layer, [layers][H]. */
  gates(): number[][] {
    return this.layers.map((l) => Array.from(l.gate.data));
  }

  clone(): ExcitorAdapter {
    const c = (t: F32Tensor): F32Tensor => ({ shape: t.shape.slice(), data: t.data.slice() });
    return new ExcitorAdapter(
      { ...this.config, layers: this.config.layers.slice(), ...(this.config.vision ? { vision: { ...this.config.vision } } : {}), extra: { ...this.config.extra } },
      this.layers.map((l) => ({ layer: l.layer, prompts: c(l.prompts), down: c(l.down), up: c(l.up), gate: c(l.gate) })),
      this.vision && { key: c(this.vision.key), value: c(this.vision.value) },
    );
  }
}

function validateLayers(model: ModelConfig, c: ExcitorConfig, where: string): void {
  if (c.layers.length === 0) throw new ExcitorInputError(`${where}: "layers" is empty; an adapter needs at least one layer`, where);
  for (const l of c.layers)
    if (l >= model.numLayers) throw new ExcitorInputError(`${where}: "layers" lists layer ${l}, but the model has ${model.numLayers} layers (0..${model.numLayers - 1}); the adapter was made for another model`, where);
  if (new Set(c.layers).size !== c.layers.length) throw new ExcitorInputError(`${where}: "layers" lists a layer twice`, where);
}
