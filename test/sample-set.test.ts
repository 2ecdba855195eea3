/**
 * Lockstep decoding of several rows (what the retention monitor samples its set with) against
 * one-row decoding: the same next-token logits per row, on both engines, for the base model,
 * an Excitor adapter and a LoRA adapter; and sampleSet's texts are generate()'s texts.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as path from "node:path";
import { ExcitorAdapter } from "../engine/excitor/adapter";
import { generate } from "../engine/generate/generate";
import { sampleSet } from "../engine/generate/sample-set";
import { openModel } from "../engine/load";
import { LoraAdapter } from "../engine/lora/adapter";
import { Rng } from "../engine/rng";
import type { ModelRuntime } from "../engine/runtime";
import { TextTokenizer } from "../engine/tokenizer/tokenizer";
import { maxAbsDiff } from "./helpers/compare";
import { ENGINES } from "./helpers/engines";
import { tempDir, writeTinyModel } from "./helpers/tiny-model";

/** LoRA with B made non-zero, so that it changes the model. */
function liveLora(rt: ModelRuntime): LoraAdapter {
  const a = LoraAdapter.create(rt.config, { seed: 3, targets: ["q_proj", "v_proj"] });
  const rng = new Rng(4);
  for (const p of a.pairs) for (let i = 0; i < p.B.data.length; i++) p.B.data[i] = rng.normal() * 0.2;
  return a;
}

function liveExcitor(rt: ModelRuntime): ExcitorAdapter {
  const a = ExcitorAdapter.create(rt.config, { numPrompts: 4, rank: 3, seed: 6 });
  for (const l of a.layers) l.gate.data.fill(0.7);
  return a;
}

for (const backend of ENGINES) {
  test(`${backend}: decoding three rows in lockstep gives each row's one-row logits (base, Excitor, LoRA)`, async () => {
    const dir = writeTinyModel(path.join(tempDir(), "m"), { seed: 31, heads: 4, kvHeads: 2, layers: 2 });
    const rt = await openModel(dir, { backend });
    const V = rt.config.vocabSize;
    const prefixes = [[1, 5, 9], [1, 7, 3], [1, 2, 11]];
    const steps = [[4, 8, 6], [10, 12, 5]];
    for (const adapter of [null, liveExcitor(rt), liveLora(rt)]) {
      rt.setAdapter(adapter);
      const useAdapter = adapter !== null;
      const many = rt.startDecode(useAdapter, 3);
      const got = [await many.feed(prefixes.flat()), ...(await (async () => {
        const outs: Float32Array[] = [];
        for (const s of steps) outs.push(await many.feed(s));
        return outs;
      })())];
      many.dispose();
      for (let r = 0; r < 3; r++) {
        const one = rt.startDecode(useAdapter);
        const want = [await one.feed(prefixes[r])];
        for (const s of steps) want.push(await one.feed([s[r]]));
        one.dispose();
        want.forEach((w, k) => assert.ok(maxAbsDiff(got[k].subarray(r * V, (r + 1) * V), w) < 1e-4, `${adapter?.method ?? "base"} row ${r} step ${k}`));
      }
    }
    rt.dispose();
  });
}

test("sampleSet draws text i as generate() does from BOS with seed i, whatever the batch size", async () => {
  const dir = writeTinyModel(path.join(tempDir(), "m"), { seed: 32, heads: 4, kvHeads: 4, layers: 2 });
  const rt = await openModel(dir, { backend: "ort" });
  const tok = TextTokenizer.fromFolder(dir);
  const seeds = (i: number) => 1000 + i;
  const batched = await sampleSet(rt, tok, { count: 5, maxTokens: 12, temperature: 1, seeds, useAdapter: false, rows: 2 });
  const whole = await sampleSet(rt, tok, { count: 5, maxTokens: 12, temperature: 1, seeds, useAdapter: false, rows: 5 });
  assert.deepEqual(batched, whole);
  for (let i = 0; i < 5; i++) {
    const g = await generate(rt, tok, [tok.bosId!], { maxTokens: 12, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: seeds(i), useAdapter: false });
    // generate() stops before EOS and does not return it; sampleSet keeps it as the text's end.
    const ids = batched[i].filter((id) => !tok.eosIds.includes(id));
    assert.deepEqual(ids, g.ids, `text ${i}`);
    assert.equal(batched[i].length <= 12, true);
  }
  assert.notDeepEqual(batched[0], batched[1], "different seeds, different texts");
  rt.dispose();
});
