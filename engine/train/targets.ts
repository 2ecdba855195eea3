/**
 * What a run trains: an Excitor adapter (the product's job), a LoRA adapter (the comparison
 * method) or every base weight (full fine-tuning, also how the built-in demo model is
 * pretrained). The loop in trainer.ts sees only this.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ADAPTER_WEIGHTS, ExcitorAdapter } from "../excitor/adapter";
import { tensorName } from "../excitor/config";
import { writeSafetensors, type F32Tensor } from "../formats/safetensors";
import { writeFileAtomic } from "../fs-atomic";
import { LORA_WEIGHTS, type LoraAdapter } from "../lora/adapter";
import type { ModelRuntime } from "../runtime";

export interface TrainTarget {
  /** Trained tensors by name; the optimizer updates their data in place. */
  tensors: Record<string, F32Tensor>;
  parameterCount: number;
  /** Layers whose gates are reported (none in full training). */
  layers: number[];
  /** Whether AdamW's weight decay applies to a tensor. */
  decay(name: string): boolean;
  /** Sends the updated values to the runtime. */
  upload(): void;
  /** Writes the result to outDir (each file atomically). */
  save(outDir: string, step: number): void;
  /** The result's weights file in outDir, whose metadata records the step it was saved at. */
  weightsFile: string;
  gates(): number[][];
}

export function excitorTarget(rt: ModelRuntime, adapter: ExcitorAdapter): TrainTarget {
  rt.prepareTraining(adapter);
  const gates = new Set(adapter.config.layers.map((l) => tensorName(l, "gate")));
  return {
    tensors: adapter.namedTensors(),
    parameterCount: adapter.parameterCount,
    layers: adapter.config.layers,
    decay: (name) => !gates.has(name), // the spec: no weight decay on the gates
    upload: () => rt.setAdapter(adapter),
    save: (outDir, step) => adapter.save(outDir, { step: String(step) }),
    weightsFile: ADAPTER_WEIGHTS,
    gates: () => adapter.gates(),
  };
}

/**
 * LoRA as PEFT trains it: A and B of every adapted linear, and AdamW's weight decay on all of
 * them (the Hugging Face Trainer exempts only biases and norm weights, and LoRA has neither).
 */
export function loraTarget(rt: ModelRuntime, adapter: LoraAdapter): TrainTarget {
  rt.prepareTraining(adapter);
  return {
    tensors: adapter.namedTensors(),
    parameterCount: adapter.parameterCount,
    layers: adapter.config.layers,
    decay: () => true,
    upload: () => rt.setAdapter(adapter),
    save: (outDir, step) => adapter.save(outDir, { step: String(step) }),
    weightsFile: LORA_WEIGHTS,
    gates: () => [],
  };
}

const FULL_WEIGHTS = "model.safetensors";

/** Files of the base model folder that a fully trained copy keeps unchanged. */
const MODEL_SIDE_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"];

export function fullTarget(rt: ModelRuntime, baseModelDir: string): TrainTarget {
  const weights = rt.beginFullTraining();
  const tensors = Object.fromEntries(weights);
  const params = new Map([...weights].map(([n, t]) => [n, t.data]));
  return {
    tensors,
    parameterCount: [...weights.values()].reduce((n, t) => n + t.data.length, 0),
    layers: [],
    decay: (name) => tensors[name].shape.length > 1, // no decay on norms and biases (GPT-2/LLaMA practice)
    upload: () => rt.setBaseWeights(params),
    save: (outDir, step) => {
      writeSafetensors(path.join(outDir, FULL_WEIGHTS), tensors, { format: "pt", step: String(step) });
      for (const f of MODEL_SIDE_FILES) {
        const src = path.join(baseModelDir, f);
        if (fs.existsSync(src) && path.resolve(src) !== path.resolve(outDir, f)) writeFileAtomic(path.join(outDir, f), fs.readFileSync(src));
      }
    },
    weightsFile: FULL_WEIGHTS,
    gates: () => [],
  };
}
