/**
 * One training step as an ONNX graph: the forward pass, the masked cross-entropy (to target
 * tokens, or to soft target distributions), and a hand-derived backward pass. What gets a
 * gradient depends on the mode: the Excitor tensors, the LoRA A/B matrices, or (full
 * fine-tuning) every base weight. Frozen weights get none, so an adapter's backward is
 * activation gradients through the blocks from the top down to the lowest adapted layer, plus
 * the adapter's gradients in each adapted layer; full mode goes down to the embedding.
 *
 * Inputs: those of LlamaGraph, plus `loss_rows` [N] (the rows of the B·T positions whose target
 * counts), their `targets` [N] (or `soft` [N, V], probabilities) and `weights` [N], and `scale`
 * (scalar). Outputs: `loss_sum` = Σ weights·(−log p(target)) (soft: Σ weights·(−Σ_v soft·log p))
 * and, for each trained tensor, `grad:<name>` = d(loss_sum · scale)/dθ.
 *
 * Every line below is the adjoint of one line of LlamaGraph.block; test/onnx.test.ts and
 * test/lora.test.ts check the result against tfjs's autodiff and against finite differences.
 */
import type { ModelConfig } from "../model/config";
import { tensorName, VISION_TENSORS } from "../excitor/config";
import { type LoraModule, loraTensorName } from "../lora/config";
import { type AdapterLayout, type BlockSaved, type HeldGraph, type LoraLayout, type RmsSaved, FLOAT_HELD, LlamaGraph, modulePrefix } from "./llama-graph";

export const gradOutput = (name: string) => `grad:${name}`;

/** What a train graph differentiates: an adapter's tensors, or every base weight. */
export type TrainMode = AdapterLayout | { method: "full" };

export function buildTrainGraph(c: ModelConfig, mode: TrainMode, tiedHead: boolean, soft = false, held: HeldGraph = FLOAT_HELD): Uint8Array {
  const full = mode.method === "full";
  if (full && held.quant.size) throw new Error("full fine-tuning needs float32 weights"); // the runtime refuses it first, with the way out
  const lg = new LlamaGraph(c, mode.method === "full" ? undefined : mode, "train", tiedHead, false, held);
  const g = lg.g;
  // Only rows that count in the loss reach the head: prompt tokens and padding (often most of an
  // instruction batch) skip the final norm, lm_head and softmax, forward and backward.
  const rows = g.input("loss_rows", "int32", ["N"]); // indices into the B·T rows
  const weights = g.input("weights", "float32", ["N"]);
  const scale = g.input("scale", "float32", []);

  // Forward, keeping what the backward needs.
  let x = lg.embed();
  const saved: BlockSaved[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    const r = lg.block(i, x);
    saved.push(r.saved);
    x = r.out;
  }
  const head = lg.head(g.op("Gather", [x, rows], { axis: 0 })); // [N, C] -> logits [N, V]
  const w = g.reshape(weights, g.ints([-1, 1])); // [N, 1]
  const ws = g.mul(w, scale); // [N, 1]
  let dlogits: string; // d(loss·scale)/dlogits  [N, V]
  if (soft) {
    const q = g.input("soft", "float32", ["N", c.vocabSize]);
    const lp = g.logSoftmax(head.logits);
    g.output(g.neg(g.sum(g.mul(g.sum(g.mul(q, lp), [1]), w), [0, 1], false)), "loss_sum");
    // d/dz of −Σ_v q_v·log softmax(z)_v = softmax(z)·Σq − q (= softmax − q for probabilities).
    dlogits = g.mul(g.sub(g.mul(g.exp(lp), g.sum(q, [1])), q), ws);
  } else {
    const targets = g.input("targets", "int32", ["N"]);
    const { lp, picked, flatTargets } = lg.pickLogprobs(head.logits, targets);
    g.output(g.neg(g.sum(g.mul(picked, w), [0, 1], false)), "loss_sum");
    // scale·w·(softmax − onehot): scale·w·softmax, then 1 taken off at each target in place
    // (no [N, V] one-hot is made).
    const pw = g.mul(g.exp(lp), ws);
    const atTarget = g.sub(g.op("GatherElements", [pw, flatTargets], { axis: 1 }), ws); // [N, 1]
    dlogits = g.op("ScatterElements", [pw, flatTargets, atTarget], { axis: 1 });
  }
  const dxRows = rmsBackward(lg, lg.headBackward(dlogits), head.norm, full ? "model.norm.weight" : undefined); // [N, C]
  const dHead = full ? g.gemmTA(dlogits, head.h) : ""; // d lm_head = dlogitsᵀ·h  [V, C]
  if (full && !tiedHead) g.output(dHead, gradOutput("lm_head.weight"));
  const zeros = g.op("ConstantOfShape", [g.op("Shape", [x])]); // [B·T, C]
  const rowIndex = g.reshape(g.op("Cast", [rows], { to: 7 /* int64 */ }), g.ints([-1, 1])); // [N, 1]
  let dx = g.op("ScatterND", [zeros, rowIndex, dxRows]); // [B·T, C]: zero where nothing is learned

  const lowest = mode.method === "full" ? 0 : Math.min(...mode.layers);
  const image: ImageGrads = {};
  for (let i = c.numLayers - 1; i >= lowest; i--) dx = blockBackward(lg, i, saved[i], dx, full || i > lowest, full, image);
  if (lg.vision) {
    // The projections are shared by all adapted layers: their gradients are the layers' sums, then
    // dWv = Σ_b dKv_bᵀ F_b, one Gemm over the batch's B·Nv image tokens.
    const iv = lg.imageKv();
    const flat = (d3: string) => g.reshape(d3, g.ints([-1, lg.cq])); // [B·Nv, Cq]
    g.output(g.gemmTA(flat(image.dk3!), iv.feats2), gradOutput(VISION_TENSORS.key)); // [Cq, Cv]
    g.output(g.gemmTA(flat(image.dv3!), iv.feats2), gradOutput(VISION_TENSORS.value));
  }

  if (full) {
    // The embedding's gradient: dx at the bottom of layer 0, added up per token id (a token that
    // occurs twice gets both rows), plus lm_head's gradient when the head reads the embedding.
    const table = lg.weight("model.embed_tokens.weight", [c.vocabSize, c.hiddenSize]);
    const ids = g.reshape(g.op("Cast", [lg.ids], { to: 7 /* int64 */ }), g.ints([-1, 1])); // [B·T, 1]
    const dTable = g.op("ScatterND", [g.op("ConstantOfShape", [g.op("Shape", [table])]), ids, dx], { reduction: { s: "add" } }); // [V, C]
    g.output(tiedHead ? g.add(dTable, dHead) : dTable, gradOutput("model.embed_tokens.weight"));
  }
  return g.encode();
}

/** The image keys' and values' gradients, [B, Nv, Cq], summed over the adapted layers so far. */
interface ImageGrads {
  dk3?: string;
  dv3?: string;
}

/**
 * y = n·w with n = x / rms:  dx = (dn − n·mean(dn·n)) / rms, dn = dy·w. With `weightName`
 * (full training) also emits dw = Σ_rows dy·n.
 */
function rmsBackward(lg: LlamaGraph, dy: string, s: RmsSaved, weightName?: string): string {
  const g = lg.g;
  if (weightName) g.output(g.sum(g.mul(dy, s.n), [0], false), gradOutput(weightName)); // [C]
  const dn = g.mul(dy, s.w);
  return g.op("Div", [g.sub(dn, g.mul(s.n, g.mean(g.mul(dn, s.n), [-1]))), s.rms]);
}

/**
 * The adjoint of one of a layer's linears, y = x·Wᵀ (+ b) (+ s·(x·Aᵀ)·Bᵀ with LoRA, u = x·Aᵀ),
 * for dy [N, out]: emits dW, db (full training) or dA, dB (LoRA), and returns dx [N, in] when
 * `needDx` (else "").
 */
function linearBackward(lg: LlamaGraph, i: number, module: LoraModule, dy: string, x: string, u: string | undefined, bias: boolean, needDx: boolean, full: boolean): string {
  const g = lg.g;
  const name = modulePrefix(i, module);
  const [out, inp] = lg.moduleShape(module);
  if (full) {
    g.output(g.gemmTA(dy, x), gradOutput(`${name}.weight`)); // dW = dyᵀ·x  [out, in]
    if (bias) g.output(g.sum(dy, [0], false), gradOutput(`${name}.bias`)); // [out]
  }
  let dx = needDx ? lg.matmulBackward(dy, `${name}.weight`, [out, inp]) : ""; // dy·W  [N, in]
  if (u) {
    const s = (lg.adapter as LoraLayout).scaling;
    const [A, B] = lg.loraWeights(i, module);
    g.output(g.gemmTA(dy, u, s), gradOutput(loraTensorName(i, module, "B"))); // dB = s·dyᵀ·(x·Aᵀ)  [out, r]
    const dyB = g.scale(g.matmul(dy, B), s); // s·dy·B  [N, r]
    g.output(g.gemmTA(dyB, x), gradOutput(loraTensorName(i, module, "A"))); // dA = s·(dy·B)ᵀ·x  [r, in]
    if (needDx) dx = g.add(dx, g.matmul(dyB, A)); // + s·(dy·B)·A
  }
  return dx;
}

/**
 * dx (gradient at the block output) -> gradient at the block input; emits the gradients of the
 * layer's trained tensors. `needInput` false (the lowest adapted layer) computes only what those
 * gradients need.
 */
function blockBackward(lg: LlamaGraph, i: number, s: BlockSaved, dx: string, needInput: boolean, full: boolean, image: ImageGrads): string {
  const { g, c } = lg;
  const { headDim: d } = c;
  const p = `model.layers.${i}`;
  const lora = (m: LoraModule) => lg.hasLora(i, m);
  const excitor = lg.hasExcitor(i);
  const lin = (m: LoraModule, dy: string, x: string, bias: boolean, needDx: boolean) => linearBackward(lg, i, m, dy, x, s.lora[m], bias, needDx, full);
  // Which activation gradients this layer needs (full training: all of them).
  const needQ = needInput || lora("q_proj");
  const needK = needInput || lora("k_proj") || excitor;
  const needV = needInput || lora("v_proj");
  const needAttn = needQ || needK || needV; // d(P·V)
  const needX1 = needAttn || lora("o_proj"); // d at the attention's residual output
  const needMlpIn = needX1 || lora("gate_proj") || lora("up_proj"); // d(silu(gt)·up)

  // MLP: out = x1 + down(silu(gt)·up)
  const dact = lin("down_proj", dx, s.act, false, needMlpIn); // [B·T, I]
  if (!needMlpIn) return "";
  // σ(gt) and the attention probabilities are recomputed here rather than kept from the forward:
  // [B·T, I] and [B, H, T, T] per layer, 30 % of a 1.1B model's training activations at 256
  // tokens, for ~1 % more compute. g.after makes them nodes of their own (onnxruntime would merge
  // them with the forward's) that run now, not during the forward.
  const sg = g.sigmoid(g.after(s.gt, dact));
  const dup = g.mul(dact, g.mul(s.gt, sg));
  const dsilu = g.mul(dact, s.up);
  const one = g.scalar(1);
  const dgt = g.mul(dsilu, g.mul(sg, g.add(one, g.mul(s.gt, g.sub(one, sg))))); // silu'(x) = σ(x)(1 + x(1 − σ(x)))
  const dh2 = [lin("gate_proj", dgt, s.h2, false, needX1), lin("up_proj", dup, s.h2, false, needX1)];
  if (!needX1) return "";
  const dx1 = g.add(dx, rmsBackward(lg, g.add(dh2[0], dh2[1]), s.mlpNorm, full ? `${p}.post_attention_layernorm.weight` : undefined)); // [B·T, C]

  // Attention: x1 = x + o_proj(P·V)
  const dO = lin("o_proj", dx1, s.o, c.oBias, needAttn); // [B·T, Cq]
  if (!needAttn) return "";
  const do5 = lg.toHeads(dO, lg.G); // [B, Hkv, G, T, d]
  const T5 = [0, 1, 2, 4, 3]; // swaps the last two axes
  const probs = lg.attend(g.after(s.qr, do5), g.transpose(s.kr, T5)); // P again  [B, Hkv, G, T, T]
  const dp = g.matmul(do5, g.transpose(s.vt, T5)); // [B, Hkv, G, T, T]
  const ds = g.scale(g.mul(probs, g.sub(dp, g.sum(g.mul(dp, probs), [-1]))), 1 / Math.sqrt(d)); // softmax backward, with the 1/sqrt(d)
  const fromHeads = (x5: string) => g.transpose(x5, [0, 3, 1, 2, 4]); // [B, Hkv, G, T, d] -> [B, T, Hkv, G, d]
  const dhs: string[] = [];
  let dk5 = "";
  if (needK) {
    let dkr = g.matmul(g.transpose(ds, T5), s.qr); // [B, Hkv, G, T, d]
    if (!excitor && lg.G > 1) dkr = g.sum(dkr, [2]); // a base key serves its whole group  [B, Hkv, 1, T, d]
    dk5 = fromHeads(lg.ropeBackward(dkr)); // dK' [B, T, Hkv, G|1, d]
    if (needInput || lora("k_proj")) {
      const dk = g.reshape(excitor && lg.G > 1 ? g.sum(dk5, [3]) : dk5, g.ints([-1, lg.ckv])); // dKb [B·T, Hkv·d]
      dhs.push(lin("k_proj", dk, s.h, c.qkvBias, needInput));
    }
  }
  if (needQ) {
    const dqr = g.matmul(ds, s.kr); // [B, Hkv, G, T, d]
    const dq = g.reshape(fromHeads(lg.ropeBackward(dqr)), g.ints([-1, lg.cq])); // [B·T, Cq]
    dhs.push(lin("q_proj", dq, s.h, c.qkvBias, needInput));
  }
  if (needV) {
    let dvt = g.matmul(g.transpose(probs, T5), do5); // [B, Hkv, G, T, d]
    if (lg.G > 1) dvt = g.sum(dvt, [2]); // [B, Hkv, 1, T, d]
    const dv = g.reshape(fromHeads(dvt), g.ints([-1, lg.ckv]));
    dhs.push(lin("v_proj", dv, s.h, c.qkvBias, needInput));
  }

  if (excitor) {
    const ex = s.ex!;
    const C = c.hiddenSize;
    const rank = (lg.adapter as { rank: number }).rank;
    const sqrtCq = Math.sqrt(lg.cq);
    const wUp = lg.weight(tensorName(i, "up.weight"), [lg.cq, rank]);
    // With quantized weights (text-only), E = A·P, QE = u·Wupᵀ and the normed input h = n·w are
    // recomputed here from the small A [B·T, K], u [B·T, r] and n (kept for the norm's backward
    // anyway) rather than kept from the forward: 3 × [B·T, C] per adapted layer (1.1B, 256 tokens:
    // 1,781 -> 1,632 MB at 4 bits). Float32 weights keep them: the same math, but the changed
    // rounding moved the demo's 480-step run from 98 % to 77 % exact match, a recipe that sensitive
    // (issue 17) must not change with a memory optimisation. (g.after: see the MLP's σ above.)
    const recompute = !ex.av && lg.held.quant.size > 0;
    const e5 = !recompute ? ex.e5 : g.reshape(g.matmul(g.after(ex.a, dk5), ex.prompts), lg.shapeBT([c.numKvHeads, lg.G, d])); // [B, T, Hkv, G, d]
    // K' = Kb + g·E
    g.output(g.reshape(g.sum(g.mul(dk5, e5), [0, 1, 4], false), g.ints([c.numHeads])), gradOutput(tensorName(i, "gate"))); // dg_h = Σ dK'_h·E_h
    const de = g.reshape(g.mul(dk5, ex.gate5), g.ints([-1, lg.cq])); // [B·T, Cq]
    const dP1 = g.gemmTA(ex.ap, de); // E = A_p P + ...: dP from the values  [K, Cq]
    let dzp: string; // d(QE P^T / sqrt(Cq))  [B·T, K]
    let dqe: string; // [B·T, Cq]
    const softmaxBackward = (da: string) => g.scale(g.mul(ex.a, g.sub(da, g.sum(g.mul(da, ex.a), [-1]))), 1 / sqrtCq);
    if (ex.av) {
      // E = A_p P + A_v (F Wvv^T), A = softmax([QE P^T ; QE (F Wvk^T)^T] / sqrt(Cq)) over K+Nv.
      const iv = lg.imageKv();
      const K = (lg.adapter as { numPrompts: number }).numPrompts;
      const Nv = lg.vision!.numTokens;
      const de3 = g.reshape(de, lg.shapeBT([lg.cq])); // [B, T, Cq]
      const da = g.concat([g.reshape(g.gemmT(de, ex.prompts), lg.shapeBT([K])), g.matmul(de3, g.transpose(iv.v3, [0, 2, 1]))], 2); // [B, T, K+Nv]
      const dz = softmaxBackward(da); // [B, T, K+Nv]
      dzp = g.reshape(g.slice(dz, 2, 0, K), g.ints([-1, K]));
      const dzv = g.slice(dz, 2, K, K + Nv); // [B, T, Nv]
      dqe = g.add(g.matmul(dzp, ex.prompts), g.reshape(g.matmul(dzv, iv.k3), g.ints([-1, lg.cq])));
      const dv3 = g.matmul(g.transpose(ex.av, [0, 2, 1]), de3); // d(F Wvv^T)  [B, Nv, Cq]
      const dk3 = g.matmul(g.transpose(dzv, [0, 2, 1]), ex.qe3!); // d(F Wvk^T)  [B, Nv, Cq]
      image.dv3 = image.dv3 ? g.add(image.dv3, dv3) : dv3;
      image.dk3 = image.dk3 ? g.add(image.dk3, dk3) : dk3;
    } else {
      // E = A P, A = softmax(QE P^T / sqrt(Cq))
      dzp = softmaxBackward(g.gemmT(de, ex.prompts)); // [B·T, K]
      dqe = g.matmul(dzp, ex.prompts);
    }
    const qe = !recompute ? ex.qe : g.gemmT(g.after(ex.u, dzp), wUp); // [B·T, Cq]
    g.output(g.add(dP1, g.gemmTA(dzp, qe)), gradOutput(tensorName(i, "prompts")));
    // QE = (X Wdown^T) Wup^T
    g.output(g.gemmTA(dqe, ex.u), gradOutput(tensorName(i, "up.weight"))); // [Cq, r]
    const du = g.matmul(dqe, wUp); // [B·T, r]
    const h = recompute ? g.mul(g.after(s.attnNorm.n, du), s.attnNorm.w) : s.h; // [B·T, C]
    g.output(g.gemmTA(du, h), gradOutput(tensorName(i, "down.weight"))); // [r, C]
    if (needInput) dhs.push(g.matmul(du, lg.weight(tensorName(i, "down.weight"), [rank, C])));
  }
  if (!needInput) return "";
  const dh = dhs.reduce((a, b) => g.add(a, b));
  return g.add(dx1, rmsBackward(lg, dh, s.attnNorm, full ? `${p}.input_layernorm.weight` : undefined));
}
