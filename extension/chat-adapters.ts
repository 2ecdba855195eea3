/**
 * Which adapters the chat offers for the chosen base model, and what each one is called there.
 * An adapter only runs on a model of the shape it was trained on; rather than let the engine fail
 * on a tensor shape, the list says up front which adapters fit, from what is cheap to read: the
 * model's config.json, the adapter's adapter_config.json and its safetensors header (no weights).
 * Runs share names ("train-quick" many times over), so each entry is "name · date · status".
 * No vscode import, so it is tested in plain Node.
 */
import * as path from "node:path";
import { ADAPTER_WEIGHTS } from "../engine/excitor/adapter";
import { expectedShapes, readExcitorConfig, tensorName } from "../engine/excitor/config";
import { readHeader, type SafetensorsHeader } from "../engine/formats/safetensors";
import { LORA_WEIGHTS } from "../engine/lora/adapter";
import { isJsonObject } from "../engine/json-file";
import { loraTensorName, moduleShape, readAdapterConfigJson, readLoraConfig, readPeftType } from "../engine/lora/config";
import type { ModelConfig } from "../engine/model/config";
import { readModelConfigAt } from "../engine/model/source";
import type { AdapterOption } from "./messages";
import type { RunInfo } from "./run-manager";

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** "2 Dec 14:03" in local time; the year only when it is not this year's, the seconds on request. */
export function shortDate(iso: string, now: Date, seconds = false): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "unknown date";
  const two = (n: number) => String(n).padStart(2, "0");
  const year = d.getFullYear() === now.getFullYear() ? "" : ` ${d.getFullYear()}`;
  return `${d.getDate()} ${MONTHS[d.getMonth()]}${year} ${two(d.getHours())}:${two(d.getMinutes())}${seconds ? `:${two(d.getSeconds())}` : ""}`;
}

/**
 * "name · date" for each run, told apart where they would read the same: first by the seconds,
 * then by the run's folder name, which is unique.
 */
export function runNames(runs: readonly RunInfo[], now = new Date()): Map<string, string> {
  const out = new Map<string, string>();
  const clash = (label: (r: RunInfo) => string, group: readonly RunInfo[]): RunInfo[][] => {
    const by = new Map<string, RunInfo[]>();
    for (const r of group) by.set(label(r), [...(by.get(label(r)) ?? []), r]);
    for (const [l, rs] of by) if (rs.length === 1) out.set(rs[0].id, l);
    return [...by.values()].filter((rs) => rs.length > 1);
  };
  for (const same of clash((r) => `${r.name} · ${shortDate(r.createdAt, now)}`, runs))
    for (const still of clash((r) => `${r.name} · ${shortDate(r.createdAt, now, true)}`, same))
      for (const r of still) out.set(r.id, `${r.name} · ${shortDate(r.createdAt, now, true)} · ${r.id}`);
  return out;
}

/**
 * Why the adapter in `dir` cannot run on a model with config `model`, in words a user can act on;
 * undefined when it can. Reads adapter_config.json and the safetensors header only. Its
 * `peft_type` says which kind it is: Excitor's own, or LoRA (PEFT's layout, from Excitor, PEFT or LLaMA-Factory).
 */
export function incompatibility(dir: string, model: ModelConfig): string | undefined {
  let type: unknown;
  try {
    type = readPeftType(dir);
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  return type === "LORA" ? loraIncompatibility(dir, model) : excitorIncompatibility(dir, model);
}

/** "LoRA" or "Excitor" from an adapter folder's config; undefined when it cannot be read (the entry says why elsewhere). */
export function adapterKind(dir: string): "LoRA" | "Excitor" | undefined {
  try {
    const type = readPeftType(dir);
    return type === "LORA" ? "LoRA" : type === "EXCITOR" ? "Excitor" : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the adapter in `dir` is multimodal: its adapter_config.json has a `vision` block. Read
 * when the adapter is chosen, so the chat offers images before the engine has loaded; the
 * engine's `ready` event has the last word.
 */
export function adapterTakesImages(dir: string): boolean {
  try {
    const { json } = readAdapterConfigJson(dir);
    return json.peft_type === "EXCITOR" && isJsonObject(json.vision);
  } catch {
    return false;
  }
}

function loraIncompatibility(dir: string, model: ModelConfig): string | undefined {
  let config;
  let tensors: SafetensorsHeader["tensors"];
  try {
    config = readLoraConfig(dir, model.numLayers);
    tensors = readHeader(path.join(dir, LORA_WEIGHTS)).tensors;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  const beyond = config.layers.find((l) => l >= model.numLayers);
  if (beyond !== undefined) return `it adapts layer ${beyond} and this model has ${model.numLayers} layers (0–${model.numLayers - 1})`;
  for (const layer of config.layers) {
    for (const module of config.targets) {
      const [out, inp] = moduleShape(model, module);
      const a = tensors[loraTensorName(layer, module, "A")]?.shape; // [r, in]
      const b = tensors[loraTensorName(layer, module, "B")]?.shape; // [out, r]
      if (!a || !b) return `${LORA_WEIGHTS} has no LoRA ${a ? "B" : "A"} tensor for ${module} in layer ${layer}`;
      if (a.length !== 2 || b.length !== 2 || a[0] !== config.r || b[1] !== config.r)
        return `${module} in layer ${layer} has LoRA tensors A [${a}] and B [${b}]; adapter_config.json says rank r ${config.r}`;
      if (a[1] !== inp || b[0] !== out) return `it was trained for a model whose ${module} maps ${a[1]} to ${b[0]} features; this model's maps ${inp} to ${out}`;
    }
  }
  return undefined;
}

function excitorIncompatibility(dir: string, model: ModelConfig): string | undefined {
  let config;
  let tensors;
  try {
    config = readExcitorConfig(dir);
    tensors = readHeader(path.join(dir, ADAPTER_WEIGHTS)).tensors;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  const beyond = config.layers.find((l) => l >= model.numLayers);
  if (beyond !== undefined) return `it adapts layer ${beyond} and this model has ${model.numLayers} layers (0–${model.numLayers - 1})`;
  const want = expectedShapes(model, config);
  for (const layer of config.layers) {
    for (const part of Object.keys(want) as (keyof typeof want)[]) {
      const info = tensors[tensorName(layer, part)];
      if (!info) return `${ADAPTER_WEIGHTS} has no ${part} tensor for layer ${layer}`;
      if (info.shape.join(",") === want[part].join(",")) continue;
      // The tensors give away the shape the adapter was made for: down is [r, C], gate is [H].
      const hidden = tensors[tensorName(layer, "down.weight")]?.shape[1];
      const heads = tensors[tensorName(layer, "gate")]?.shape[0];
      const theirs = hidden !== undefined && heads !== undefined ? `hidden size ${hidden}, ${heads} heads` : `${part} of shape [${info.shape}]`;
      const ours = hidden !== undefined && heads !== undefined ? `hidden size ${model.hiddenSize}, ${model.numHeads} heads` : `[${want[part]}]`;
      return `it was trained for a model with ${theirs}; this model has ${ours}`;
    }
  }
  return undefined;
}

/** Why the adapter cannot be used with the model folder `modelDir`, or undefined when it can (or the model cannot be read: the engine will say why). */
export function adapterMisfit(adapterDir: string, modelDir: string): string | undefined {
  let model: ModelConfig;
  try {
    model = readModelConfigAt(modelDir); // a folder or a GGUF file
  } catch {
    return undefined;
  }
  return incompatibility(adapterDir, model);
}

/**
 * The adapter dropdown's entries for the model in `modelDir`: runs that have an adapter (or are
 * training one), newest first, those that fit the model before those that do not. An entry that
 * cannot be chosen says why in `disabled`.
 */
export function adapterOptions(runs: readonly RunInfo[], modelDir: string, modelLabel: (dir: string) => string, now = new Date()): AdapterOption[] {
  let model: ModelConfig | undefined;
  try {
    model = readModelConfigAt(modelDir); // a folder or a GGUF file
  } catch {
    model = undefined; // the chat reports the model's own problem when it loads it
  }
  const shown = runs.filter((r) => r.hasAdapter || r.status === "running");
  const names = runNames(shown, now);
  const options = shown.map((r): AdapterOption => {
    const name = names.get(r.id)!;
    const trainedOn = path.resolve(r.spec.model) === path.resolve(modelDir) ? "" : ` (trained on ${modelLabel(r.spec.model)})`;
    // LoRA adapters say so; Excitor's, the product's own, go unmarked as they always have.
    const kind = r.hasAdapter && adapterKind(r.dir) === "LoRA" ? " · LoRA" : "";
    const option: AdapterOption = { path: r.dir, name: `${name}${kind}`, label: `${name}${kind} · ${r.status}`, title: `${r.dir}${trainedOn}` };
    if (r.status === "running") option.disabled = "still training; it can be chosen when the run ends";
    else if (model) {
      const why = incompatibility(r.dir, model);
      if (why) {
        option.disabled = `not for ${modelLabel(modelDir)}: ${why}`;
        // Greyed out, the entry says why at a glance; hovering gives the whole reason.
        option.label += trainedOn ? ` — for ${modelLabel(r.spec.model)}` : " — does not fit this model";
      }
    }
    if (option.disabled) option.title = `${option.disabled}\n${option.title}`;
    return option;
  });
  return [...options.filter((o) => !o.disabled), ...options.filter((o) => o.disabled)];
}
