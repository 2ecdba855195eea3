/**
 * The demo tower's features are scaled down at export: Excitor's image keys F·Wvkᵀ start at
 * N(0, 1/Cv) weights (the spec's init), so features of norm ~19 (what pretraining leaves in the
 * residual stream) give image scores far larger than the prompts' and the softmax starts
 * saturated on the picture; at norm ~1.2 both start on one scale and the demo learns (demo/README.md).
 *
 * Exact up to LayerNorm's eps: every block reads the residual stream through a LayerNorm, which
 * ignores its scale, so scaling pre_layrnorm's output and every block's residual write
 * (out_proj, fc2) by s scales every hidden state, the features included, by s and changes nothing else.
 */
import type { F32Tensor } from "../../engine/formats/safetensors";

/** The residual writes of a CLIP tower, by its names without the `vision_model.` prefix. */
const RESIDUAL_WRITES = /^(pre_layrnorm|encoder\.layers\.\d+\.self_attn\.out_proj|encoder\.layers\.\d+\.mlp\.fc2)\.(weight|bias)$/;

export const FEATURE_SCALE = 1 / 16;

/** A copy of `tower` whose hidden states are `s` times the original's. */
export function scaleResidualStream(tower: Record<string, F32Tensor>, s: number): Record<string, F32Tensor> {
  return Object.fromEntries(Object.entries(tower).map(([n, t]) => [n, RESIDUAL_WRITES.test(n) ? { shape: t.shape, data: t.data.map((x) => x * s) } : t]));
}
