/** The engine's public surface: what cli/ and extension/ import. Nothing here knows its caller. */
export { ExcitorInputError } from "./errors";
export { openModel, BACKEND_CHOICES, type BackendChoice, type OpenOptions } from "./load";
export type { ModelRuntime, DecodeSession, TrainBatch, LossAndGrads } from "./runtime";
export { readModelConfig, countBaseParameters, SUPPORTED_ARCHITECTURES, type ModelConfig } from "./model/config";
export { ExcitorAdapter } from "./excitor/adapter";
export { defaultLayers, type ExcitorConfig } from "./excitor/config";
export { TextTokenizer, type ChatMessage } from "./tokenizer/tokenizer";
export { readDataset, type DatasetRecord } from "./data/datasets";
export { encodeRecord, encodeChatPrompt, type Example } from "./data/encode";
export { alpacaPrompt } from "./data/templates";
export { train, TRAIN_DEFAULTS, METRICS_FILE, type TrainOptions, type TrainResult } from "./train/trainer";
export type { TrainEvent, RetentionMeasure } from "./train/events";
export { parseRetain, RETAIN_DEFAULT, RETAIN_NONE, RETENTION_FILE, type RetainSpec } from "./train/retention";
export { generate, type GenerateOptions, type GenerateResult } from "./generate/generate";
export { DEFAULT_SAMPLING, type SamplingOptions } from "./generate/sampler";
export { scoreIds, type ScoreResult } from "./score";
export { attentionReport, type AttentionReport } from "./analysis/attention";
