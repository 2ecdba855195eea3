/**
 * The checks a training must pass before a run exists (extension/preflight.ts): each bad model
 * folder or dataset gives one line naming the path (and the line), in the engine's own words.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { checkDataset, checkModel, defaultMaxLength } from "../extension/preflight";
import { tempDir, writeAlpaca, writeTinyModel } from "./helpers/tiny-model";
import { FIXTURES } from "./fixtures";

const root = tempDir("excitor-preflight-");
const model = writeTinyModel(path.join(root, "model"));
const LAYOUT = "Excitor needs a Hugging Face model folder (config.json, *.safetensors, tokenizer.json) or a .gguf file";

/** The error of a failed check (a passing one fails the test). */
function errorOf(r: ReturnType<typeof checkModel> | ReturnType<typeof checkDataset>) {
  assert.equal(r.ok, false, "the check should fail");
  return (r as { ok: false; error: { message: string; file?: string; line?: number } }).error;
}

test("a good model folder passes and tells its context length", () => {
  assert.deepEqual(checkModel(model), { ok: true, value: { maxPositions: 256 } });
});

test("a .gguf file is a model: a good one passes with its context, a broken one gets the engine's message", () => {
  assert.deepEqual(checkModel(path.join(FIXTURES, "stories260k", "gguf", "stories260K-q8_0.gguf")), { ok: true, value: { maxPositions: 512 } });
  const gguf = path.join(root, "llama-7b.Q4_K_M.gguf");
  fs.writeFileSync(gguf, "GGUF\u0003\u0000");
  assert.deepEqual(errorOf(checkModel(gguf)), { message: `${gguf}: not a GGUF file (no GGUF magic)`, file: gguf, line: undefined });
});

test("any other file chosen as the model folder: not a folder (no raw ENOTDIR)", () => {
  const file = path.join(root, "notes.txt");
  fs.writeFileSync(file, "hello");
  assert.deepEqual(errorOf(checkModel(file)), { message: `${file}: a file, not a folder; ${LAYOUT}` });
});

test("a folder without safetensors weights: the engine's message, naming the GGUF it found", () => {
  const dir = path.join(root, "gguf-folder");
  fs.mkdirSync(dir);
  for (const f of ["config.json", "tokenizer.json"]) fs.copyFileSync(path.join(model, f), path.join(dir, f));
  fs.writeFileSync(path.join(dir, "model.gguf"), "GGUF");
  assert.equal(errorOf(checkModel(dir)).message, `${dir}: no model.safetensors or model.safetensors.index.json (found model.gguf: only safetensors weights are supported)`);
});

test("a folder without tokenizer.json or config.json: the missing file is named, once, before any run", () => {
  const noTok = path.join(root, "no-tokenizer");
  fs.mkdirSync(noTok);
  for (const f of ["config.json", "model.safetensors"]) fs.copyFileSync(path.join(model, f), path.join(noTok, f));
  const e = errorOf(checkModel(noTok));
  assert.equal(e.message, `${path.join(noTok, "tokenizer.json")}: file not found (a tokenizer folder needs tokenizer.json)`);
  const empty = path.join(root, "empty");
  fs.mkdirSync(empty);
  assert.equal(errorOf(checkModel(empty)).message, `${path.join(empty, "config.json")}: not found; a model folder needs a Hugging Face config.json`);
  assert.equal(errorOf(checkModel(path.join(root, "nowhere"))).message, `${path.join(root, "nowhere")}: model folder not found`);
});

test("a malformed dataset: the file and the line, for Open File", () => {
  const bad = path.join(root, "bad.jsonl");
  fs.writeFileSync(bad, '{"instruction":"a","output":"b"}\n\n{"instruction":"c","output":"d"}\n{"instruction":"e"}\n');
  assert.deepEqual(errorOf(checkDataset(bad)), { message: `${bad}:4: record has no response ("output" is missing or empty)`, file: bad, line: 4 });
  // Fixed on disk: the next check reads the file again.
  fs.writeFileSync(bad, '{"instruction":"a","output":"b"}\n{"instruction":"e","output":"f g"}\n');
  assert.deepEqual(checkDataset(bad), { ok: true, value: { records: 2 } });
});

test("a folder or a missing file chosen as the dataset", () => {
  assert.equal(errorOf(checkDataset(root)).message, `${root}: is a folder; expected a .json or .jsonl dataset file`);
  assert.equal(errorOf(checkDataset(path.join(root, "gone.jsonl"))).message, `${path.join(root, "gone.jsonl")}: file not found`);
  assert.equal(checkDataset(writeAlpaca(path.join(root, "ok.jsonl"), [{ instruction: "a", output: "b" }])).ok, true);
});

test("max length defaults to the model's context when that is shorter than the setting", () => {
  assert.equal(defaultMaxLength(512, 256), 256);
  assert.equal(defaultMaxLength(512, 4096), 512);
  assert.equal(defaultMaxLength(512, undefined), 512);
});
