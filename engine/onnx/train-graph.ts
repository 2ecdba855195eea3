/**
 * One Excitor training step as an ONNX graph: the forward pass, the masked cross-entropy,
 * and a hand-derived backward pass to the Excitor tensors only. Frozen weights get no
 * gradient, so the backward is activation gradients through the blocks from the top down
 * to the lowest adapted layer, plus the four Excitor gradients in each adapted layer.
 *
 * Inputs: those of LlamaGraph, plus `loss_rows` [N] (the rows of the B·T positions whose target
 * counts), their `targets` [N] and `weights` [N], and `scale` (scalar). Outputs: `loss_sum` = Σ weights·(−log p(target)) and,
 * for each adapter tensor, `grad:<spec name>` = d(loss_sum · scale)/dθ.
 *
 * Every line below is the adjoint of one line of LlamaGraph.block; test/onnx.test.ts checks
 * the result against tfjs's autodiff and against finite differences.
 */
import type { ModelConfig } from "../model/config";
import { tensorName } from "../excitor/config";
import { type AdapterLayout, type BlockSaved, type RmsSaved, LlamaGraph } from "./llama-graph";

export const gradOutput = (name: string) => `grad:${name}`;

export function buildTrainGraph(c: ModelConfig, adapter: AdapterLayout, tiedHead: boolean): Uint8Array {
  const lg = new LlamaGraph(c, adapter, "train", tiedHead);
  const g = lg.g;
  // Only rows that count in the loss reach the head: prompt tokens and padding (often most of an
  // instruction batch) skip the final norm, lm_head and softmax, forward and backward.
  const rows = g.input("loss_rows", "int32", ["N"]); // indices into the B·T rows
  const targets = g.input("targets", "int32", ["N"]);
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
  const { lp, picked, flatTargets } = lg.pickLogprobs(head.logits, targets);
  const w = g.reshape(weights, g.ints([-1, 1])); // [N, 1]
  g.output(g.neg(g.sum(g.mul(picked, w), [0, 1], false)), "loss_sum");

  // d(loss·scale)/dlogits = scale·w·(softmax − onehot)   [N, V]: scale·w·softmax, then 1 taken
  // off at each target in place (no [N, V] one-hot is made).
  const ws = g.mul(w, scale); // [N, 1]
  const pw = g.mul(g.exp(lp), ws);
  const atTarget = g.sub(g.op("GatherElements", [pw, flatTargets], { axis: 1 }), ws); // [N, 1]
  const dlogits = g.op("ScatterElements", [pw, flatTargets, atTarget], { axis: 1 });
  const dxRows = rmsBackward(lg, g.matmul(dlogits, head.lmHead), head.norm); // [N, C]
  const zeros = g.op("ConstantOfShape", [g.op("Shape", [x])]); // [B·T, C]
  const rowIndex = g.reshape(g.op("Cast", [rows], { to: 7 /* int64 */ }), g.ints([-1, 1])); // [N, 1]
  let dx = g.op("ScatterND", [zeros, rowIndex, dxRows]); // [B·T, C]: zero where nothing is learned

  const lowest = Math.min(...adapter.layers);
  for (let i = c.numLayers - 1; i >= lowest; i--) dx = blockBackward(lg, i, saved[i], dx, i > lowest);
  return g.encode();
}

/** y = n·w with n = x / rms:  dx = (dn − n·mean(dn·n)) / rms, dn = dy·w. */
function rmsBackward(lg: LlamaGraph, dy: string, s: RmsSaved): string {
  const g = lg.g;
  const dn = g.mul(dy, s.w);
  return g.op("Div", [g.sub(dn, g.mul(s.n, g.mean(g.mul(dn, s.n), [-1]))), s.rms]);
}

/**
 * dx (gradient at the block output) -> gradient at the block input; emits the Excitor
 * gradients of an adapted layer. `needInput` false skips the last step (the lowest layer).
 */
function blockBackward(lg: LlamaGraph, i: number, s: BlockSaved, dx: string, needInput: boolean): string {
  const { g, c } = lg;
  const p = `model.layers.${i}`;
  const C = c.hiddenSize;
  const I = c.intermediateSize;
  const { numKvHeads: Hkv, headDim: d } = c;
  const W = (name: string, out: number, inp: number) => lg.weight(`${p}.${name}.weight`, [out, inp]);
  const back = (dy: string, name: string, out: number, inp: number) => g.matmul(dy, W(name, out, inp)); // dx = dy·W

  // MLP: out = x1 + down(silu(gt)·up)
  const dact = back(dx, "mlp.down_proj", C, I); // [B·T, I]
  const dup = g.mul(dact, g.mul(s.gt, s.sg));
  const dsilu = g.mul(dact, s.up);
  const one = g.scalar(1);
  const dgt = g.mul(dsilu, g.mul(s.sg, g.add(one, g.mul(s.gt, g.sub(one, s.sg))))); // silu'(x) = σ(x)(1 + x(1 − σ(x)))
  const dh2 = g.add(back(dgt, "mlp.gate_proj", I, C), back(dup, "mlp.up_proj", I, C));
  const dx1 = g.add(dx, rmsBackward(lg, dh2, s.mlpNorm)); // [B·T, C]

  // Attention: x1 = x + o_proj(P·V)
  const do5 = lg.toHeads(back(dx1, "self_attn.o_proj", C, lg.cq), lg.G); // [B, Hkv, G, T, d]
  const T5 = [0, 1, 2, 4, 3]; // swaps the last two axes
  const dp = g.matmul(do5, g.transpose(s.vt, T5)); // [B, Hkv, G, T, T]
  const ds = g.scale(g.mul(s.p, g.sub(dp, g.sum(g.mul(dp, s.p), [-1]))), 1 / Math.sqrt(d)); // softmax backward, with the 1/sqrt(d)
  const adapted = lg.isAdapted(i);
  const fromHeads = (x5: string) => g.transpose(x5, [0, 3, 1, 2, 4]); // [B, Hkv, G, T, d] -> [B, T, Hkv, G, d]
  let dkr = g.matmul(g.transpose(ds, T5), s.qr); // [B, Hkv, G, T, d]
  if (!adapted && lg.G > 1) dkr = g.sum(dkr, [2]); // a base key serves its whole group  [B, Hkv, 1, T, d]
  const dk5 = fromHeads(lg.ropeBackward(dkr)); // dK' [B, T, Hkv, G|1, d]

  // Below the lowest adapted layer nothing trains: there, only dK' is needed (for the Excitor).
  let dh = "";
  if (needInput) {
    const dqr = g.matmul(ds, s.kr); // [B, Hkv, G, T, d]
    let dvt = g.matmul(g.transpose(s.p, T5), do5); // [B, Hkv, G, T, d]
    if (lg.G > 1) dvt = g.sum(dvt, [2]); // [B, Hkv, 1, T, d]
    const dq = g.reshape(fromHeads(lg.ropeBackward(dqr)), g.ints([-1, lg.cq])); // [B·T, Cq]
    const dk = g.reshape(adapted && lg.G > 1 ? g.sum(dk5, [3]) : dk5, g.ints([-1, lg.ckv])); // dKb [B·T, Hkv·d]
    const dv = g.reshape(fromHeads(dvt), g.ints([-1, lg.ckv]));
    dh = g.add(g.add(back(dq, "self_attn.q_proj", lg.cq, C), back(dk, "self_attn.k_proj", lg.ckv, C)), back(dv, "self_attn.v_proj", lg.ckv, C));
  }

  if (adapted) {
    const ex = s.ex!;
    const sqrtCq = Math.sqrt(lg.cq);
    // K' = Kb + g·E
    g.output(g.reshape(g.sum(g.mul(dk5, ex.e5), [0, 1, 4], false), g.ints([c.numHeads])), gradOutput(tensorName(i, "gate"))); // dg_h = Σ dK'_h·E_h
    const de = g.reshape(g.mul(dk5, ex.gate5), g.ints([-1, lg.cq])); // [B·T, Cq]
    // E = A P
    const da = g.gemmT(de, ex.prompts); // [B·T, K]
    const dP1 = g.gemmTA(ex.a, de); // [K, Cq]
    // A = softmax(QE P^T / sqrt(Cq))
    const dz = g.scale(g.mul(ex.a, g.sub(da, g.sum(g.mul(da, ex.a), [-1]))), 1 / sqrtCq); // [B·T, K]
    const dqe = g.matmul(dz, ex.prompts); // [B·T, Cq]
    g.output(g.add(dP1, g.gemmTA(dz, ex.qe)), gradOutput(tensorName(i, "prompts")));
    // QE = (X Wdown^T) Wup^T
    g.output(g.gemmTA(dqe, ex.u), gradOutput(tensorName(i, "up.weight"))); // [Cq, r]
    const du = g.matmul(dqe, lg.weight(tensorName(i, "up.weight"), [lg.cq, lg.adapter!.rank])); // [B·T, r]
    g.output(g.gemmTA(du, s.h), gradOutput(tensorName(i, "down.weight"))); // [r, C]
    if (needInput) dh = g.add(dh, g.matmul(du, lg.weight(tensorName(i, "down.weight"), [lg.adapter!.rank, C])));
  }
  if (!needInput) return "";
  return g.add(dx1, rmsBackward(lg, dh, s.attnNorm));
}
