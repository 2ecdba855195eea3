/**
 * A LoRA adapter's config, in PEFT's own `adapter_config.json` layout (peft_type "LORA"), so
 * that `PeftModel.from_pretrained` loads what Excitor writes and Excitor loads what PEFT or
 * LLaMA-Factory write (plain LoRA: no DoRA, rsLoRA, bias or dropout at inference).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ExcitorInputError } from "../errors";
import { readJsonObject, type JsonObject } from "../json-file";
import type { ModelConfig } from "../model/config";

/** The linear layers LoRA can adapt, by their Hugging Face module name, and where they sit. */
export const LORA_MODULES = {
  q_proj: "self_attn",
  k_proj: "self_attn",
  v_proj: "self_attn",
  o_proj: "self_attn",
  gate_proj: "mlp",
  up_proj: "mlp",
  down_proj: "mlp",
} as const;
export type LoraModule = keyof typeof LORA_MODULES;

/** PEFT's defaults for LLaMA (and LLaMA-Factory's): rank 8, alpha 16, on q_proj and v_proj. */
export const LORA_DEFAULTS = { r: 8, alpha: 16, targets: ["q_proj", "v_proj"] as LoraModule[] };

export interface LoraConfig {
  r: number;
  alpha: number;
  /** Adapted modules, in LORA_MODULES order. */
  targets: LoraModule[];
  /** 0-based layers that carry LoRA (PEFT: all unless `layers_to_transform`). */
  layers: number[];
  baseModel: string;
  /** Keys this version does not interpret, kept so that a save round-trips them. */
  extra: Record<string, unknown>;
}

/** PEFT's scaling: alpha / r (rsLoRA, alpha / sqrt(r), is refused on load). */
export const loraScaling = (c: LoraConfig): number => c.alpha / c.r;

/** Sorts module names into LORA_MODULES order and rejects unknown ones. */
export function parseTargets(list: readonly string[], where: string): LoraModule[] {
  const known = Object.keys(LORA_MODULES);
  for (const t of list)
    if (!known.includes(t)) throw new ExcitorInputError(`${where}: LoRA target "${t}" is not a LLaMA linear layer (use ${known.join(", ")})`, where);
  if (list.length === 0) throw new ExcitorInputError(`${where}: LoRA needs at least one target module`, where);
  return known.filter((k) => list.includes(k)) as LoraModule[];
}

/** [out, in] of a module's weight in this model. */
export function moduleShape(m: ModelConfig, module: LoraModule): [number, number] {
  const C = m.hiddenSize;
  const cq = m.numHeads * m.headDim;
  const ckv = m.numKvHeads * m.headDim;
  const I = m.intermediateSize;
  return { q_proj: [cq, C], k_proj: [ckv, C], v_proj: [ckv, C], o_proj: [C, cq], gate_proj: [I, C], up_proj: [I, C], down_proj: [C, I] }[module] as [number, number];
}

/** PEFT's saved tensor name (the adapter name "default" is dropped on save). */
export function loraTensorName(layer: number, module: LoraModule, part: "A" | "B"): string {
  return `base_model.model.model.layers.${layer}.${LORA_MODULES[module]}.${module}.lora_${part}.weight`;
}

/** An adapter folder's adapter_config.json as a JSON object; both kinds of adapter read it here, so their errors read alike. */
export function readAdapterConfigJson(dir: string): { file: string; json: JsonObject } {
  const file = path.join(dir, "adapter_config.json");
  if (!fs.existsSync(dir)) throw new ExcitorInputError(`${dir}: adapter folder not found`, dir);
  if (!fs.existsSync(file)) throw new ExcitorInputError(`${file}: not found; an adapter folder needs adapter_config.json`, file);
  return { file, json: readJsonObject(file) };
}

/** Whether an adapter folder's config says LoRA (PEFT's peft_type), without validating the rest. */
export function readPeftType(dir: string): unknown {
  return readAdapterConfigJson(dir).json.peft_type;
}

export function readLoraConfig(dir: string, numLayers: number): LoraConfig {
  const { file, json } = readAdapterConfigJson(dir);
  const fail = (field: string, msg: string): never => {
    throw new ExcitorInputError(`${file}: "${field}" ${msg}`, file);
  };
  if (json.peft_type !== "LORA") fail("peft_type", `is ${JSON.stringify(json.peft_type)}, expected "LORA"`);
  const r = json.r;
  if (typeof r !== "number" || !Number.isInteger(r) || r <= 0) fail("r", `must be a positive integer (got ${JSON.stringify(r)})`);
  const alpha = json.lora_alpha ?? r; // PEFT's default lora_alpha is 8 with r 8; older configs omit it
  if (typeof alpha !== "number" || !(alpha > 0)) fail("lora_alpha", `must be a positive number (got ${JSON.stringify(alpha)})`);
  if (json.use_rslora === true) fail("use_rslora", "is true; rank-stabilised LoRA (alpha/sqrt(r)) is not supported");
  if (json.use_dora === true) fail("use_dora", "is true; DoRA adapters are not supported");
  if (json.bias !== undefined && json.bias !== "none") fail("bias", `is ${JSON.stringify(json.bias)}; only "none" is supported (no trained biases)`);
  if (json.fan_in_fan_out === true) fail("fan_in_fan_out", "is true; that layout is for GPT-2's Conv1D, not LLaMA");
  // Parts of a PEFT adapter this engine would otherwise drop without a word.
  const modulesToSave = json.modules_to_save;
  if (modulesToSave != null && !(Array.isArray(modulesToSave) && modulesToSave.length === 0))
    fail("modules_to_save", `is ${JSON.stringify(modulesToSave)}; fully trained copies of modules are not supported`);
  for (const key of ["rank_pattern", "alpha_pattern"])
    if (json[key] != null && (typeof json[key] !== "object" || Object.keys(json[key] as object).length > 0)) fail(key, "is set; per-module ranks and alphas are not supported");
  const ltt = json.layers_to_transform;
  let layers = Array.from({ length: numLayers }, (_, i) => i);
  if (typeof ltt === "number") layers = [ltt];
  else if (Array.isArray(ltt)) layers = ltt as number[];
  else if (ltt !== undefined && ltt !== null) fail("layers_to_transform", "must be null, a layer index or a list of them");
  if (!layers.every((l) => Number.isInteger(l) && l >= 0)) fail("layers_to_transform", "must hold 0-based layer indices");
  const targets = json.target_modules;
  let modules: LoraModule[];
  if (typeof targets === "string") {
    const picked = regexTargets(targets, numLayers, (msg) => fail("target_modules", msg));
    modules = picked.modules;
    layers = layers.filter((l) => picked.layers.includes(l));
  }
  else if (Array.isArray(targets) && targets.every((t) => typeof t === "string")) modules = parseTargets(targets as string[], `${file}: "target_modules"`);
  else return fail("target_modules", "must be a list of module names such as [\"q_proj\", \"v_proj\"] or a regular expression");
  const known = new Set(["peft_type", "task_type", "base_model_name_or_path", "r", "lora_alpha", "target_modules", "layers_to_transform"]);
  return {
    r: r as number,
    alpha: alpha as number,
    targets: modules,
    layers: [...new Set(layers)].sort((a, b) => a - b),
    baseModel: String(json.base_model_name_or_path ?? ""),
    extra: Object.fromEntries(Object.entries(json).filter(([k]) => !known.has(k))),
  };
}

/**
 * PEFT reads a string `target_modules` as a regular expression that must match a module's whole
 * name (`model.layers.3.self_attn.q_proj`), not as one module name. What it selects must be
 * some modules in some layers (the shape this engine holds); anything else is refused.
 */
function regexTargets(pattern: string, numLayers: number, fail: (msg: string) => never): { modules: LoraModule[]; layers: number[] } {
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${pattern})$`);
  } catch (e) {
    return fail(`is not a valid regular expression (${(e as Error).message})`);
  }
  const hits = new Map<number, LoraModule[]>();
  for (let layer = 0; layer < numLayers; layer++) {
    const mods = (Object.keys(LORA_MODULES) as LoraModule[]).filter((m) => re.test(`model.layers.${layer}.${LORA_MODULES[m]}.${m}`));
    if (mods.length) hits.set(layer, mods);
  }
  if (hits.size === 0) fail(`${JSON.stringify(pattern)} matches no LLaMA linear layer (PEFT matches it against whole names such as model.layers.0.self_attn.q_proj)`);
  const [first] = hits.values();
  if ([...hits.values()].some((m) => m.join() !== first.join())) fail(`${JSON.stringify(pattern)} selects different modules in different layers, which is not supported`);
  return { modules: first, layers: [...hits.keys()] };
}

/** PEFT's LoraConfig fields for a plain LoRA (what `LoraConfig.save_pretrained` writes, trimmed to what matters). */
export function loraConfigJson(c: LoraConfig, numLayers: number): string {
  const all = c.layers.length === numLayers && c.layers.every((l, i) => l === i);
  return JSON.stringify(
    {
      lora_dropout: 0,
      bias: "none",
      fan_in_fan_out: false,
      init_lora_weights: true,
      use_rslora: false,
      use_dora: false,
      inference_mode: true,
      modules_to_save: null,
      ...c.extra,
      peft_type: "LORA",
      task_type: "CAUSAL_LM",
      base_model_name_or_path: c.baseModel,
      r: c.r,
      lora_alpha: c.alpha,
      target_modules: c.targets,
      layers_to_transform: all ? null : c.layers,
    },
    null,
    2,
  ) + "\n";
}
