/**
 * The pure parts of the benchmark's quantized section (bench/quantized.ts): the random GGUF files
 * it writes (read back by the project's reader, on a tiny shape), the llama.cpp worker's result
 * parsing, the tables and their target marks; and, when bench/setup.sh has installed
 * node-llama-cpp, that llama.cpp runs a file our writer wrote and greedily picks our engine's ids.
 * Nothing here is timed.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FIXTURES } from "./fixtures";
import { readGguf, readTensorBytes } from "../engine/formats/gguf";
import { dequantize } from "../engine/formats/ggml-quants";
import { readGgufConfig } from "../engine/model/gguf-model";
import { openModel } from "../engine/load";
import { ggufTensors, spmVocab, tensorValues, writeRandomGguf, type BenchGgufType } from "../bench/random-gguf";
import type { BenchShape } from "../bench/random-model";
import { llamaCppMissing, parseLlamaCppOutput, runLlamaCpp, type LlamaCppResult } from "../bench/llama-cpp";
import { decodeTable, memoryTable, targetRows, targetTable, type QuantMeasures } from "../bench/quantized-table";
import type { WorkerResult } from "../bench/spec";

/** Every width a multiple of 32 (ggml's Q8_0 / Q4_0 block); 320 tokens: the 259 special and byte tokens and 61 pieces. */
const TINY: BenchShape = { name: "tiny", hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 320, scale: 0.02 };

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "excitor-bench-gguf-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));
const written = new Map<BenchGgufType, string>();
function tinyFile(type: BenchGgufType): string {
  if (!written.has(type)) {
    const file = path.join(tmp, `tiny-${type}.gguf`);
    writeRandomGguf(TINY, type, file);
    written.set(type, file);
  }
  return written.get(type)!;
}

for (const type of ["Q8_0", "Q4_0"] as BenchGgufType[]) {
  test(`the random ${type} GGUF reads back: llama metadata, every matrix ${type} and every norm F32 at its shape, values within ${type}'s rounding of the generated ones`, () => {
    const g = readGguf(tinyFile(type));
    assert.equal(g.version, 3);
    assert.equal(g.metadata.get("general.architecture"), "llama");
    assert.equal(g.metadata.get("general.file_type"), type === "Q8_0" ? 7 : 2); // llama_ftype MOSTLY_Q8_0, MOSTLY_Q4_0
    const d = TINY.hidden / TINY.heads;
    const want: Record<string, number[]> = {
      "token_embd.weight": [TINY.vocab, TINY.hidden],
      "output.weight": [TINY.vocab, TINY.hidden],
      "output_norm.weight": [TINY.hidden],
    };
    for (let i = 0; i < TINY.layers; i++)
      Object.assign(want, {
        [`blk.${i}.attn_norm.weight`]: [TINY.hidden],
        [`blk.${i}.ffn_norm.weight`]: [TINY.hidden],
        [`blk.${i}.attn_q.weight`]: [TINY.heads * d, TINY.hidden],
        [`blk.${i}.attn_k.weight`]: [TINY.kvHeads * d, TINY.hidden],
        [`blk.${i}.attn_v.weight`]: [TINY.kvHeads * d, TINY.hidden],
        [`blk.${i}.attn_output.weight`]: [TINY.hidden, TINY.heads * d],
        [`blk.${i}.ffn_gate.weight`]: [TINY.intermediate, TINY.hidden],
        [`blk.${i}.ffn_up.weight`]: [TINY.intermediate, TINY.hidden],
        [`blk.${i}.ffn_down.weight`]: [TINY.hidden, TINY.intermediate],
      });
    assert.deepEqual([...g.tensors.keys()].sort(), Object.keys(want).sort());
    for (const [name, shape] of Object.entries(want)) {
      const t = g.tensors.get(name)!;
      assert.deepEqual(t.shape, shape, name);
      assert.equal(t.type.name, shape.length === 1 ? "F32" : type, name);
    }
    // The reader's config is the shape the file was written for.
    const c = readGgufConfig(g.file);
    assert.deepEqual([c.hiddenSize, c.intermediateSize, c.numLayers, c.numHeads, c.numKvHeads, c.vocabSize], [64, 128, 2, 4, 2, 320]);

    // Each 32-value block is d·q with d = max|x|/127 (Q8_0) or max|x|/8 (Q4_0), d stored as
    // float16 (relative error ≤ 2^-11): a value is off by at most d/2 (Q8_0), or d where Q4_0's
    // codes −8..7 clip the block's far end, plus |q|·d·2^-11 ≤ (|x| + d)·2^-11 for the float16 d.
    for (const spec of ggufTensors(TINY)) {
      const t = g.tensors.get(spec.name)!;
      const x = tensorValues(spec, TINY.scale);
      const bytes = readTensorBytes(g, t);
      if (spec.norm) {
        assert.deepEqual(new Float32Array(bytes.buffer, bytes.byteOffset, x.length), x, spec.name);
        continue;
      }
      const y = dequantize(t.type, bytes, x.length);
      for (let b = 0; b < x.length; b += 32) {
        let amax = 0;
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j]));
        const d = type === "Q8_0" ? amax / 127 : amax / 8;
        for (let j = 0; j < 32; j++) {
          const bound = (type === "Q8_0" ? d / 2 : d) + (Math.abs(x[b + j]) + d) * 2 ** -11 + 1e-7;
          assert.ok(Math.abs(x[b + j] - y[b + j]) <= bound, `${spec.name}[${b + j}]: ${x[b + j]} stored as ${y[b + j]}`);
        }
      }
    }
  });
}

test("the random values have the asked spread and the norms are ones", () => {
  const [embd] = ggufTensors(TINY);
  const v = tensorValues(embd, 0.02);
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
  assert.ok(Math.abs(std - 0.02) < 0.001, `std ${std}`);
  assert.ok(Math.abs(mean) < 0.001, `mean ${mean}`);
  assert.ok(ggufTensors(TINY).filter((t) => t.norm).every((t) => tensorValues(t, 0.02).every((x) => x === 1)));
});

test("the SentencePiece vocabulary: Llama 2's special and byte tokens at Llama 2's ids, then unique pieces, 32000 in all", () => {
  const v = spmVocab(32000);
  const llama2 = JSON.parse(fs.readFileSync(path.join(FIXTURES, "tokenizers", "llama2", "tokenizer.json"), "utf8")) as { model: { vocab: Record<string, number> } };
  for (const [piece, id] of Object.entries(llama2.model.vocab)) if (id < 259) assert.equal(v.tokens[id], piece, `id ${id}`);
  assert.equal(v.tokens.length, 32000);
  assert.equal(new Set(v.tokens).size, 32000, "llama.cpp refuses a vocabulary with a repeated token");
  assert.deepEqual([v.types[0], v.types[1], v.types[2], v.types[13], v.types[259]], [2, 3, 3, 6, 1]); // unknown, control, control, byte, normal
  assert.ok(v.scores.subarray(260).every((s, i) => s < v.scores[259 + i]), "scores fall with the id");
});

const result = (r: Partial<WorkerResult>): WorkerResult => ({ backend: "onnxruntime-cpu", train: [], gen: [], peakRssBytes: 0, ...r });
const peer = (r: Partial<LlamaCppResult>): LlamaCppResult => ({ backend: "llama.cpp b1 (node-llama-cpp 3.22.1, CPU haswell, 2 threads)", gen: [], ids: [], loadSeconds: 1, peakRssBytes: 0, ...r });
const MiB = 2 ** 20;

function measures(over: Partial<QuantMeasures> = {}): QuantMeasures {
  return {
    threads: 2,
    train: {
      f32: result({ train: [40, 50, 45], peakRssBytes: 6000 * MiB }),
      q8: result({ train: [44, 42, 43], peakRssBytes: 3000 * MiB }),
      q4: result({ train: [46, 52, 48], peakRssBytes: 2000 * MiB }),
    },
    chat: {
      f32: result({ gen: [8, 9, 7], peakRssBytes: 4800 * MiB }),
      q8: result({ gen: [20, 21, 22], peakRssBytes: 1500 * MiB }),
      q4: result({ gen: [30, 33, 36], peakRssBytes: 900 * MiB }),
    },
    llamaCpp: { Q8_0: peer({ gen: [25, 26, 24], peakRssBytes: 1300 * MiB }), Q4_0: peer({ gen: [32, 30, 31], peakRssBytes: 800 * MiB }) },
    ...over,
  };
}

test("the memory table: each precision's train and chat peaks and train tok/s, with their ratios to f32", () => {
  const lines = memoryTable(measures()).split("\n");
  assert.equal(lines.length, 5);
  assert.match(lines[2], /^\| f32 \| .* \| 6,000 \| 1\.00× \| 4,800 \| 1\.00× \| 45 \| 1\.00× \|$/);
  assert.match(lines[3], /^\| q8 \| .* \| 3,000 \| 0\.50× \| 1,500 \| 0\.31× \| 43 \| 0\.96× \|$/);
  assert.match(lines[4], /^\| q4 \| .* \| 2,000 \| 0\.33× \| 900 \| 0\.19× \| 48 \| 1\.07× \|$/);
});

test("the decode table: medians, ours over llama.cpp's on the same file, both peaks", () => {
  const lines = decodeTable(measures()).split("\n");
  assert.equal(lines[2], "| Q8_0 | 21.0 | 25.0 | 0.84× | 1,500 | 1,300 |");
  assert.equal(lines[3], "| Q4_0 | 33.0 | 31.0 | 1.06× | 900 | 800 |");
});

test("targets are marked met or not met from the numbers, and not measured when a side could not run", () => {
  const rows = targetRows(measures());
  assert.deepEqual(
    rows.map((r) => [r.measured, r.met]),
    [
      ["33 %", true], // 2,000 / 6,000 MiB ≤ 35 %
      ["0.84×", false], // 21 / 25 tok/s
      ["1.06×", true], // 33 / 31
      ["1.07×", true], // 48 / 45 tok/s
    ],
  );
  const worse = measures();
  worse.train.q4 = result({ train: [40, 41, 42], peakRssBytes: 2400 * MiB });
  assert.deepEqual(targetRows(worse).map((r) => r.met), [false, false, true, false]); // 40 %; 41 < 45 tok/s

  const missing = measures({ llamaCpp: { Q8_0: peer({ error: "node-llama-cpp is not installed in bench/llama-cpp: run `bash bench/setup.sh`" }), Q4_0: peer({ gen: [31] }) } });
  const r = targetRows(missing)[1];
  assert.equal(r.met, undefined);
  assert.match(r.measured, /^not measured: node-llama-cpp is not installed/);
  assert.match(targetTable(missing), /\| decode ≥ 1\.00× llama\.cpp's at Q8_0 \| not measured: .* \| not measured \|/);
  assert.match(decodeTable(missing), /\| Q8_0 \| 21\.0 \| cannot run: node-llama-cpp is not installed .* \| – \| 1,500 \| – \|/);
  assert.match(targetTable(measures()), /\| q4 training peak RSS ≤ 35 % of f32's \| 33 % \| \*\*met\*\* \|/);

  const failed = measures();
  failed.train.q4 = result({ error: "/home/x/model.gguf: out of memory" });
  assert.match(memoryTable(failed).split("\n")[4], /^\| q4 \| .* \| cannot run: out of memory \|/);
  assert.equal(targetRows(failed)[0].met, undefined);
});

test("the llama.cpp worker's output: its JSON line after any log lines, else why it failed", () => {
  const line = JSON.stringify({ backend: "llama.cpp b1", gen: [30.5, 31], ids: [5, 6], loadSeconds: 2, peakRssBytes: 1234 });
  assert.deepEqual(parseLlamaCppOutput(`[node-llama-cpp] a warning\n{not json\n${line}\n`, "", 0), { backend: "llama.cpp b1", gen: [30.5, 31], ids: [5, 6], loadSeconds: 2, peakRssBytes: 1234, error: undefined });
  const err = parseLlamaCppOutput(JSON.stringify({ backend: "llama.cpp", gen: [], ids: [], loadSeconds: null, peakRssBytes: 9, error: "failed to load model" }), "", 0);
  assert.equal(err.error, "failed to load model");
  assert.equal(parseLlamaCppOutput("", "some detail\nSegmentation fault\n", 139).error, "Segmentation fault");
  assert.equal(parseLlamaCppOutput("", "", null).error, "killed");
  assert.equal(parseLlamaCppOutput("partial", "", 1).error, "exit 1");
});

/** Our engine's logits at each step of `ids` after `prompt` (teacher-forced), on the base model. */
async function ourLogits(file: string, prompt: number[], ids: number[]): Promise<Float32Array[]> {
  const rt = await openModel(file, { backend: "ort" });
  const s = rt.startDecode(false);
  const out = [Float32Array.from(await s.feed(prompt))];
  for (const id of ids.slice(0, -1)) out.push(Float32Array.from(await s.feed([id])));
  s.dispose();
  rt.dispose();
  return out;
}

// Skipped only where node-llama-cpp has no prebuilt binary; elsewhere `npm run test:unit` installs
// it (bench/llama-cpp/install.sh), and its absence is a failure, not a skip.
const unsupported = process.platform !== "linux" || process.arch !== "x64";
const missing = llamaCppMissing();
for (const type of ["Q8_0", "Q4_0"] as BenchGgufType[]) {
  test(`llama.cpp runs a ${type} file our writer wrote and greedily picks our engine's ids`, { skip: unsupported && missing }, async () => {
    assert.equal(missing, undefined, "node-llama-cpp is installed");
    const file = tinyFile(type);
    const prompt = [1, 100, 200, 150, 42];
    const r = runLlamaCpp(file, { threads: 2, prompt, genTokens: 32, runs: 0 });
    assert.equal(r.error, undefined);
    assert.equal(r.ids.length, 32);
    // llama.cpp multiplies Q8_0/Q4_0 weights by activations rounded to 8 bits, the engine by float32
    // activations: where our two best logits are that close (under 1 % of the logits' range) the
    // pick may differ. Following llama.cpp's ids, each must be our best or within that of it.
    const logits = await ourLogits(file, prompt, r.ids);
    let same = 0;
    r.ids.forEach((id, i) => {
      const l = logits[i];
      let [best, lo] = [0, l[0]];
      for (let v = 1; v < l.length; v++) {
        if (l[v] > l[best]) best = v;
        lo = Math.min(lo, l[v]);
      }
      if (best === id) same++;
      else assert.ok(l[best] - l[id] < 0.01 * (l[best] - lo), `step ${i}: llama.cpp picked ${id} (logit ${l[id]}), ours ${best} (${l[best]})`);
    });
    assert.ok(same >= 0.9 * r.ids.length, `llama.cpp picked our best token at ${same} of ${r.ids.length} steps`);
  });
}
