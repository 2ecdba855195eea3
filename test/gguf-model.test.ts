/**
 * A GGUF file as the base model: stories260K converted by llama.cpp generates exactly llama.cpp's
 * greedy ids on both engines, and computes what the same model as a Hugging Face folder computes.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FIXTURES } from "./fixtures";
import { openModel, type BackendChoice } from "../engine/load";
import { readModelConfigAt } from "../engine/model/source";
import { ropeInverseFrequencies } from "../engine/model/rope";
import { parseModelConfig } from "../engine/model/config";
import { ExcitorInputError } from "../engine/errors";
import type { ModelRuntime } from "../engine/runtime";

const dir = path.join(FIXTURES, "stories260k");
const gguf = (f: string) => path.join(dir, "gguf", f);
const F32 = gguf("stories260K-f32.v3.gguf");
const Q8 = gguf("stories260K-q8_0.gguf");

/** Greedy ids from BOS, one token at a time through the KV cache (as llama.cpp's main does). */
async function greedy(rt: ModelRuntime, n: number): Promise<number[]> {
  const s = rt.startDecode(false);
  let logits = await s.feed([1]);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let v = 1; v < logits.length; v++) if (logits[v] > logits[best]) best = v;
    out.push(best);
    logits = await s.feed([best]);
  }
  s.dispose();
  return out;
}

for (const backend of ["ort", "tfjs"] as BackendChoice[]) {
  for (const [file, expected] of [
    [F32, "llamacpp-greedy-f32.json"],
    [Q8, "llamacpp-greedy-q8_0.json"],
  ]) {
    test(`GGUF ${path.basename(file)} on ${backend}: greedy ids are llama.cpp's`, async () => {
      const want = JSON.parse(fs.readFileSync(gguf(expected), "utf8")).ids as number[];
      const rt = await openModel(file, { backend });
      assert.deepEqual(await greedy(rt, want.length), want);
      rt.dispose();
    });
  }
}

test("GGUF f32 and the Hugging Face folder of the same model give the same log-probs (names mapped, q/k rows put back in rotate-half order)", async () => {
  const ids = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401];
  const a = await openModel(F32, { backend: "ort" });
  const b = await openModel(path.join(dir, "hf"), { backend: "ort" });
  const la = await a.tokenLogprobs(ids, false);
  const lb = await b.tokenLogprobs(ids, false);
  for (let i = 0; i < la.length; i++) assert.ok(Math.abs(la[i] - lb[i]) < 1e-5, `position ${i}: ${la[i]} vs ${lb[i]}`);
  a.dispose();
  b.dispose();
});

test("GGUF metadata becomes the model config that config.json gives", () => {
  const fromGguf = readModelConfigAt(F32);
  const fromHf = readModelConfigAt(path.join(dir, "hf"));
  for (const k of ["hiddenSize", "intermediateSize", "numLayers", "numHeads", "numKvHeads", "headDim", "vocabSize", "tieWordEmbeddings", "qkvBias", "oBias"] as const)
    assert.deepEqual(fromGguf[k], fromHf[k], k);
  assert.ok(Math.abs(fromGguf.rmsNormEps - fromHf.rmsNormEps) < 1e-9);
  assert.equal(fromGguf.architecture, "LlamaForCausalLM");
  assert.equal(fromGguf.bosTokenId, 1);
  assert.deepEqual(fromGguf.eosTokenIds, [2]);
});

test("Llama 3 rope scaling carried as GGUF per-frequency factors gives Hugging Face's llama3 frequencies", () => {
  const base = { architectures: ["LlamaForCausalLM"], hidden_size: 512, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 10, rope_theta: 500000 };
  const hf = parseModelConfig({ ...base, rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } });
  const plain = ropeInverseFrequencies(parseModelConfig(base));
  const scaled = ropeInverseFrequencies(hf);
  // llama.cpp's converter writes rope_freqs[i] = plain[i] / scaled[i]; the engine divides by it.
  const factors = Array.from(plain, (p, i) => p / scaled[i]);
  assert.ok(factors.some((f) => f > 1.5), "the fixture exercises the scaled band");
  const fromFactors = ropeInverseFrequencies({ ...parseModelConfig(base), ropeScaling: { type: "factors", factors } });
  for (let i = 0; i < plain.length; i++) assert.ok(Math.abs(fromFactors[i] - scaled[i]) <= 1e-12 * scaled[i], `frequency ${i}`);
});

test("GGUF version 1 is refused with one line that says how to convert", async () => {
  const v1 = gguf("tinyllamas-stories-260k-f32.gguf");
  await assert.rejects(openModel(v1), (e: unknown) => {
    assert.ok(e instanceof ExcitorInputError);
    assert.match(e.message, /tinyllamas-stories-260k-f32\.gguf: is GGUF version 1 .*convert_hf_to_gguf\.py/);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });
});

/** A copy of the f32 fixture in a temporary folder, changed by `patch`. */
function patchedCopy(name: string, patch: (bytes: Buffer) => void): string {
  const bytes = fs.readFileSync(F32);
  patch(bytes);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "excitor-ggufpatch-")), name);
  fs.writeFileSync(file, bytes);
  return file;
}

test("GGUF version 2 (the same layout as 3 for little-endian files) loads and computes what version 3 does", async () => {
  const v2 = patchedCopy("stories-v2.gguf", (b) => b.writeUInt32LE(2, 4));
  const ids = [1, 403, 407, 261, 378, 432, 383, 286];
  const a = await openModel(v2, { backend: "ort" });
  const b = await openModel(F32, { backend: "ort" });
  assert.deepEqual(await a.tokenLogprobs(ids, false), await b.tokenLogprobs(ids, false));
  a.dispose();
  b.dispose();
});

test("a tensor type Excitor cannot read (here IQ4_NL) is refused in one line naming the tensor and its type", async () => {
  // The tensor info record: name (u64 length + bytes), n_dims u32, dims u64 each, type u32.
  const target = "blk.0.ffn_up.weight"; // [172, 64]: rows of two IQ4_NL blocks
  const file = patchedCopy("stories-iq4nl.gguf", (b) => {
    const at = b.indexOf(Buffer.from(target, "latin1"));
    assert.ok(at > 0, `${target} is in the fixture`);
    const dims = b.readUInt32LE(at + target.length);
    b.writeUInt32LE(20, at + target.length + 4 + 8 * dims); // GGML_TYPE_IQ4_NL
  });
  await assert.rejects(openModel(file), (e: unknown) => {
    assert.ok(e instanceof ExcitorInputError);
    assert.match(e.message, /stories-iq4nl\.gguf: tensor blk\.0\.ffn_up\.weight is IQ4_NL, which Excitor cannot read; supported types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K/);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });
});
