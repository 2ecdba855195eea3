/**
 * llama.cpp on one GGUF file, in a process of its own (bench/llama-cpp.ts starts it):
 * `node dist/bench/llama-cpp-worker.js <node-llama-cpp entry> <file.gguf> '<json LlamaCppSpec>'`.
 * Loads node-llama-cpp's prebuilt CPU binary (never a build, never a download), then greedy
 * decoding as llama.cpp's own tools do it: the prompt in one batch, then one token per decode.
 * Prints one JSON line (LlamaCppResult).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import type { LlamaCppResult, LlamaCppSpec } from "./llama-cpp";

/** The part of node-llama-cpp 3.x's API used here (it is not a dependency of the root package, so no types). */
interface NodeLlamaCpp {
  getLlama(o: Record<string, unknown>): Promise<Llama>;
}
interface Llama {
  llamaCppRelease: { repo: string; release: string };
  loadModel(o: { modelPath: string; gpuLayers: number }): Promise<LlamaModel>;
  dispose(): Promise<void>;
}
interface LlamaModel {
  createContext(o: Record<string, unknown>): Promise<{ getSequence(): Sequence }>;
}
interface Sequence {
  clearHistory(): Promise<void>;
  evaluate(tokens: number[], o: { temperature: number }): AsyncGenerator<number, void, void>;
}

/** Which of ggml's per-CPU builds the binary picked (libggml-cpu-<variant>.so), from this process's mappings. */
function cpuVariant(): string {
  try {
    const m = /libggml-cpu-([a-z0-9_]+)\.so/.exec(fs.readFileSync("/proc/self/maps", "utf8"));
    return m ? m[1] : "?";
  } catch {
    return "?";
  }
}

async function main(): Promise<void> {
  const [entry, gguf, specJson] = process.argv.slice(2);
  const s = JSON.parse(specJson) as LlamaCppSpec;
  const out: LlamaCppResult = { backend: "llama.cpp", gen: [], ids: [], loadSeconds: NaN, peakRssBytes: 0 };
  try {
    const nlc = (await import(pathToFileURL(entry).href)) as NodeLlamaCpp;
    const version = (JSON.parse(fs.readFileSync(path.join(path.dirname(entry), "..", "package.json"), "utf8")) as { version: string }).version;
    const t0 = performance.now();
    const llama = await nlc.getLlama({
      build: "never",
      gpu: false,
      skipDownload: true,
      usePrebuiltBinaries: true,
      progressLogs: false,
      logLevel: "error",
      maxThreads: s.threads,
    });
    const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
    const context = await model.createContext({
      contextSize: Math.ceil((s.prompt.length + s.genTokens + 16) / 256) * 256,
      batchSize: Math.max(32, s.prompt.length),
      threads: { ideal: s.threads, min: s.threads },
    });
    const seq = context.getSequence();
    out.loadSeconds = (performance.now() - t0) / 1000;
    out.backend = `llama.cpp ${llama.llamaCppRelease.release} (node-llama-cpp ${version}, CPU ${cpuVariant()}, ${s.threads} threads)`;
    for (let run = 0; run <= s.runs; run++) {
      await seq.clearHistory();
      // The first token comes out of the prompt's batch; each one after it is one decode step.
      const ids: number[] = [];
      let first = 0;
      for await (const id of seq.evaluate(s.prompt, { temperature: 0 })) {
        ids.push(id);
        if (ids.length === 1) first = performance.now();
        if (ids.length > s.genTokens) break;
      }
      const seconds = (performance.now() - first) / 1000;
      if (run === 0) out.ids = ids.slice(0, s.genTokens); // run 0 warms up
      else out.gen.push(s.genTokens / seconds);
    }
    await llama.dispose();
  } catch (e) {
    out.error = (e as Error).message.split("\n")[0];
  }
  out.peakRssBytes = process.resourceUsage().maxRSS * 1024;
  console.log(JSON.stringify(out));
}

void main();
