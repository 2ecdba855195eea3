/**
 * The editor's side of GGUF models (extension/gguf-models.ts, fit-check.ts, preflight.ts): GGUF
 * files found in a fake home folder laid out as Ollama and LM Studio lay theirs out (a copy of
 * the stories260K fixture as an Ollama blob behind a manifest, and as LM Studio files), labelled
 * with their quantization and size; files Excitor cannot use listed with the reason; and the
 * fit check's decision: an estimate against the memory free.
 */
import { after, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FIXTURES } from "./fixtures";
import { tempDir } from "./helpers/tiny-model";
import { discoverGgufModels, ggufLabel, ollamaModels, ollamaName, quantizationOf } from "../extension/gguf-models";
import { checkTrainingFit, fits, freeMemory, trainingEstimate } from "../extension/fit-check";
import { checkModel } from "../extension/preflight";
import { trainArgs, type RunSpec } from "../extension/run-spec";
import { readGguf } from "../engine/formats/gguf";

const GGUF = path.join(FIXTURES, "stories260k", "gguf");
const Q8 = path.join(GGUF, "stories260K-q8_0.gguf");
const F32 = path.join(GGUF, "stories260K-f32.v3.gguf");
const root = tempDir("excitor-gguf-ext-");
after(() => fs.rmSync(root, { recursive: true, force: true }));

/** A GGUF v3 file with these metadata entries (strings and uint32s) and no tensors. */
function writeMetadataOnlyGguf(file: string, entries: Record<string, string | number>): string {
  const parts: Buffer[] = [];
  const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
  const u64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b; };
  const str = (s: string) => Buffer.concat([u64(Buffer.byteLength(s)), Buffer.from(s)]);
  parts.push(Buffer.from("GGUF"), u32(3), u64(0), u64(Object.keys(entries).length));
  for (const [k, v] of Object.entries(entries)) parts.push(str(k), typeof v === "string" ? Buffer.concat([u32(8), str(v)]) : Buffer.concat([u32(4), u32(v)]));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, Buffer.concat(parts));
  return file;
}

const copy = (from: string, to: string) => {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.copyFileSync(from, to);
  return to;
};

// The fake home: Ollama's library model and a user's model, LM Studio's two locations.
const home = path.join(root, "home");
const ollama = path.join(home, ".ollama", "models");
const DIGEST = "4f8e1c0d".repeat(8);
const DIGEST2 = "0123abcd".repeat(8);
function manifest(ns: string, model: string, tag: string, layers: object[]): void {
  const file = path.join(ollama, "manifests", "registry.ollama.ai", ns, model, tag);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.docker.distribution.manifest.v2+json", layers }));
}
const blob = copy(Q8, path.join(ollama, "blobs", `sha256-${DIGEST}`));
copy(F32, path.join(ollama, "blobs", `sha256-${DIGEST2}`));
manifest("library", "llama3.2", "3b", [
  { mediaType: "application/vnd.ollama.image.model", digest: `sha256:${DIGEST}`, size: 489152 },
  { mediaType: "application/vnd.ollama.image.template", digest: `sha256:${"9".repeat(64)}`, size: 10 },
]);
manifest("someone", "stories", "f32", [{ mediaType: "application/vnd.ollama.image.model", digest: `sha256:${DIGEST2}` }]);
manifest("library", "missing", "latest", [{ mediaType: "application/vnd.ollama.image.model", digest: `sha256:${"e".repeat(64)}` }]);
manifest("library", "escape", "latest", [{ mediaType: "application/vnd.ollama.image.model", digest: "sha256:../../../../etc/passwd" }]);
const lmNew = copy(Q8, path.join(home, ".lmstudio", "models", "lmstudio-community", "stories-GGUF", "stories-Q8_0.gguf"));
const lmOld = copy(F32, path.join(home, ".cache", "lm-studio", "models", "someone", "stories-GGUF", "stories-f32.gguf"));
const gemma = writeMetadataOnlyGguf(path.join(home, ".lmstudio", "models", "google", "gemma-GGUF", "gemma-3-1b-Q4_K_M.gguf"), { "general.architecture": "gemma3", "general.file_type": 15 });
const broken = path.join(home, ".lmstudio", "models", "x", "y", "broken.gguf");
fs.mkdirSync(path.dirname(broken), { recursive: true });
fs.writeFileSync(broken, "GGUF");

test("Ollama: each manifest's model layer is its blob, named as ollama list names it; missing blobs and bad digests are skipped", () => {
  assert.deepEqual(
    ollamaModels(ollama).map((m) => [m.name, m.blob]).sort(),
    [
      ["llama3.2:3b", blob],
      ["someone/stories:f32", path.join(ollama, "blobs", `sha256-${DIGEST2}`)],
    ],
  );
  assert.equal(ollamaName(blob, { home }), "llama3.2:3b");
  assert.equal(ollamaName(Q8, { home }), undefined);
  // $OLLAMA_MODELS moves the whole tree.
  const moved = path.join(root, "elsewhere");
  fs.cpSync(ollama, moved, { recursive: true });
  const found = discoverGgufModels({ home: path.join(root, "empty-home"), env: { OLLAMA_MODELS: moved } });
  assert.deepEqual(found.map((m) => [m.name, m.origin]).sort(), [["llama3.2:3b", "ollama"], ["someone/stories:f32", "ollama"]]);
});

test("discovery: workspace, Ollama and LM Studio (both folders), each once, labelled with quantization and size; unusable files last with the reason", () => {
  const ws = path.join(root, "workspace");
  const wsFile = copy(F32, path.join(ws, "models", "mine.gguf"));
  fs.symlinkSync(lmNew, path.join(ws, "linked.gguf")); // the same file as LM Studio's: listed once
  const found = discoverGgufModels({ home, env: {}, workspaceFiles: [wsFile, path.join(ws, "linked.gguf")] });
  const usable = found.filter((m) => !m.problem);
  assert.deepEqual(
    usable.map((m) => [m.origin, m.name, m.quantization, m.bytes]),
    [
      ["workspace", "linked.gguf", "Q8_0", fs.statSync(Q8).size],
      ["workspace", "mine.gguf", "F32", fs.statSync(F32).size],
      ["ollama", "llama3.2:3b", "Q8_0", 489152],
      ["ollama", "someone/stories:f32", "F32", fs.statSync(F32).size],
      ["lmstudio", "stories-f32.gguf", "F32", fs.statSync(F32).size],
    ],
  );
  assert.equal(ggufLabel(usable[2]), "llama3.2:3b · Q8_0 · 478 KiB"); // 489,152 bytes = 477.7 KiB
  assert.equal(found.find((m) => m.path === lmOld)?.where, path.join("someone", "stories-GGUF"));
  const bad = found.filter((m) => m.problem);
  assert.deepEqual(bad.map((m) => [m.name, m.quantization]).sort(), [["broken.gguf", "?"], ["gemma-3-1b-Q4_K_M.gguf", "Q4_K_M"]]);
  assert.match(bad.find((m) => m.path === gemma)!.problem!, /general\.architecture is "gemma3", which Excitor does not support/);
  assert.deepEqual(found.slice(-2).map((m) => !!m.problem), [true, true], "unusable files come last");
});

test("quantization: general.file_type's name, else the type most linear weights are stored in", () => {
  assert.equal(quantizationOf(readGguf(Q8)), "Q8_0", "no file_type: Q8_0 holds 237,056 of the linear parameters, F32 (ffn_down) 55,040");
  assert.equal(quantizationOf(readGguf(F32)), "F32");
  const typed = (ft: number) => quantizationOf(readGguf(writeMetadataOnlyGguf(path.join(root, `ft${ft}.gguf`), { "general.architecture": "llama", "general.file_type": ft })));
  assert.deepEqual([0, 1, 2, 7, 15, 17, 18, 32].map(typed), ["F32", "F16", "Q4_0", "Q8_0", "Q4_K_M", "Q5_K_M", "Q6_K", "BF16"]);
});

test("preflight takes an Ollama blob (no extension) and an LM Studio file as the model", () => {
  assert.deepEqual(checkModel(blob), { ok: true, value: { maxPositions: 512 } });
  assert.deepEqual(checkModel(lmOld), { ok: true, value: { maxPositions: 512 } });
  const r = checkModel(gemma);
  assert.equal(r.ok, false);
});

test("freeMemory reads MemAvailable (which counts reclaimable caches), else asks the OS", () => {
  const meminfo = path.join(root, "meminfo");
  fs.writeFileSync(meminfo, "MemTotal:       24000000 kB\nMemFree:          500000 kB\nMemAvailable:    8000000 kB\nBuffers:  1 kB\n");
  assert.equal(freeMemory(meminfo), 8_000_000 * 1024);
  const other = freeMemory(path.join(root, "no-such-file"));
  assert.ok(other > 0 && other <= os.totalmem());
});

function spec(model: string, extra: Partial<RunSpec> = {}): RunSpec {
  return { kind: "train", model, data: "data.jsonl", epochs: 1, batchSize: 8, maxLength: 512, validationShare: 0.05, seed: 0, ...extra };
}

test("fit check: fits within 90 % of the free memory; beyond, a warning naming the need, the free memory and what would help; 4-bit weights offered when they fit", () => {
  assert.equal(fits(90, 100), true);
  assert.equal(fits(91, 100), false);
  const s = spec(blob);
  const stored = trainingEstimate(s);
  const q4 = trainingEstimate(s, "q4");
  assert.ok(q4.total < stored.total);
  assert.deepEqual(checkTrainingFit(s, Math.ceil(stored.total / 0.9) + 1)?.fits, true);
  const tight = checkTrainingFit(s, Math.ceil((stored.total + q4.total) / 2 / 0.9))!;
  assert.equal(tight.fits, false);
  assert.equal(tight.withQ4?.total, q4.total, "4-bit weights would fit: offered");
  assert.match(tight.message!, /^This training needs about [\d.]+ MiB of memory \(activations at 4 × 512 tokens [\d.]+ MiB, caches and runtime [\d.]+ MiB\), but [\d.]+ MiB is free: it may run out of memory and stop\. 4-bit weights \(--weights q4\) would need about [\d.]+ MiB; a shorter max length or a smaller batch shrinks the activations\.$/);
  const none = checkTrainingFit(s, 64 * 2 ** 20)!;
  assert.equal(none.fits, false);
  assert.equal(none.withQ4, undefined, "4-bit weights would not fit either");
  assert.equal(checkTrainingFit(spec(blob, { weights: "q4" }), 64 * 2 ** 20)!.message!.includes("--weights q4"), false, "not offered again to a run that has it");
  assert.equal(checkTrainingFit(spec(path.join(root, "nowhere")), 1), undefined, "an unreadable model is preflight's to report");
  // The micro-batch is the engine's 4, or the batch when smaller; Excitor's size the trainer's.
  assert.equal(trainingEstimate(spec(blob, { batchSize: 2 })).batch, 2);
  assert.equal(trainingEstimate(spec(blob, { maxLength: 64 })).context, 64);
});

test("a run with 4-bit weights passes --weights q4 to the engine", () => {
  assert.deepEqual(trainArgs(spec(blob, { weights: "q4" }), "/out", false, "auto").slice(-2), ["--weights", "q4"]);
  assert.ok(!trainArgs(spec(blob), "/out", false, "auto").includes("--weights"));
});
