/**
 * A model path: a Hugging Face folder (config.json + safetensors) or a GGUF file. The two
 * functions every opener uses, so a GGUF file goes everywhere a folder goes.
 */
import { isGgufPath } from "../formats/gguf";
import { readModelConfig, type ModelConfig } from "./config";
import { GgufWeights, readGgufConfig } from "./gguf-model";
import { WeightFiles, type WeightSource } from "./weights";

export function readModelConfigAt(modelPath: string): ModelConfig {
  return isGgufPath(modelPath) ? readGgufConfig(modelPath) : readModelConfig(modelPath);
}

/** The model's weights, checked against its config (names and shapes; no tensor data is read). */
export function openWeightSource(modelPath: string, config: ModelConfig): WeightSource {
  return isGgufPath(modelPath) ? GgufWeights.open(modelPath, config) : WeightFiles.open(modelPath, config);
}
