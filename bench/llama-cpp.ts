/**
 * The benchmark's llama.cpp peer: node-llama-cpp 3.x with its prebuilt CPU binary, installed by
 * bench/setup.sh into bench/llama-cpp/node_modules (never by the root `npm ci`, never in the
 * .vsix). bench/llama-cpp-worker.ts runs it in a process of its own, so that its peak memory is
 * its own; this side finds the install, starts the worker and reads its one JSON line.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

const repo = path.resolve(__dirname, "../..");

/** What the worker does: greedy decoding of `genTokens` tokens after `prompt`, `runs` timed runs after one warm-up. */
export interface LlamaCppSpec {
  threads: number;
  prompt: number[];
  genTokens: number;
  runs: number;
}

export interface LlamaCppResult {
  /** "llama.cpp <release> (node-llama-cpp <version>, <cpu variant>)". */
  backend: string;
  /** Decode tokens/s of each timed run (prompt processing excluded). */
  gen: number[];
  /** The greedy ids of the first run, prompt excluded. */
  ids: number[];
  loadSeconds: number;
  peakRssBytes: number;
  error?: string;
}

/** The folder bench/setup.sh installs node-llama-cpp into. */
export const LLAMA_CPP_DIR = path.join(repo, "bench", "llama-cpp");

/** node-llama-cpp's ESM entry point, if bench/setup.sh installed it with its prebuilt linux-x64 binary. */
export function llamaCppEntry(dir = LLAMA_CPP_DIR): string | undefined {
  const entry = path.join(dir, "node_modules", "node-llama-cpp", "dist", "index.js");
  const bins = path.join(dir, "node_modules", "@node-llama-cpp", `${process.platform}-${process.arch}`);
  return fs.existsSync(entry) && fs.existsSync(bins) ? entry : undefined;
}

/** Why llama.cpp cannot run here, or undefined when it can. */
export function llamaCppMissing(dir = LLAMA_CPP_DIR): string | undefined {
  if (process.platform !== "linux" || process.arch !== "x64")
    return `the llama.cpp peer is pinned to node-llama-cpp's prebuilt linux-x64 binary; this is ${process.platform}-${process.arch}`;
  return llamaCppEntry(dir) ? undefined : `node-llama-cpp is not installed in ${path.relative(repo, dir)}: run \`bash bench/setup.sh\``;
}

/**
 * The worker's result from its output: the last stdout line that parses as JSON (node-llama-cpp
 * may log before it), else an error naming the last stderr line or the exit status.
 */
export function parseLlamaCppOutput(stdout: string, stderr: string, status: number | null): LlamaCppResult {
  const lines = stdout.trim().split("\n").reverse();
  for (const line of lines) {
    if (!line.startsWith("{")) continue;
    try {
      const r = JSON.parse(line) as Partial<LlamaCppResult>;
      if (Array.isArray(r.gen)) return { backend: r.backend ?? "llama.cpp", gen: r.gen, ids: r.ids ?? [], loadSeconds: r.loadSeconds ?? NaN, peakRssBytes: r.peakRssBytes ?? 0, error: r.error };
    } catch {
      // a log line that starts with "{": keep looking
    }
  }
  const why = stderr.trim().split("\n").filter(Boolean).pop() ?? (status === null ? "killed" : `exit ${status}`);
  return { backend: "llama.cpp", gen: [], ids: [], loadSeconds: NaN, peakRssBytes: 0, error: why };
}

/**
 * The environment the worker runs in: node-llama-cpp may neither download nor build anything
 * (it has no telemetry; its only network use is fetching llama.cpp sources or binaries, which
 * NODE_LLAMA_CPP_SKIP_DOWNLOAD and `build: "never"` rule out), and uses only the CPU.
 */
export function llamaCppEnv(): NodeJS.ProcessEnv {
  return { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: "true", NODE_LLAMA_CPP_GPU: "false", NODE_LLAMA_CPP_LOG_LEVEL: "error" };
}

/** Runs llama.cpp on `gguf` in a process of its own (dist/bench/llama-cpp-worker.js). */
export function runLlamaCpp(gguf: string, spec: LlamaCppSpec, dir = LLAMA_CPP_DIR): LlamaCppResult {
  const missing = llamaCppMissing(dir);
  if (missing) return { backend: "llama.cpp", gen: [], ids: [], loadSeconds: NaN, peakRssBytes: 0, error: missing };
  const worker = path.join(repo, "dist", "bench", "llama-cpp-worker.js");
  const r = spawnSync(process.execPath, [worker, llamaCppEntry(dir)!, gguf, JSON.stringify(spec)], { encoding: "utf8", maxBuffer: 1 << 24, env: llamaCppEnv() });
  return parseLlamaCppOutput(r.stdout ?? "", r.stderr ?? "", r.status);
}
