/** The engine against an independent implementation of the spec (test/fixtures/golden). */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { FIXTURES } from "./fixtures";
import { maxAbsDiff } from "./helpers/compare";
import { openModel } from "../engine/load";
import { ExcitorAdapter } from "../engine/excitor/adapter";
import { ENGINES } from "./helpers/engines";

const TOL = 1e-4;

for (const [name, backend] of ["mha", "gqa"].flatMap((n) => ENGINES.map((b) => [n, b] as const))) {
  const dir = path.join(FIXTURES, "golden", name);
  const expected = (f: string) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));

  test(`golden ${name} on ${backend}: log-probs and attention match the reference within 1e-4`, async () => {
    const rt = await openModel(path.join(dir, "model"), { backend });
    const adapter = ExcitorAdapter.load(path.join(dir, "adapter"), rt.config);
    rt.setAdapter(adapter);
    const base = expected("expected-base.json");
    const exc = expected("expected-excitor.json");
    assert.ok(maxAbsDiff(await rt.tokenLogprobs(base.ids, false), base.logprobs) < TOL, "base log-probs");
    const got = await rt.tokenLogprobs(exc.ids, true);
    assert.ok(maxAbsDiff(got, exc.logprobs) < TOL, "excitor log-probs");
    // The adapter moves the scores: its log-probs differ from the base ones somewhere.
    assert.ok(maxAbsDiff(got, base.logprobs) > 1e-3);

    const attn = expected("expected-attention.json");
    const ids: number[] = base.ids;
    const { base: baseProbs, tuned: excProbs } = await rt.attentionProbs(ids, true);
    for (const [layer, want] of Object.entries(attn) as [string, { base: number[][][]; excitor: number[][][] }][]) {
      const l = Number(layer);
      assert.ok(maxAbsDiff(baseProbs[l], want.base.flat(2)) < TOL, `layer ${l} base attention`);
      assert.ok(maxAbsDiff(excProbs[l], want.excitor.flat(2)) < TOL, `layer ${l} excitor attention`);
    }
    rt.dispose();
  });
}
