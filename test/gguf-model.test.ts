/**
 * A GGUF file as the base model: stories260K converted by llama.cpp generates exactly llama.cpp's
 * greedy ids on both engines, and computes what the same model as a Hugging Face folder computes.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
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
