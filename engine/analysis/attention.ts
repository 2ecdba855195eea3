/**
 * What the heatmap panel draws: for a prompt and a response, each layer's attention
 * probabilities (base and Excitor), the attention mass that each response token puts on the
 * instruction span, and the gates. The paper's claim to look for: tuned layers move attention
 * onto the instruction ("self-adaptive allocation of additional attention to input instructions").
 */
import type { ExcitorAdapter } from "../excitor/adapter";
import type { ModelRuntime } from "../runtime";
import type { TextTokenizer } from "../tokenizer/tokenizer";

export interface AttentionReport {
  tokens: string[];
  ids: number[];
  /** Token range [start, end) of the instruction (the prompt), and of the response. */
  instruction: [number, number];
  response: [number, number];
  numHeads: number;
  /** Per layer: base and tuned probabilities [H][M][M], whether the layer is adapted, its gates. */
  layers: { layer: number; adapted: boolean; gates: number[] | null; base: number[][][]; tuned: number[][][] }[];
  /** Per layer: mean over heads and response tokens of the attention mass on the instruction span. */
  instructionMass: { layer: number; base: number; tuned: number }[];
  /** Per layer, per response token: that token's mass on the instruction (mean over heads). */
  instructionMassPerToken: { layer: number; base: number[]; tuned: number[] }[];
}

/**
 * `instructionIds` is the prompt as the model sees it (template applied, BOS included);
 * `responseIds` the answer after it. The instruction span is the prompt without BOS.
 */
export async function attentionReport(
  rt: ModelRuntime,
  tok: TextTokenizer,
  adapter: ExcitorAdapter | null,
  promptIds: number[],
  responseIds: number[],
): Promise<AttentionReport> {
  const ids = promptIds.concat(responseIds);
  const M = ids.length;
  const H = rt.config.numHeads;
  const { base, tuned } = await rt.attentionProbs(ids, adapter !== null);
  const instStart = promptIds[0] === tok.bosId ? 1 : 0;
  const instruction: [number, number] = [instStart, promptIds.length];
  const response: [number, number] = [promptIds.length, M];
  const gates = new Map(adapter?.layers.map((l) => [l.layer, Array.from(l.gate.data)]) ?? []);

  const toNested = (p: Float32Array) => Array.from({ length: H }, (_, h) => Array.from({ length: M }, (_, q) => Array.from(p.subarray((h * M + q) * M, (h * M + q + 1) * M))));
  const massPerToken = (p: Float32Array): number[] => {
    const out: number[] = [];
    for (let q = response[0]; q < response[1]; q++) {
      let s = 0;
      for (let h = 0; h < H; h++) for (let k = instruction[0]; k < instruction[1]; k++) s += p[(h * M + q) * M + k];
      out.push(s / H);
    }
    return out;
  };
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

  const layers: AttentionReport["layers"] = [];
  const instructionMass: AttentionReport["instructionMass"] = [];
  const instructionMassPerToken: AttentionReport["instructionMassPerToken"] = [];
  for (let l = 0; l < base.length; l++) {
    layers.push({ layer: l, adapted: gates.has(l), gates: gates.get(l) ?? null, base: toNested(base[l]), tuned: toNested(tuned[l]) });
    const b = massPerToken(base[l]);
    const t = massPerToken(tuned[l]);
    instructionMassPerToken.push({ layer: l, base: b, tuned: t });
    instructionMass.push({ layer: l, base: mean(b), tuned: mean(t) });
  }
  return {
    tokens: ids.map((id) => tok.decode([id])),
    ids,
    instruction,
    response,
    numHeads: H,
    layers,
    instructionMass,
    instructionMassPerToken,
  };
}
