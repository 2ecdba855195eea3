/**
 * The paper's mechanism, measured over a set: "self-adaptive allocation of additional attention
 * to input instructions". Per layer, the attention mass that the response tokens put on the
 * user's instruction and input (their spans only; the template's own words do not count), mean
 * over heads, response tokens and records — for the base model and for the tuned one, each on
 * its own forward pass over the prompt and the expected response (teacher-forced, so both read
 * the same tokens).
 */
import { alpacaPromptPieces } from "../data/templates";
import { encodeRecord } from "../data/encode";
import type { ModelRuntime } from "../runtime";
import type { TextTokenizer } from "../tokenizer/tokenizer";
import { tokenSpans } from "./spans";

export interface AlpacaTriple {
  instruction: string;
  input: string;
  output: string;
}

export interface LayerInstructionMass {
  layer: number;
  base: number;
  tuned: number;
}

export async function instructionAttention(rt: ModelRuntime, tok: TextTokenizer, records: AlpacaTriple[]): Promise<LayerInstructionMass[]> {
  const L = rt.config.numLayers;
  const H = rt.config.numHeads;
  const sums = Array.from({ length: L }, (_, layer) => ({ layer, base: 0, tuned: 0 }));
  let counted = 0;
  for (const r of records) {
    const ex = encodeRecord({ kind: "alpaca", ...r, line: 0 }, tok, rt.config.maxPositions, "held-out");
    const ids = ex.ids;
    const M = ids.length;
    const promptLength = ex.lossMask.indexOf(1);
    if (promptLength < 1) continue; // the response was cut away entirely
    const spans = tokenSpans(tok, ids.slice(0, promptLength), M - promptLength, alpacaPromptPieces(r.instruction, r.input));
    const keys = spans.filter((s) => s.kind === "instruction" || s.kind === "input");
    // p: [H, M, M] (query, key); the queries are the response tokens [promptLength, M), as in the attention report.
    const mass = (p: Float32Array): number => {
      let s = 0;
      for (let h = 0; h < H; h++)
        for (let q = promptLength; q < M; q++) for (const k of keys) for (let j = k.start; j < k.end; j++) s += p[(h * M + q) * M + j];
      return s / (H * (M - promptLength));
    };
    const base = (await rt.attentionProbs(ids, false)).tuned;
    const tuned = (await rt.attentionProbs(ids, true)).tuned;
    for (let l = 0; l < L; l++) {
      sums[l].base += mass(base[l]);
      sums[l].tuned += mass(tuned[l]);
    }
    counted++;
  }
  return sums.map((s) => ({ layer: s.layer, base: s.base / Math.max(1, counted), tuned: s.tuned / Math.max(1, counted) }));
}
