/**
 * A LoRA adapter as host float32 tensors, exactly as PEFT makes and saves one: for each adapted
 * linear W [out, in], A [r, in] (Kaiming-uniform with a = √5, PEFT's `reset_lora_parameters`)
 * and B [out, r] (zero), and the layer computes x·Wᵀ + (alpha/r)·x·Aᵀ·Bᵀ. LoRA is the comparison
 * method (`excitor train --method lora`): the product's job is Excitor, and this is what a user
 * would otherwise pick.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ExcitorInputError } from "../errors";
import { readHeader, readTensorF32, refuseUnusedTensors, writeSafetensors, type F32Tensor } from "../formats/safetensors";
import { writeFileAtomic } from "../fs-atomic";
import type { ModelConfig } from "../model/config";
import { Rng } from "../rng";
import { type LoraConfig, type LoraModule, LORA_DEFAULTS, loraConfigJson, loraTensorName, moduleShape, readLoraConfig } from "./config";

export const LORA_WEIGHTS = "adapter_model.safetensors";

/** One adapted linear: A [r, in], B [out, r]. */
export interface LoraPair {
  layer: number;
  module: LoraModule;
  A: F32Tensor;
  B: F32Tensor;
}

export class LoraAdapter {
  readonly method = "lora" as const;

  constructor(
    readonly config: LoraConfig,
    readonly pairs: LoraPair[],
    /** Layers of the model it was made for (PEFT writes `layers_to_transform: null` when it adapts all). */
    readonly modelLayers: number,
    /** The prompt template the adapter was trained with (kept in the safetensors metadata: PEFT's config has no field for it). */
    readonly template?: string,
  ) {}

  static create(model: ModelConfig, opts: { r?: number; alpha?: number; targets?: LoraModule[]; layers?: number[]; seed: number; baseModel?: string; template?: string }): LoraAdapter {
    const config: LoraConfig = {
      r: opts.r ?? LORA_DEFAULTS.r,
      alpha: opts.alpha ?? LORA_DEFAULTS.alpha,
      targets: opts.targets ?? LORA_DEFAULTS.targets,
      layers: opts.layers ?? Array.from({ length: model.numLayers }, (_, i) => i),
      baseModel: opts.baseModel ?? "",
      extra: {},
    };
    validate(model, config, "adapter");
    const rng = new Rng(opts.seed);
    const pairs = pairsOf(config).map(({ layer, module }) => {
      const [out, inp] = moduleShape(model, module);
      // kaiming_uniform_(a=√5) on [r, in]: gain √(2/(1+5)), bound = gain·√(3/fan_in) = 1/√in.
      const bound = 1 / Math.sqrt(inp);
      const A = new Float32Array(config.r * inp);
      for (let i = 0; i < A.length; i++) A[i] = (2 * rng.next() - 1) * bound;
      return { layer, module, A: { shape: [config.r, inp], data: A }, B: { shape: [out, config.r], data: new Float32Array(out * config.r) } };
    });
    return new LoraAdapter(config, pairs, model.numLayers, opts.template);
  }

  static load(dir: string, model: ModelConfig): LoraAdapter {
    const config = readLoraConfig(dir, model.numLayers);
    const file = path.join(dir, LORA_WEIGHTS);
    if (!fs.existsSync(file)) throw new ExcitorInputError(`${file}: not found`, file);
    validate(model, config, path.join(dir, "adapter_config.json"));
    const header = readHeader(file);
    const read = (layer: number, module: LoraModule, part: "A" | "B"): F32Tensor => {
      const name = loraTensorName(layer, module, part);
      const [out, inp] = moduleShape(model, module);
      const want = part === "A" ? [config.r, inp] : [out, config.r];
      const info = header.tensors[name];
      if (!info) throw new ExcitorInputError(`${file}: tensor ${name} is missing (adapter_config.json targets ${module} in layer ${layer})`, file);
      if (info.shape.join(",") !== want.join(","))
        throw new ExcitorInputError(`${file}: tensor ${name} has shape [${info.shape}] but this model needs [${want}]; the adapter was made for another model or rank`, file);
      return readTensorF32(header, name);
    };
    const pairs = pairsOf(config).map(({ layer, module }) => ({ layer, module, A: read(layer, module, "A"), B: read(layer, module, "B") }));
    refuseUnusedTensors(header, new Set(pairs.flatMap(({ layer, module }) => [loraTensorName(layer, module, "A"), loraTensorName(layer, module, "B")])), "adapter_config.json's target_modules and layers");
    return new LoraAdapter(config, pairs, model.numLayers, header.metadata.template);
  }

  /** Writes adapter_model.safetensors then adapter_config.json, each atomically, in PEFT's layout. */
  save(dir: string, metadata: Record<string, string> = {}): void {
    fs.mkdirSync(dir, { recursive: true });
    writeSafetensors(path.join(dir, LORA_WEIGHTS), this.namedTensors(), { format: "pt", ...(this.template ? { template: this.template } : {}), ...metadata });
    writeFileAtomic(path.join(dir, "adapter_config.json"), loraConfigJson(this.config, this.modelLayers));
  }

  /** Every trainable tensor under PEFT's name, in a fixed order (layer, module, A then B). */
  namedTensors(): Record<string, F32Tensor> {
    const out: Record<string, F32Tensor> = {};
    for (const p of this.pairs) {
      out[loraTensorName(p.layer, p.module, "A")] = p.A;
      out[loraTensorName(p.layer, p.module, "B")] = p.B;
    }
    return out;
  }

  get parameterCount(): number {
    return this.pairs.reduce((n, p) => n + p.A.data.length + p.B.data.length, 0);
  }

  clone(): LoraAdapter {
    const c = (t: F32Tensor): F32Tensor => ({ shape: t.shape.slice(), data: t.data.slice() });
    return new LoraAdapter(
      { ...this.config, targets: this.config.targets.slice(), layers: this.config.layers.slice(), extra: { ...this.config.extra } },
      this.pairs.map((p) => ({ layer: p.layer, module: p.module, A: c(p.A), B: c(p.B) })),
      this.modelLayers,
      this.template,
    );
  }
}

/** (layer, module) for every adapted linear, layer-major. */
function pairsOf(c: LoraConfig): { layer: number; module: LoraModule }[] {
  return c.layers.flatMap((layer) => c.targets.map((module) => ({ layer, module })));
}

function validate(model: ModelConfig, c: LoraConfig, where: string): void {
  if (c.layers.length === 0) throw new ExcitorInputError(`${where}: LoRA adapts no layer`, where);
  for (const l of c.layers)
    if (l >= model.numLayers) throw new ExcitorInputError(`${where}: LoRA adapts layer ${l}, but the model has ${model.numLayers} layers (0..${model.numLayers - 1}); the adapter was made for another model`, where);
}
