/** What the benchmark runs: the configurations, and the spec/result a worker (JS engine or PyTorch) exchanges. */
import { defaultLayers } from "../engine/excitor/config";
import type { BenchShape } from "./random-model";

/** One timed workload on one model; the fields bench/peer_torch.py reads too. */
export interface WorkerSpec {
  batch: number;
  seq: number;
  /** Timed training steps after one warm-up step (0: generation only). */
  trainSteps: number;
  genPrompt: number;
  genTokens: number;
  /** Timed generation runs after one warm-up run (0: none). */
  genRuns: number;
  numPrompts: number;
  rank: number;
  adapted: number[];
  /** Generate with the base model alone (as llama.cpp runs the file); absent: with the Excitor adapter. */
  genBase?: boolean;
  /** How the engine holds frozen weights (openModel's `weights`); absent: as stored. */
  weights?: "stored" | "f32" | "q8" | "q4";
}

export interface WorkerResult {
  backend: string;
  note?: string;
  /** Tokens/s of each timed training step and generation run. */
  train: number[];
  gen: number[];
  peakRssBytes: number;
  /** Why the engine could not run this configuration. */
  error?: string;
}

export interface BenchConfig {
  shape: BenchShape;
  spec: WorkerSpec;
  /** Fewer steps for the tfjs engine where it is slow (the issue allows it). */
  tfjsSpec?: Partial<WorkerSpec>;
}

export const CONFIGS: BenchConfig[] = [
  {
    // The fixed configuration: dim 256, 4 layers, seq 128, batch 4 = 512 tokens per step.
    shape: { name: "tiny", hidden: 256, intermediate: 688, layers: 4, heads: 8, kvHeads: 4, vocab: 2048, scale: 0.05 },
    spec: { batch: 4, seq: 128, trainSteps: 7, genPrompt: 16, genTokens: 64, genRuns: 5, numPrompts: 10, rank: 8, adapted: [0, 1, 2, 3] },
  },
  {
    // TinyLlama-1.1B's shape (random weights), the spec's K 30, r 16 on its default top 21 of 22 layers.
    shape: { name: "tinyllama-1.1b", hidden: 2048, intermediate: 5632, layers: 22, heads: 32, kvHeads: 4, vocab: 32000, scale: 0.02 },
    spec: { batch: 1, seq: 256, trainSteps: 3, genPrompt: 16, genTokens: 16, genRuns: 3, numPrompts: 30, rank: 16, adapted: defaultLayers(22) },
    tfjsSpec: { trainSteps: 1, genRuns: 1 },
  },
];
