/**
 * What tunes a frozen base model: an Excitor adapter (the product's method) or a LoRA adapter
 * (the comparison method, PEFT's layout). Both are folders with adapter_config.json and
 * adapter_model.safetensors; `peft_type` says which. Everything that takes `--adapter` loads it here.
 */
import { ExcitorInputError } from "./errors";
import { ExcitorAdapter } from "./excitor/adapter";
import { LoraAdapter } from "./lora/adapter";
import { readPeftType } from "./lora/config";
import type { ModelConfig } from "./model/config";

export type Adapter = ExcitorAdapter | LoraAdapter;

/** How a run tunes the model: an Excitor adapter, a LoRA adapter, or every base weight. */
export type TuningMethod = "excitor" | "lora" | "full";
export const TUNING_METHODS: readonly TuningMethod[] = ["excitor", "lora", "full"];

/** Loads the adapter in `dir`, of whichever kind its adapter_config.json names, and checks it fits the model. */
export function loadAdapter(dir: string, model: ModelConfig): Adapter {
  const type = readPeftType(dir);
  if (type === "EXCITOR") return ExcitorAdapter.load(dir, model);
  if (type === "LORA") return LoraAdapter.load(dir, model);
  const what = type === undefined ? "is missing" : `is ${JSON.stringify(type)}`;
  throw new ExcitorInputError(`${dir}/adapter_config.json: "peft_type" ${what}; Excitor runs "EXCITOR" and "LORA" adapters`, dir);
}
