/**
 * `npm run bench`: the project's engines and an eager PyTorch peer, side by side, in one
 * invocation, on the same configurations (bench/spec.ts): training tokens/s (forward, loss,
 * backward to the Excitor tensors, AdamW), greedy KV-cached generation tokens/s with the
 * weight bandwidth it implies, and peak resident memory. Each engine runs in a process of
 * its own, one at a time. Medians of the timed runs; ratios against PyTorch from this run.
 *
 *   npm run bench                 every configuration
 *   npm run bench -- --only tiny  one configuration by name
 *   npm run bench -- --only multimodal   training with pictures vs text only, on the multimodal demo
 *   npm run bench -- --only quantized    f32 / q8 / q4 memory and speed, decoding against llama.cpp (bench/quantized.ts)
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fmtInt } from "../cli/format";
import { decodeWeightBytes, randomModel, trainFlopsPerToken } from "./random-model";
import { CONFIGS, type BenchConfig, type WorkerResult, type WorkerSpec } from "./spec";
import { median, runWorker } from "./worker-run";
import { quantizedSection } from "./quantized";

const repo = path.resolve(__dirname, "../..");
const THREADS = os.availableParallelism();

/** Debian's python3 with python3-torch (bench/setup.sh installs it). */
function python(): string {
  for (const p of ["/usr/bin/python3", "python3"]) if (spawnSync(p, ["-c", "import torch"]).status === 0) return p;
  throw new Error("no python3 with torch: run `bash bench/setup.sh` (installs Debian's python3-torch)");
}

interface Row {
  config: string;
  engine: string;
  result: WorkerResult;
}

function benchConfig(c: BenchConfig, py: string): Row[] {
  const t0 = performance.now();
  const dir = randomModel(c.shape);
  process.stderr.write(`${c.shape.name}: model ready in ${((performance.now() - t0) / 1000).toFixed(0)} s (${dir})\n`);
  const rows: Row[] = [];
  const worker = path.join(repo, "dist", "bench", "engine-worker.js");
  const peerSpec = { ...c.shape, ...c.spec, threads: THREADS };
  const jobs: [string, () => WorkerResult][] = [
    ["pytorch (eager)", () => runWorker(py, [path.join(repo, "bench", "peer_torch.py"), JSON.stringify(peerSpec)], { OPENBLAS_NUM_THREADS: String(THREADS) })],
    ["excitor onnxruntime", () => runWorker(process.execPath, [worker, dir, "ort", JSON.stringify(c.spec)])],
    ["excitor tfjs", () => runWorker(process.execPath, [worker, dir, "tfjs", JSON.stringify({ ...c.spec, ...c.tfjsSpec } satisfies WorkerSpec)])],
  ];
  for (const [engine, run] of jobs) {
    process.stderr.write(`${c.shape.name}: ${engine}...\n`);
    rows.push({ config: c.shape.name, engine, result: run() });
  }
  return rows;
}

function table(rows: Row[]): string {
  const out = [
    "| config | engine | train tok/s | × PyTorch | train GFLOP/s | generate tok/s | × PyTorch | weights read GB/s | peak RSS MiB | × PyTorch |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    const peer = rows.find((p) => p.config === r.config && p.engine.startsWith("pytorch"))!.result;
    const { shape, spec } = CONFIGS.find((c) => c.shape.name === r.config)!;
    const res = r.result;
    if (res.error) {
      const why = res.error.replace(/^[^:]*: /, "").replace(/\|/g, "/"); // the message without the model's path
      out.push(`| ${r.config} | ${r.engine} | cannot run: ${why} | | | | | | | |`);
      continue;
    }
    const [tr, gn] = [median(res.train), median(res.gen)];
    const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) ? `${(a / b).toFixed(2)}×` : "–");
    out.push(
      `| ${r.config} | ${r.engine} (${res.backend}) | ${Number.isFinite(tr) ? fmtInt(Math.round(tr)) : "–"} | ${ratio(tr, median(peer.train))} | ` +
        `${((tr * trainFlopsPerToken(shape, Math.min(...spec.adapted))) / 1e9).toFixed(0)} | ${gn.toFixed(1)} | ${ratio(gn, median(peer.gen))} | ` +
        `${((gn * decodeWeightBytes(shape)) / 1e9).toFixed(1)} | ${fmtInt(Math.round(res.peakRssBytes / 2 ** 20))} | ${ratio(res.peakRssBytes, peer.peakRssBytes)} |`,
    );
  }
  return out.join("\n");
}

/** GFLOP/s of one matrix multiplication per training GEMM shape of `c`, for each engine's library. */
function gemmTable(c: BenchConfig, py: string): string {
  const { hidden: C, intermediate: I, vocab: V } = c.shape;
  const M = c.spec.batch * c.spec.seq;
  const shapes: [number, number, number][] = [[M, C, I], [M, I, C], [M, C, C], [M, C, V]];
  const ort = runJson(process.execPath, [path.join(repo, "dist", "bench", "gemm-worker.js"), JSON.stringify(shapes)]);
  const torch = runJson(py, [path.join(repo, "bench", "peer_torch.py"), "--gemm", JSON.stringify(shapes)], { OPENBLAS_NUM_THREADS: String(THREADS) });
  const rows = shapes.map(([m, k, n], i) => `| ${m} × ${k} → ${n} | ${ort?.[i]?.toFixed(0) ?? "–"} | ${torch?.[i]?.toFixed(0) ?? "–"} |`);
  return [`| ${c.shape.name} GEMM (rows × in → out) | onnxruntime (MLAS) GFLOP/s | PyTorch (OpenBLAS) GFLOP/s |`, "|---|---:|---:|", ...rows].join("\n");
}

function runJson(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): number[] | undefined {
  const r = spawnSync(cmd, args, { encoding: "utf8", env: { ...process.env, ...env } });
  try {
    return JSON.parse(r.stdout.trim().split("\n").pop() ?? "") as number[];
  } catch {
    return undefined;
  }
}

/**
 * Multimodal training against text-only training on the same questions, each engine in its own
 * process: the ratio says what the pictures cost per step once their features are cached.
 */
function visionTable(): string {
  const out = [
    "| multimodal demo (600 questions, batch 16) | engine | text only tok/s | with pictures tok/s | × text only | encoding the pictures once |",
    "|---|---|---:|---:|---:|---:|",
  ];
  for (const backend of ["ort", "tfjs"]) {
    process.stderr.write(`multimodal: ${backend}...\n`);
    const r = spawnSync(process.execPath, [path.join(repo, "dist", "bench", "vision-worker.js"), backend, "12"], { encoding: "utf8", maxBuffer: 1 << 24 });
    let res: { backend?: string; textOnly?: number[]; withImages?: number[]; encodeSeconds?: number; images?: number; error?: string };
    try {
      res = JSON.parse(r.stdout.trim().split("\n").pop() ?? "");
    } catch {
      res = { error: (r.stderr || `exit ${r.status}`).trim().split("\n").pop() };
    }
    if (res.error || !res.textOnly || !res.withImages) {
      out.push(`| demo | ${backend} | cannot run: ${(res.error ?? "no result").replace(/\|/g, "/")} | | | |`);
      continue;
    }
    const [t, v] = [median(res.textOnly), median(res.withImages)];
    out.push(`| demo | ${res.backend} | ${fmtInt(Math.round(t))} | ${fmtInt(Math.round(v))} | ${(v / t).toFixed(2)}× | ${res.images} pictures in ${res.encodeSeconds?.toFixed(1)} s |`);
  }
  return out.join("\n");
}

function main(): void {
  const args = process.argv.slice(2);
  const only = args.includes("--only") ? args[args.indexOf("--only") + 1] : undefined;
  if (only === "multimodal") {
    const md = visionTable();
    console.log(`\nExcitor benchmark, multimodal training — ${os.cpus().length} cores; medians\n\n${md}`);
    return;
  }
  const outDir = path.join(repo, "out", "bench");
  fs.mkdirSync(outDir, { recursive: true });
  /** The quantized section, printed and written to out/bench/quantized.{md,json}. */
  const quantized = (): string => {
    const q = quantizedSection();
    fs.writeFileSync(path.join(outDir, "quantized.json"), JSON.stringify({ date: new Date().toISOString(), ...q.measures }, null, 2) + "\n");
    fs.writeFileSync(path.join(outDir, "quantized.md"), q.md + "\n");
    return q.md;
  };
  if (only === "quantized") {
    console.log(`\nExcitor benchmark — ${os.cpus().length} cores (${os.cpus()[0]?.model ?? "?"}); medians\n\n${quantized()}`);
    return;
  }
  const configs = CONFIGS.filter((c) => !only || c.shape.name === only);
  if (!configs.length) throw new Error(`--only: no configuration named ${only} (have ${CONFIGS.map((c) => c.shape.name).join(", ")}, multimodal, quantized)`);
  const py = python();
  const rows = configs.flatMap((c) => benchConfig(c, py));
  // The matmul rate each engine's library reaches on the largest configuration's shapes: what bounds its training.
  const largest = configs[configs.length - 1];
  const md = `${table(rows)}\n\n${gemmTable(largest, py)}${only ? "" : `\n\n${visionTable()}\n\n${quantized()}`}`;
  console.log(`\nExcitor benchmark — ${os.cpus().length} cores (${os.cpus()[0]?.model ?? "?"}), ${THREADS} threads per engine, float32; medians\n`);
  console.log(md);
  for (const engine of new Set(rows.map((r) => r.engine))) {
    const note = rows.find((r) => r.engine === engine && r.result.note)?.result.note;
    if (note) console.log(`\n${engine}: ${note}`);
  }
  fs.writeFileSync(path.join(outDir, "results.json"), JSON.stringify({ date: new Date().toISOString(), threads: THREADS, rows }, null, 2) + "\n");
  fs.writeFileSync(path.join(outDir, "results.md"), md + "\n");
}

main();
