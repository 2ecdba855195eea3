/**
 * CLIPImageProcessor's preprocessing, step for step as transformers runs it: resize (PIL's
 * bicubic resampler on 8-bit RGB), center crop (zero-padded where the image is smaller), rescale
 * and normalize (float32, as numpy computes them there). Matching PIL to the last bit matters:
 * the encoder's features of a training image should be the ones the reference pipeline sees.
 */
import type { PreprocessConfig } from "./config";
import type { RgbImage } from "./image";

/** Resize, center crop and normalize: [3, H, W] (H × W = crop_size when center-cropping). */
export function preprocess(img: RgbImage, p: PreprocessConfig): Float32Array {
  return normalizePixels(resizeAndCrop(img, p), p);
}

/** The 8-bit picture the encoder sees: resized and center-cropped, before rescaling. */
export function resizeAndCrop(img: RgbImage, p: PreprocessConfig): RgbImage {
  let out = img;
  if (p.doResize) {
    const [h, w] = resizeTarget(img.height, img.width, p.size);
    out = resizeBicubic(out, w, h);
  }
  if (p.doCenterCrop) out = centerCrop(out, p.crop.height, p.crop.width);
  return out;
}

/**
 * [height, width] after resizing (transformers' get_resize_output_image_size with
 * default_to_square=False): the short side becomes `shortestEdge`, the long one
 * int(shortestEdge · long / short), truncated as Python's int() does.
 */
export function resizeTarget(height: number, width: number, size: PreprocessConfig["size"]): [number, number] {
  if (!("shortestEdge" in size)) return [size.height, size.width];
  const s = size.shortestEdge;
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc((s * long) / short);
  return width <= height ? [newLong, s] : [s, newLong];
}

/**
 * transformers' center_crop: top = (h − ch) // 2, left = (w − cw) // 2 (floor division), and
 * where the image is smaller than the crop it is padded with zeros, which comes down to
 * out(i, j) = in(i + top, j + left), or 0 outside the image.
 */
export function centerCrop(img: RgbImage, ch: number, cw: number): RgbImage {
  if (img.height === ch && img.width === cw) return img;
  const top = Math.floor((img.height - ch) / 2);
  const left = Math.floor((img.width - cw) / 2);
  const data = new Uint8Array(ch * cw * 3); // [ch, cw, 3], zeros where padded
  for (let i = 0; i < ch; i++) {
    const y = i + top;
    if (y < 0 || y >= img.height) continue;
    const x0 = Math.max(0, left);
    const x1 = Math.min(img.width, left + cw);
    if (x1 <= x0) continue;
    data.set(img.data.subarray((y * img.width + x0) * 3, (y * img.width + x1) * 3), (i * cw + x0 - left) * 3);
  }
  return { width: cw, height: ch, data };
}

/**
 * [H, W, 3] uint8 -> [3, H, W] float32: (v · rescale_factor − mean) / std. transformers rescales
 * in float64 and casts to float32, then normalizes in float32; Math.fround does the same.
 */
export function normalizePixels(img: RgbImage, p: PreprocessConfig): Float32Array {
  const n = img.width * img.height;
  const out = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(p.imageMean[c]);
    const std = Math.fround(p.imageStd[c]);
    for (let i = 0; i < n; i++) {
      let v = img.data[3 * i + c];
      if (p.doRescale) v = Math.fround(v * p.rescaleFactor);
      if (p.doNormalize) v = Math.fround(v - mean) / std;
      out[c * n + i] = v;
    }
  }
  return out;
}

// ---- PIL's resampler (libImaging/Resample.c), bicubic, 8 bits a channel ----

/** Fixed-point fraction bits of PIL's 8-bit coefficients. */
const PRECISION_BITS = 32 - 8 - 2;
const BICUBIC_SUPPORT = 2;

/** PIL's bicubic kernel, a = −0.5. */
export function bicubic(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** One axis' taps: output pixel o reads inputs first[o] .. first[o] + count[o] − 1 with weights[o·ksize + k]. */
export interface Taps {
  ksize: number;
  first: Int32Array;
  count: Int32Array;
  /** Normalized to sum 1, as doubles (PIL's precompute_coeffs). */
  weights: Float64Array;
}

/**
 * PIL's precompute_coeffs for resizing inSize -> outSize: when shrinking, the kernel is
 * stretched by the scale (antialiasing), so every input pixel counts.
 */
export function precomputeTaps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = BICUBIC_SUPPORT * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * ksize);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5)); // C's (int) cast truncates
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = bicubic((x + xmin - center + 0.5) * ss);
      weights[o * ksize + x] = w;
      ww += w;
    }
    if (ww !== 0) for (let x = 0; x < xmax; x++) weights[o * ksize + x] /= ww;
    first[o] = xmin;
    count[o] = xmax;
  }
  return { ksize, first, count, weights };
}

/** PIL's normalize_coeffs_8bpc: weights as fixed-point integers, rounded half away from zero. */
function fixedPoint(weights: Float64Array): Int32Array {
  const one = 1 << PRECISION_BITS;
  return Int32Array.from(weights, (w) => (w < 0 ? Math.trunc(-0.5 + w * one) : Math.trunc(0.5 + w * one)));
}

/** PIL's clip8: the fixed-point sum back to 0..255. */
function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * PIL's Image.resize(size, BICUBIC) on RGB: a horizontal pass, then a vertical one, each
 * rounding to 8 bits; an axis whose size does not change is not resampled.
 */
export function resizeBicubic(img: RgbImage, width: number, height: number): RgbImage {
  let cur = img;
  if (width !== cur.width) {
    const taps = precomputeTaps(cur.width, width);
    const k = fixedPoint(taps.weights);
    const data = new Uint8Array(cur.height * width * 3); // [H, width, 3]
    for (let y = 0; y < cur.height; y++) {
      const row = y * cur.width * 3;
      for (let o = 0; o < width; o++) {
        const f = taps.first[o];
        for (let c = 0; c < 3; c++) {
          let acc = 1 << (PRECISION_BITS - 1);
          for (let t = 0; t < taps.count[o]; t++) acc += cur.data[row + (f + t) * 3 + c] * k[o * taps.ksize + t];
          data[(y * width + o) * 3 + c] = clip8(acc);
        }
      }
    }
    cur = { width, height: cur.height, data };
  }
  if (height !== cur.height) {
    const taps = precomputeTaps(cur.height, height);
    const k = fixedPoint(taps.weights);
    const W = cur.width;
    const data = new Uint8Array(height * W * 3); // [height, W, 3]
    for (let o = 0; o < height; o++) {
      const f = taps.first[o];
      for (let x = 0; x < W * 3; x++) {
        let acc = 1 << (PRECISION_BITS - 1);
        for (let t = 0; t < taps.count[o]; t++) acc += cur.data[(f + t) * W * 3 + x] * k[o * taps.ksize + t];
        data[o * W * 3 + x] = clip8(acc);
      }
    }
    cur = { width: W, height, data };
  }
  return cur;
}
