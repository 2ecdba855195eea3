/**
 * Where the answer looks in the picture: the visual counterpart of the instruction-mass chart.
 * The image acts only through the Excitor's keys (spec § Multimodal): key j of an adapted layer
 * is reconstructed from the prompts and the image tokens with weights A[j, :], so the share of
 * response token i's attention that reaches the picture through patch n is Σ_j p_h[i, j] · A[j, K + n].
 */
import type { ImageAttention } from "./image-attention-types";

export interface PictureView {
  /** The picture as the encoder saw it, a PNG data URI. */
  png: string;
  size: number;
  grid: number;
}

/**
 * `tuned[l]`: the layer's attention probabilities [H, M, M]; `image[l]`: its prompt attention onto
 * the Nv = 1 + G² image tokens [M, Nv] (adapted layers only). `response` is the token range analysed.
 */
export function imageAttention(tuned: Float32Array[], image: (Float32Array | undefined)[], H: number, M: number, response: [number, number], view: PictureView): ImageAttention {
  const Nv = 1 + view.grid * view.grid;
  const layers: ImageAttention["layers"] = [];
  image.forEach((a, layer) => {
    if (!a) return;
    const p = tuned[layer];
    const mass: number[][][] = [];
    const cls: number[][] = [];
    for (let h = 0; h < H; h++) {
      const mh: number[][] = [];
      const ch: number[] = [];
      for (let q = response[0]; q < response[1]; q++) {
        const through = new Float64Array(Nv); // Σ_j p_h[q, j] · A[j, n]
        for (let j = 0; j <= q; j++) {
          const w = p[(h * M + q) * M + j];
          if (w === 0) continue;
          for (let n = 0; n < Nv; n++) through[n] += w * a[j * Nv + n];
        }
        ch.push(through[0]);
        mh.push(Array.from(through.subarray(1)));
      }
      mass.push(mh);
      cls.push(ch);
    }
    layers.push({ layer, mass, cls });
  });
  return { png: view.png, size: view.size, grid: view.grid, layers };
}
