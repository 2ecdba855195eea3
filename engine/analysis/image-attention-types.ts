/** Where the answer looks in the picture (multimodal adapters, with an image). */
export interface ImageAttention {
  /** The picture as the encoder saw it (shortest edge resized, center-cropped), S×S, "data:image/png;base64,...". */
  png: string;
  /** S, pixels per side. */
  size: number;
  /** G, patches per side; the encoder's tokens are the class token then the G×G patches row-major. */
  grid: number;
  /**
   * Per adapted layer: mass[h][i][n], for head h and response token i (0-based within the response),
   * the attention mass that goes through image patch n (n < G·G): Σ_j p_h[i, j] · A[j, K + 1 + n], where p is the
   * layer's attention probabilities and A the Excitor prompt attention over [prompts; image features]. `cls[h][i]`
   * is the same through the class token. The base model cannot see the image: its mass is 0 everywhere.
   */
  layers: { layer: number; mass: number[][][]; cls: number[][] }[];
}
