/**
 * PNG encoding of the demo's scenes (8-bit RGB, no alpha). pngjs ships no types: the one call
 * used is typed here. Deterministic: the same pixels give the same bytes.
 */
import { writeFileAtomic } from "../../engine/fs-atomic";

interface PngSync {
  write(png: { width: number; height: number; data: Uint8Array }, options: { colorType: number; inputColorType: number; inputHasAlpha: boolean }): Uint8Array;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { PNG } = require("pngjs") as { PNG: { sync: PngSync } };

const RGB = 2; // PNG colour type: truecolour without alpha

/** PNG bytes of an RGB image (row-major, 3 bytes a pixel). */
export function encodePng(rgb: Uint8Array, width: number, height: number): Uint8Array {
  if (rgb.length !== width * height * 3) throw new RangeError(`${rgb.length} bytes for a ${width}×${height} RGB image`);
  return PNG.sync.write({ width, height, data: rgb }, { colorType: RGB, inputColorType: RGB, inputHasAlpha: false });
}

export function writePng(file: string, rgb: Uint8Array, width: number, height: number): void {
  writeFileAtomic(file, encodePng(rgb, width, height));
}
