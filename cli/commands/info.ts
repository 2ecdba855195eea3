/**
 * `excitor info`: what the model is (shape, parameters, how its tensors are stored), what memory
 * it will take (its weights at each precision, to chat and to train: engine/model/memory.ts) and
 * where it runs (backend and why that one), and with --adapter what the adapter adds: the first
 * thing to look at when a model is slow, will not fit, or an adapter does not load.
 */
import type { Command } from "commander";
import { countBaseParameters, type ModelConfig } from "../../engine/model/config";
import { openModel, type BackendChoice } from "../../engine/load";
import type { Adapter } from "../../engine/adapters";
import { EXIT } from "../errors";
import { fmtBytes, fmtInt } from "../format";
import { estimateMemory, storedComposition, weightBytes, type HeldPrecision, type MemoryEstimate } from "../../engine/model/memory";
import { WEIGHT_PRECISIONS } from "../../engine/model/quantized";
import { openWeightSource, readModelConfigAt } from "../../engine/model/source";
import type { WeightSource } from "../../engine/model/weights";
import type { Runner } from "../options";
import type { ModelRuntime } from "../../engine/runtime";
import { attachAdapter, modelOptions } from "../session";

interface Opts {
  model: string;
  adapter?: string;
  backend: BackendChoice;
  weights: HeldPrecision;
  json?: boolean;
}

export function registerInfo(program: Command, run: Runner): void {
  modelOptions(program.command("info").description("describe the model, the backend and an adapter"))
    .option("--json", "print one JSON object")
    .action(run(async (c) => infoCommand(c.optsWithGlobals<Opts>())));
}

async function infoCommand(o: Opts): Promise<number> {
  const rt = await openModel(o.model, { backend: o.backend, weights: o.weights });
  try {
    const adapter = attachAdapter(rt, o.adapter);
    const source = openWeightSource(o.model, readModelConfigAt(o.model)); // headers only
    const info = describe(o, rt, adapter, source);
    process.stdout.write(o.json ? JSON.stringify(info) + "\n" : table(info, rt.config));
    return EXIT.ok;
  } finally {
    rt.dispose();
  }
}

type Info = ReturnType<typeof describe>;

function describe(o: Opts, rt: ModelRuntime, adapter: Adapter | null, source: WeightSource) {
  const c = rt.config;
  const parameters = countBaseParameters(c);
  // The adapter given is the one chatted with and trained on; without one, an Excitor adapter of the defaults.
  const plan = adapter?.method === "lora" ? { method: "lora" as const, loraR: adapter.config.r, loraTargets: adapter.config.targets, layers: adapter.config.layers } : adapter ? { numPrompts: adapter.config.numPrompts, rank: adapter.config.rank, layers: adapter.config.layers } : {};
  return {
    model: o.model,
    architecture: c.architecture,
    layers: c.numLayers,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    heads: c.numHeads,
    kvHeads: c.numKvHeads,
    headDim: c.headDim,
    vocabSize: c.vocabSize,
    contextLength: c.maxPositions,
    rope: { theta: c.ropeTheta, scaling: c.ropeScaling ?? null },
    slidingWindow: c.slidingWindow ?? null,
    parameters,
    storedAs: storedComposition(c, source),
    /** Bytes of the frozen weights at each precision: for training, and for chat (with the decode session's prepacked copy of quantized matrices). */
    weightsHeld: Object.fromEntries(
      (["stored", ...WEIGHT_PRECISIONS] as const).map((p) => {
        const w = weightBytes(c, source, p);
        return [p, { chat: w.weights + w.decodeCopy, train: w.weights }];
      }),
    ),
    memory: {
      weights: o.weights,
      chat: estimateMemory(c, source, o.weights, { task: "chat", method: adapter?.method === "lora" ? "none" : undefined, layers: plan.layers }),
      train: estimateMemory(c, source, o.weights, { task: "train", ...plan }),
    },
    backend: rt.backend,
    backendNote: rt.backendNote,
    adapter: adapter ? describeAdapter(o.adapter!, adapter, parameters) : undefined,
  };
}

function describeAdapter(dir: string, a: Adapter, baseParams: number) {
  const common = {
    dir,
    method: a.method,
    layers: a.config.layers,
    trainableParameters: a.parameterCount,
    /** Of base + adapter parameters. */
    trainableShare: a.parameterCount / (baseParams + a.parameterCount),
    template: a.template ?? null,
  };
  if (a.method === "lora") return { ...common, rank: a.config.r, alpha: a.config.alpha, targets: a.config.targets };
  const all = a.gates().flat();
  return {
    ...common,
    numPrompts: a.config.numPrompts,
    rank: a.config.rank,
    gates: { min: Math.min(...all), max: Math.max(...all), meanAbs: all.reduce((s, x) => s + Math.abs(x), 0) / all.length },
  };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** "2.31 GiB at 4 × 512 tokens a pass (weights as stored 941 MiB, decode copy …)": the total, then what takes it. */
function memoryLine(e: MemoryEstimate, weights: string): string {
  const parts: [string, number][] = [
    [`weights ${e.precision === "stored" ? "as stored" : e.precision}${e.precision !== weights ? ` (full fine-tuning holds f32)` : ""}`, e.weights],
    ["decode copy", e.decodeCopy],
    [e.task === "chat" ? "KV cache" : "monitor's KV cache", e.kvCache],
    ["activations", e.activations],
    ["trainable tensors and AdamW", e.optimizer],
    ["runtime", e.overhead],
  ];
  const shape = e.task === "chat" ? `${e.context} tokens of context` : `${e.batch} × ${e.context} tokens a pass`;
  return `${fmtBytes(e.total)} at ${shape} (${parts.filter(([, b]) => b > 0).map(([k, b]) => `${k} ${fmtBytes(b)}`).join(", ")})`;
}

function table(i: Info, c: ModelConfig): string {
  const rope = `theta ${c.ropeTheta}` + (!c.ropeScaling ? "" : c.ropeScaling.type === "factors" ? ", Llama 3 scaling (per-frequency factors from the GGUF file)" : `, ${c.ropeScaling.type} scaling x${c.ropeScaling.factor}`);
  const rows: [string, string][] = [
    ["model", i.model],
    ["architecture", c.architecture],
    ["layers", String(c.numLayers)],
    ["hidden size", `${c.hiddenSize} (MLP ${c.intermediateSize})`],
    ["heads", `${c.numHeads} query, ${c.numKvHeads} key/value${c.numKvHeads < c.numHeads ? " (grouped-query)" : ""}`],
    ["head dim", String(c.headDim)],
    ["vocabulary", String(c.vocabSize)],
    ["context", `${c.maxPositions} tokens${c.slidingWindow ? ` (sliding window ${c.slidingWindow})` : ""}`],
    ["rope", rope],
    ["parameters", `${fmtInt(i.parameters)} (${(i.parameters / 1e6).toFixed(2)} M)`],
    ["stored as", i.storedAs.map((s, k) => `${s.type} ${pct(s.byteShare)}${k === 0 ? " of bytes" : ""} (${pct(s.parameterShare)}${k === 0 ? " of parameters" : ""})`).join(", ")],
    [
      "weights held",
      Object.entries(i.weightsHeld)
        .map(([p, b]) => `${p === "stored" ? "as stored" : p} ${fmtBytes(b.train)}${b.chat !== b.train ? ` (${fmtBytes(b.chat)} to chat)` : ""}`)
        .join(" · "),
    ],
    ["memory to chat", memoryLine(i.memory.chat, i.memory.weights)],
    ["memory to train", memoryLine(i.memory.train, i.memory.weights)],
    ["backend", i.backend],
    ["backend note", i.backendNote],
  ];
  const a = i.adapter;
  if (a)
    rows.push(
      ["adapter", `${a.dir} (${a.method === "lora" ? "LoRA" : "Excitor"})`],
      ...("numPrompts" in a
        ? ([["prompts (K)", String(a.numPrompts)], ["rank (r)", String(a.rank)]] as [string, string][])
        : ([["rank (r)", String(a.rank)], ["alpha", `${a.alpha} (scaling ${a.alpha / a.rank})`], ["target modules", a.targets.join(",")]] as [string, string][])),
      ["adapted layers", a.layers.join(",")],
      ["trainable parameters", `${fmtInt(a.trainableParameters)} (${(100 * a.trainableShare).toFixed(3)}% of total)`],
      ...("gates" in a ? ([["gates", `min ${a.gates.min.toFixed(4)}, max ${a.gates.max.toFixed(4)}, mean |g| ${a.gates.meanAbs.toFixed(4)}`]] as [string, string][]) : []),
    );
  return rows.map(([k, v]) => `${k.padEnd(22)}${v}\n`).join("");
}
