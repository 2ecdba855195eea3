/**
 * The one place that loads onnxruntime-node and picks its execution provider. `auto` tries
 * CUDA (Linux and Windows) when its provider library is installed, with a one-node probe
 * session, and otherwise runs on the CPU; the reason goes in the note that `excitor info`, the
 * training header and the extension show. DirectML and CoreML run only when asked for
 * (`--backend ort-dml`, `ort-coreml`): onnxruntime places the ops they lack (this engine's
 * graphs use ScatterND, GatherElements, OneHot) on the CPU and copies between the two, and no
 * such machine was available to measure whether that beats the CPU alone.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type * as OrtModule from "onnxruntime-node";
import { ExcitorInputError } from "../errors";
import { Graph } from "../onnx/graph";

export type Ort = typeof OrtModule;
export type OrtProvider = "cpu" | "cuda" | "dml" | "coreml";
export type OrtPreference = "auto" | OrtProvider;

export interface OrtInfo {
  ort: Ort;
  provider: OrtProvider;
  /** Which provider runs and why another does not. */
  note: string;
  sessionOptions: OrtModule.InferenceSession.SessionOptions;
}

/** GPU providers `auto` tries on this platform. */
function autoProviders(): OrtProvider[] {
  return process.platform === "win32" || process.platform === "linux" ? ["cuda"] : [];
}

/** Intra-op threads: EXCITOR_THREADS, else every core the OS gives this process. */
export function ortThreads(): number {
  const n = Number(process.env.EXCITOR_THREADS);
  return Number.isInteger(n) && n > 0 ? n : os.availableParallelism();
}

/**
 * onnxruntime-node's native library queues usage events with a device id in
 * ~/.cache/Microsoft/DeveloperTools/.onnxruntime/onnxruntime.db for upload to Microsoft, and
 * leaves a /tmp/mat-debug-<pid>.log, unless ORT_DISABLE_TELEMETRY is set when it loads. A local
 * tuning tool sends and queues nothing, so every process that loads it (CLI, serve, bench,
 * tests, anything built on the engine) goes through here. A user's own value is overridden:
 * there is no setting that turns it back on.
 */
export const ORT_TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY";

/** onnxruntime-node, or a one-line reason it cannot load. */
export function loadOrt(): Ort | string {
  process.env[ORT_TELEMETRY_ENV] = "1"; // before the native library is first loaded: it reads the variable then
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require("onnxruntime-node") as Ort;
  } catch (e) {
    return `onnxruntime-node not usable (${String((e as Error)?.message ?? e).split("\n")[0].slice(0, 160)})`;
  }
}

let cached: Map<OrtPreference, OrtInfo> | undefined;

export async function initOrt(pref: OrtPreference = "auto"): Promise<OrtInfo> {
  cached ??= new Map();
  const hit = cached.get(pref);
  if (hit) return hit;
  const ort = loadOrt();
  if (typeof ort === "string") throw new ExcitorInputError(`--backend: ${ort}`);
  const threads = ortThreads();
  const options = (provider: OrtProvider): OrtModule.InferenceSession.SessionOptions => ({
    executionProviders: [provider],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    // The memory pattern pre-plans one block per input shape on top of what the first run
    // allocated: for a training step that doubled the activations' memory (1.1B shape: peak
    // 6.6 GB -> 5.5 GB without it, measured), and the decode graph's shapes change every token.
    enableMemPattern: false,
    logSeverityLevel: 3, // errors only: ORT's warnings (e.g. nodes placed on the CPU) are not the user's to act on
  });
  const reasons: string[] = [];
  const candidates = pref === "auto" ? autoProviders() : pref === "cpu" ? [] : [pref];
  for (const provider of candidates) {
    const missing = missingProviderLibrary(provider);
    if (missing) {
      reasons.push(`${provider} not available (${missing})`);
      continue;
    }
    try {
      await (await ort.InferenceSession.create(probeGraph(), options(provider))).release();
      const info: OrtInfo = { ort, provider, note: `onnxruntime ${ort.env.versions.node} on ${provider}`, sessionOptions: options(provider) };
      cached.set(pref, info);
      return info;
    } catch (e) {
      reasons.push(`${provider} not available (${String((e as Error)?.message ?? e).split("\n")[0].slice(0, 120)})`);
    }
  }
  if (pref !== "auto" && pref !== "cpu") throw new ExcitorInputError(`--backend: ort-${pref} was requested but ${reasons.join("; ")}`);
  const note = `onnxruntime ${ort.env.versions.node} on the CPU, ${threads} thread${threads === 1 ? "" : "s"}` + (reasons.length ? `; ${reasons.join("; ")}` : "");
  const info: OrtInfo = { ort, provider: "cpu", note, sessionOptions: options("cpu") };
  cached.set(pref, info);
  return info;
}

/** Where onnxruntime's native libraries are: beside the bundles (dist/bin, the .vsix) or in node_modules. */
function nativeDir(): string | undefined {
  const rel = path.join("bin", "napi-v6", process.platform, process.arch);
  const candidates = [path.join(__dirname, "..", rel)];
  try {
    candidates.push(path.join(path.dirname(require.resolve("onnxruntime-node")), "..", rel));
  } catch {
    // not installed as a package: only the bundled copy can exist
  }
  return candidates.find((d) => fs.existsSync(path.join(d, "onnxruntime_binding.node")));
}

/**
 * onnxruntime-node's CUDA provider is a separate library that its install step downloads
 * (CUDA 12, Linux x64 and Windows); without it a probe only prints a native error, so look first.
 */
function missingProviderLibrary(provider: OrtProvider): string | undefined {
  if (provider !== "cuda") return undefined;
  const file = process.platform === "win32" ? "onnxruntime_providers_cuda.dll" : "libonnxruntime_providers_cuda.so";
  const dir = nativeDir();
  if (dir && fs.existsSync(path.join(dir, file))) return undefined;
  return `${file} is not installed; onnxruntime-node's install step fetches it with ONNXRUNTIME_NODE_INSTALL=cuda12 on a machine with CUDA 12`;
}

/** One MatMul: enough for a provider to prove it loads and runs. */
function probeGraph(): Uint8Array {
  const g = new Graph("probe");
  const x = g.input("x", "float32", [1, 4]);
  g.output(g.matmul(x, g.transpose(x, [1, 0])), "y");
  return g.encode();
}
