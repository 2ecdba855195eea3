/** Generation: the KV cache (K' per query head) matches full forward passes; sampling options; stop strings; cancel. */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as path from "node:path";
import { openModel } from "../engine/load";
import { ExcitorAdapter } from "../engine/excitor/adapter";
import { TextTokenizer } from "../engine/tokenizer/tokenizer";
import { generate } from "../engine/generate/generate";
import { Sampler } from "../engine/generate/sampler";
import { Rng } from "../engine/rng";
import { ENGINES } from "./helpers/engines";
import type { BackendChoice } from "../engine/backend-choice";
import { tempDir, writeTinyModel } from "./helpers/tiny-model";

async function tinyWithAdapter(backend: BackendChoice = "auto") {
  const dir = writeTinyModel(path.join(tempDir(), "m"), { seed: 12, heads: 4, kvHeads: 2 });
  const rt = await openModel(dir, { backend });
  const adapter = ExcitorAdapter.create(rt.config, { numPrompts: 4, rank: 3, seed: 1 });
  const rng = new Rng(3);
  for (const l of adapter.layers) l.gate.data.forEach((_, i, g) => (g[i] = rng.normal()));
  rt.setAdapter(adapter);
  return { rt, tok: TextTokenizer.fromFolder(dir) };
}

for (const backend of ENGINES) {
  test(`KV-cached decoding under GQA with an adapter gives the full forward pass's log-probs on ${backend}`, async () => {
    const { rt } = await tinyWithAdapter(backend);
    const ids = [1, 40, 51, 62, 73, 84, 95, 44, 45, 46];
    const full = await rt.tokenLogprobs(ids, true);
    const s = rt.startDecode(true);
    let logits = await s.feed(ids.slice(0, 3)); // a prompt of 3, then one token at a time
    for (let i = 3; i < ids.length; i++) {
      const max = Math.max(...logits);
      const lse = max + Math.log(logits.reduce((a, l) => a + Math.exp(l - max), 0));
      assert.ok(Math.abs(logits[ids[i]] - lse - full[i - 1]) < 1e-4, `position ${i}`);
      logits = await s.feed([ids[i]]);
    }
    assert.equal(s.length, ids.length);
    s.dispose();
    rt.dispose();
  });
}

test("sampling: the same seed repeats, top-k 1 is greedy, top-p keeps the nucleus, repetition penalty lowers seen tokens", () => {
  const logits = () => Float32Array.from([2, 1, 0.5, 3, -1]);
  const draw = (seed: number, o: object = {}) => {
    const s = new Sampler({ temperature: 1, topP: 1, topK: 0, repetitionPenalty: 1, seed, ...o });
    return Array.from({ length: 50 }, () => s.pick(logits(), []));
  };
  assert.deepEqual(draw(4), draw(4));
  assert.notDeepEqual(draw(4), draw(5));
  assert.ok(draw(1, { topK: 1 }).every((id) => id === 3));
  assert.ok(draw(2, { topK: 2 }).every((id) => id === 3 || id === 0));
  // p(3) ≈ 0.64, p(0) ≈ 0.24: a nucleus of 0.7 keeps exactly those two.
  const nucleus = new Set(draw(3, { topP: 0.7 }));
  assert.deepEqual([...nucleus].sort(), [0, 3]);
  const greedy = new Sampler({ temperature: 0, topP: 1, topK: 0, repetitionPenalty: 4, seed: 0 });
  assert.equal(greedy.pick(logits(), [3]), 0, "3 was seen: 3/4 < 2");
});

test("plain temperature sampling (no top-k, top-p or penalty, as the retention samples draw) follows softmax(logits / T)", () => {
  const logits = [2, 1, 0.5, 3, -1];
  for (const temperature of [1, 0.5]) {
    const s = new Sampler({ temperature, topP: 1, topK: 0, repetitionPenalty: 1, seed: 11 });
    const counts = new Array(logits.length).fill(0);
    const n = 20000;
    for (let i = 0; i < n; i++) counts[s.pick(Float32Array.from(logits), [])]++;
    const z = logits.reduce((a, l) => a + Math.exp(l / temperature), 0);
    logits.forEach((l, id) => assert.ok(Math.abs(counts[id] / n - Math.exp(l / temperature) / z) < 0.015, `T ${temperature}, token ${id}: ${counts[id] / n}`));
  }
});

test("stop strings end generation before the stop text, which never reaches the stream", async () => {
  const { rt, tok } = await tinyWithAdapter();
  const free = await generate(rt, tok, [1, 40, 41], { maxTokens: 24, temperature: 0 });
  assert.ok(free.text.length > 4);
  const stop = free.text.slice(3, 5);
  let streamed = "";
  const cut = await generate(rt, tok, [1, 40, 41], { maxTokens: 24, temperature: 0, stop: [stop], onText: (d) => (streamed += d) });
  assert.equal(cut.finishReason, "stop");
  assert.equal(cut.text, free.text.slice(0, free.text.indexOf(stop)));
  assert.equal(streamed, cut.text);
  rt.dispose();
});

test("an aborted signal stops generation with finishReason aborted", async () => {
  const { rt, tok } = await tinyWithAdapter();
  const ac = new AbortController();
  let n = 0;
  const out = await generate(rt, tok, [1, 40], { maxTokens: 50, temperature: 0.8, seed: 1, signal: ac.signal, onText: () => ++n === 3 && ac.abort() });
  assert.equal(out.finishReason, "aborted");
  assert.ok(out.ids.length < 50);
  const limited = await generate(rt, tok, [1, 40], { maxTokens: 5, temperature: 0.8, seed: 1 });
  assert.ok(limited.ids.length <= 5 && (limited.finishReason === "length" || limited.finishReason === "eos"));
  rt.dispose();
});

test("an answer that ends at once (EOS first) is empty text, not an error", async () => {
  const { rt, tok } = await tinyWithAdapter();
  const eosBiased: typeof rt = Object.create(rt);
  eosBiased.startDecode = (u: boolean) => {
    const s = rt.startDecode(u);
    return { get length() { return s.length; }, dispose: () => s.dispose(), feed: async (ids: number[]) => {
      const l = await s.feed(ids);
      l[tok.eosIds[0]] = 1e9; // force EOS
      return l;
    } };
  };
  const out = await generate(eosBiased, tok, [1, 40], { maxTokens: 5, temperature: 0 });
  assert.equal(out.finishReason, "eos");
  assert.equal(out.text, "");
  assert.equal(tok.decode([]), "");
  rt.dispose();
});
