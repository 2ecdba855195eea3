/**
 * `excitor info`: what the model is (shape, parameters) and where it runs (backend and why
 * that one), and with --adapter what the adapter adds: the first thing to look at when a
 * model is slow or an adapter does not load.
 */
import type { Command } from "commander";
import { countBaseParameters, type ModelConfig } from "../../engine/model/config";
import { openModel, type BackendChoice } from "../../engine/load";
import type { Adapter } from "../../engine/adapters";
import { EXIT } from "../errors";
import { fmtInt } from "../format";
import type { Runner } from "../options";
import type { ModelRuntime } from "../../engine/runtime";
import { attachAdapter, modelOptions } from "../session";

interface Opts {
  model: string;
  adapter?: string;
  backend: BackendChoice;
  json?: boolean;
}

export function registerInfo(program: Command, run: Runner): void {
  modelOptions(program.command("info").description("describe the model, the backend and an adapter"))
    .option("--json", "print one JSON object")
    .action(run(async (c) => infoCommand(c.optsWithGlobals<Opts>())));
}

async function infoCommand(o: Opts): Promise<number> {
  const rt = await openModel(o.model, { backend: o.backend });
  try {
    const adapter = attachAdapter(rt, o.adapter);
    const info = describe(o, rt, adapter);
    process.stdout.write(o.json ? JSON.stringify(info) + "\n" : table(info, rt.config));
    return EXIT.ok;
  } finally {
    rt.dispose();
  }
}

type Info = ReturnType<typeof describe>;

function describe(o: Opts, rt: ModelRuntime, adapter: Adapter | null) {
  const c = rt.config;
  const parameters = countBaseParameters(c);
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
