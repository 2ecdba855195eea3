/**
 * A GGUF file as `--model` on the command line (issue: GGUF base models): `info` says how the
 * file stores its tensors and what memory the model takes, `generate` writes llama.cpp's greedy
 * text, `train` tunes an adapter on it that `attention` and `generate` then load, an Ollama blob
 * (no extension) is recognised by its magic, `--weights` is checked on every command, and what
 * would update the base weights (full fine-tuning, compare) is refused in one line.
 */
import { after, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { FIXTURES } from "./fixtures";
import { assertUserError, excitor } from "./helpers/cli";
import { tempDir, writeAlpaca } from "./helpers/tiny-model";

const GGUF = path.join(FIXTURES, "stories260k", "gguf");
const Q8 = path.join(GGUF, "stories260K-q8_0.gguf");
const F32 = path.join(GGUF, "stories260K-f32.v3.gguf");
const root = tempDir("excitor-gguf-cli-");
after(() => fs.rmSync(root, { recursive: true, force: true }));

const data = writeAlpaca(
  path.join(root, "data.jsonl"),
  Array.from({ length: 12 }, (_, i) => ({ instruction: `Who went to the park ${i}?`, output: ["Lily.", "Tom.", "Sue."][i % 3] })),
);

// stories260K Q8_0, tensor by tensor (llama.cpp keeps ffn_down [64, 172] in F32: 172 is not a whole number of 32-blocks).
const Q8_PARAMS = 2 * 512 * 64 + 5 * (64 * 64 * 2 + 32 * 64 * 2 + 172 * 64 * 2);
const F32_PARAMS = 5 * 64 * 172 + 11 * 64;
const Q8_BYTES = (Q8_PARAMS / 32) * 34;
const F32_BYTES = F32_PARAMS * 4;

test("info on the Q8_0 GGUF: the stored-as shares, the weights held at each precision, memory to chat and to train", () => {
  const r = excitor(["info", "--model", Q8]);
  assert.equal(r.code, 0, r.stderr);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const bytes = Q8_BYTES + F32_BYTES;
  const params = Q8_PARAMS + F32_PARAMS;
  assert.ok(
    r.stdout.includes(`stored as             Q8_0 ${pct(Q8_BYTES / bytes)} of bytes (${pct(Q8_PARAMS / params)} of parameters), F32 ${pct(F32_BYTES / bytes)} (${pct(F32_PARAMS / params)})\n`),
    r.stdout,
  );
  assert.match(r.stdout, /parameters\s+292,800 /);
  assert.match(r.stdout, /weights held\s+as stored 478 KiB \(815 KiB to chat\) · f32 1\.12 MiB · q8 \S+ KiB \(\S+ KiB to chat\) · q4 /);
  assert.match(r.stdout, /memory to chat\s+\d[\d.]* MiB at 512 tokens of context \(weights as stored 478 KiB, decode copy 337 KiB, KV cache /);
  assert.match(r.stdout, /memory to train\s+\d[\d.]* MiB at 4 × 512 tokens a pass \(weights as stored 478 KiB, monitor's KV cache /);

  const j = JSON.parse(excitor(["info", "--model", Q8, "--json"]).stdout);
  assert.deepEqual(
    j.storedAs.map((s: { type: string; parameters: number; bytes: number }) => [s.type, s.parameters, s.bytes]),
    [
      ["Q8_0", Q8_PARAMS, Q8_BYTES],
      ["F32", F32_PARAMS, F32_BYTES],
    ],
  );
  // Held as stored: norms float32, the Q8_0 matrices (embedding and head too) as 8-bit blocks (36 bytes a 32), ffn_down float32.
  const norms = 11 * 64 * 4;
  const quantized = 5 * (64 + 32 + 32 + 64 + 172 + 172) * 2 * 36 + 512 * 2 * 36; // linears and head: what decoding prepacks
  const asStored = norms + 512 * 2 * 36 + quantized + 5 * 64 * 172 * 4;
  assert.equal(j.weightsHeld.stored.train, asStored);
  assert.equal(j.weightsHeld.stored.chat, asStored + 1.5 * quantized, "chat adds the decode session's prepacked copy (about 1.5 bytes a byte)");
  assert.equal(j.weightsHeld.f32.chat, 292_800 * 4);
  assert.equal(j.weightsHeld.f32.train, 292_800 * 4);
  assert.equal(j.memory.weights, "stored");
  for (const task of ["chat", "train"]) {
    const m = j.memory[task];
    assert.equal(m.total, m.weights + m.decodeCopy + m.kvCache + m.activations + m.optimizer + m.overhead);
  }
});

test("info on the f32 GGUF: all F32, the same weights as stored and as f32", () => {
  const j = JSON.parse(excitor(["info", "--model", F32, "--json"]).stdout);
  assert.deepEqual(j.storedAs.map((s: { type: string; byteShare: number }) => [s.type, s.byteShare]), [["F32", 1]]);
  assert.equal(j.weightsHeld.stored.chat, 292_800 * 4);
  assert.equal(j.weightsHeld.stored.train, 292_800 * 4);
  assert.equal(j.weightsHeld.q4.chat < j.weightsHeld.q8.chat, true);
});

test("generate --model *.gguf from BOS at temperature 0 prints llama.cpp's greedy text", () => {
  const want = JSON.parse(fs.readFileSync(path.join(GGUF, "llamacpp-greedy-q8_0.json"), "utf8"));
  const r = excitor(["generate", "--model", Q8, "--prompt", "", "--max-tokens", String(want.ids.length), "--temperature", "0"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${want.text}\n`);
});

test("an Ollama blob (a GGUF file without the extension) is recognised by its magic", () => {
  const blob = path.join(root, "blobs", "sha256-4f8e1c0d");
  fs.mkdirSync(path.dirname(blob), { recursive: true });
  fs.copyFileSync(Q8, blob);
  const want = JSON.parse(fs.readFileSync(path.join(GGUF, "llamacpp-greedy-q8_0.json"), "utf8"));
  const r = excitor(["generate", "--model", blob, "--prompt", "", "--max-tokens", String(want.ids.length), "--temperature", "0"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${want.text}\n`);
  assert.equal(JSON.parse(excitor(["info", "--model", blob, "--json"]).stdout).storedAs[0].type, "Q8_0");
});

test("train an Excitor adapter on the Q8_0 GGUF for a few steps; attention and generate load it with the same file", () => {
  const out = path.join(root, "adapter");
  const r = excitor(["train", "--model", Q8, "--data", data, "--out", out, "--max-steps", "3", "--batch-size", "2", "--micro-batch", "2", "--retain", "none", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const events = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.equal(events.filter((e) => e.type === "step").length, 3);
  assert.ok(events.every((e) => e.type !== "step" || Number.isFinite(e.loss)));
  assert.ok(fs.existsSync(path.join(out, "adapter_model.safetensors")));
  const a = excitor(["attention", "--model", Q8, "--adapter", out, "--prompt", "Who went to the park 1?", "--response", "Tom.", "--json"]);
  assert.equal(a.code, 0, a.stderr);
  const report = JSON.parse(a.stdout);
  assert.equal(report.layers.length, 5);
  const g = excitor(["generate", "--model", Q8, "--adapter", out, "--prompt", "Who went to the park 1?", "--template", "alpaca", "--max-tokens", "4", "--temperature", "0"]);
  assert.equal(g.code, 0, g.stderr);
});

test("--weights: f32, q8 or q4 on every model command; anything else is one line naming the choices", () => {
  for (const cmd of ["train", "chat", "generate", "score", "attention", "serve", "info"]) {
    const r = excitor([cmd, "--model", Q8, "--weights", "q5", ...(cmd === "train" ? ["--data", data, "--out", path.join(root, "never")] : [])]);
    assertUserError(r, '--weights: "q5" is not a precision', "f32, q8 or q4");
  }
  assert.ok(!fs.existsSync(path.join(root, "never")));
  const help = excitor(["generate", "--help"]).stdout.replace(/\s+/g, " ");
  assert.match(help, /--model <path> the base model: a folder .* or a \.gguf file/);
  assert.match(help, /--weights <precision>/);
  const ok = excitor(["score", "--model", Q8, "--weights", "f32", "--text", "Once upon a time", "--json"]);
  assert.equal(ok.code, 0, ok.stderr);
  assertUserError(excitor(["--backend", "tfjs", "info", "--model", Q8, "--weights", "q4"]), "--weights q4", "onnxruntime");
});

test("full fine-tuning and compare refuse a GGUF base (and quantized weights) in one line, before anything is written", () => {
  const out = path.join(root, "full");
  assertUserError(excitor(["train", "--model", Q8, "--method", "full", "--data", data, "--out", out]), Q8, "GGUF", "--method excitor or lora");
  assertUserError(excitor(["train", "--model", Q8, "--method", "full", "--data", data, "--out", out, "--json"]), "GGUF");
  assertUserError(excitor(["compare", "--model", F32, "--data", data, "--out", out]), F32, "full fine-tuning", "Hugging Face folder");
  assertUserError(excitor(["train", "--model", path.join(FIXTURES, "stories260k", "hf"), "--method", "full", "--weights", "q4", "--data", data, "--out", out]), "--weights q4", "--method full");
  assert.ok(!fs.existsSync(out));
});
