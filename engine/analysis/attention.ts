/**
 * What the heatmap panel draws: for a prompt and a response, each layer's attention
 * probabilities (base and Excitor), the attention mass that each response token puts on the
 * instruction span, and the gates. The paper's claim to look for: tuned layers move attention
 * onto the instruction ("self-adaptive allocation of additional attention to input instructions").
 */
import type { PromptPiece } from "../data/templates";
import type { Adapter } from "../adapters";
import type { ImageFeatures, ModelRuntime } from "../runtime";
import { imageAttention, type PictureView } from "./image-attention";
import type { ImageAttention } from "./image-attention-types";
import type { TextTokenizer } from "../tokenizer/tokenizer";
import { tokenSpans, type TokenSpan } from "./spans";

export interface AttentionReport {
  tokens: string[];
  ids: number[];
  /** Token range [start, end) of the instruction (the whole prompt after BOS, template included), and of the response. */
  instruction: [number, number];
  response: [number, number];
  /**
   * The tokens by part, in order, covering all of them: "template" (BOS and the prompt format's
   * own words, e.g. Alpaca's "Below is an instruction…" and "### Response:"), "instruction" and
   * "input" (the user's text), "response".
   */
  spans: TokenSpan[];
  numHeads: number;
  /** Per layer: base and tuned probabilities [H][M][M], whether the layer is adapted, its gates. */
  layers: { layer: number; adapted: boolean; gates: number[] | null; base: number[][][]; tuned: number[][][] }[];
  /** Per layer: mean over heads and response tokens of the attention mass on the instruction span. */
  instructionMass: { layer: number; base: number; tuned: number }[];
  /** Per layer, per response token: that token's mass on the instruction (mean over heads). */
  instructionMassPerToken: { layer: number; base: number[]; tuned: number[] }[];
  /**
   * Per layer: the share of the response's attention that goes to the user's instruction and
   * input (their spans only, template words not counted): mean over heads and response tokens.
   */
  instructionAndInputMass: { layer: number; base: number; tuned: number }[];
  /** With a picture and a multimodal adapter: where the response looks in it. */
  image?: ImageAttention;
}

/**
 * `promptIds` is the prompt as the model sees it (template applied, BOS included);
 * `responseIds` the answer after it. The instruction span is the prompt without BOS. `pieces`,
 * the prompt's text split into template words, instruction and input (joined, the text that
 * `promptIds` encodes), gives the finer `spans`.
 */
export async function attentionReport(
  rt: ModelRuntime,
  tok: TextTokenizer,
  adapter: Adapter | null,
  promptIds: number[],
  responseIds: number[],
  pieces?: PromptPiece[],
  picture?: { features: ImageFeatures; view: PictureView },
): Promise<AttentionReport> {
  const ids = promptIds.concat(responseIds);
  const M = ids.length;
  const H = rt.config.numHeads;
  const { base, tuned, image } = await rt.attentionProbs(ids, adapter !== null, picture?.features);
  const instStart = promptIds[0] === tok.bosId ? 1 : 0;
  const instruction: [number, number] = [instStart, promptIds.length];
  const response: [number, number] = [promptIds.length, M];
  // Excitor layers have gates; a LoRA adapter's layers are adapted without one.
  const gates = new Map<number, number[] | null>(
    adapter?.method === "excitor" ? adapter.layers.map((l) => [l.layer, Array.from(l.gate.data)]) : (adapter?.config.layers.map((l) => [l, null]) ?? []),
  );

  const toNested = (p: Float32Array) => Array.from({ length: H }, (_, h) => Array.from({ length: M }, (_, q) => Array.from(p.subarray((h * M + q) * M, (h * M + q + 1) * M))));
  const spans = tokenSpans(tok, promptIds, responseIds.length, pieces);
  const userText = spans.filter((s) => s.kind === "instruction" || s.kind === "input").map((s): [number, number] => [s.start, s.end]);
  /** Per response token: its attention mass on the key ranges (mean over heads). */
  const massPerToken = (p: Float32Array, keys: [number, number][]): number[] => {
    const out: number[] = [];
    for (let q = response[0]; q < response[1]; q++) {
      let s = 0;
      for (let h = 0; h < H; h++) for (const [k0, k1] of keys) for (let k = k0; k < k1; k++) s += p[(h * M + q) * M + k];
      out.push(s / H);
    }
    return out;
  };
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

  const layers: AttentionReport["layers"] = [];
  const instructionMass: AttentionReport["instructionMass"] = [];
  const instructionMassPerToken: AttentionReport["instructionMassPerToken"] = [];
  const instructionAndInputMass: AttentionReport["instructionAndInputMass"] = [];
  for (let l = 0; l < base.length; l++) {
    layers.push({ layer: l, adapted: gates.has(l), gates: gates.get(l) ?? null, base: toNested(base[l]), tuned: toNested(tuned[l]) });
    const b = massPerToken(base[l], [instruction]);
    const t = massPerToken(tuned[l], [instruction]);
    instructionMassPerToken.push({ layer: l, base: b, tuned: t });
    instructionMass.push({ layer: l, base: mean(b), tuned: mean(t) });
    instructionAndInputMass.push({ layer: l, base: mean(massPerToken(base[l], userText)), tuned: mean(massPerToken(tuned[l], userText)) });
  }
  return {
    tokens: ids.map((id) => tok.decode([id])),
    ids,
    instruction,
    response,
    spans,
    numHeads: H,
    layers,
    instructionMass,
    instructionMassPerToken,
    instructionAndInputMass,
    ...(image && picture ? { image: imageAttention(tuned, image, H, M, response, picture.view) } : {}),
  };
}
