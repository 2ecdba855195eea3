/**
 * Reads a PNG or JPEG file into 8-bit RGB, as `PIL.Image.open(f)` followed by transformers'
 * `convert_to_rgb` gives it to CLIPImageProcessor: greyscale is repeated over the three
 * channels, and an image with transparency (RGBA, grey + alpha, a palette or colour key with
 * tRNS) is composited on white. The decoders are pure JS (pngjs, jpeg-js), so the .vsix carries
 * no native module. Where they differ from PIL: 16-bit PNG samples are scaled to 8 bits
 * (PIL keeps the high byte of RGB and clips greyscale), and jpeg-js upsamples subsampled
 * chroma by repetition where libjpeg interpolates (a pixel value or two apart).
 * The format is told by the file's first bytes, not its name.
 */
import * as fs from "node:fs";
import jpeg from "jpeg-js";
import { PNG } from "pngjs";
import { ExcitorInputError } from "../errors";

export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array; // [H, W, 3]
}

/**
 * The most pixels an image may have (PIL's decompression-bomb error starts at 2 × 89 M): checked
 * from the header, before a byte of pixel data is decoded.
 */
export const MAX_IMAGE_PIXELS = 100_000_000;

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Formats recognised only to name them when refusing. */
const OTHER_FORMATS: [string, (b: Buffer) => boolean][] = [
  ["GIF", (b) => b.subarray(0, 4).toString("latin1") === "GIF8"],
  ["BMP", (b) => b.subarray(0, 2).toString("latin1") === "BM"],
  ["WebP", (b) => b.subarray(0, 4).toString("latin1") === "RIFF" && b.subarray(8, 12).toString("latin1") === "WEBP"],
  ["TIFF", (b) => ["II*\0", "MM\0*"].includes(b.subarray(0, 4).toString("latin1"))],
  ["HEIF/AVIF", (b) => b.subarray(4, 8).toString("latin1") === "ftyp"],
];

export function readImage(file: string): RgbImage {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ExcitorInputError(err.code === "ENOENT" ? `${file}: image not found` : `${file}: cannot read the image (${err.message})`, file);
  }
  return decodeImage(bytes, file);
}

/** Decodes PNG or JPEG bytes; `file` names them in errors. */
export function decodeImage(bytes: Buffer, file: string): RgbImage {
  if (PNG_MAGIC.every((v, i) => bytes[i] === v)) return decodePng(bytes, file);
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return decodeJpeg(bytes, file);
  const other = OTHER_FORMATS.find(([, test]) => test(bytes));
  if (other) throw new ExcitorInputError(`${file}: is a ${other[0]} image; supported image formats: PNG, JPEG`, file);
  throw new ExcitorInputError(`${file}: not a PNG or JPEG image${bytes.length === 0 ? " (the file is empty)" : ""}`, file);
}

function checkSize(width: number, height: number, file: string): void {
  if (width === 0 || height === 0) throw new ExcitorInputError(`${file}: the image header says ${width}x${height} pixels; an image needs at least one`, file);
  if (width * height > MAX_IMAGE_PIXELS)
    throw new ExcitorInputError(`${file}: the image is ${width}x${height} pixels (${((width * height) / 1e6).toFixed(0)} megapixels), over the ${MAX_IMAGE_PIXELS / 1e6}-megapixel limit; scale it down first`, file);
}

function decodePng(bytes: Buffer, file: string): RgbImage {
  // IHDR is the first chunk: length, "IHDR", width, height (big-endian).
  if (bytes.length < 24 || bytes.subarray(12, 16).toString("latin1") !== "IHDR") throw new ExcitorInputError(`${file}: not a readable PNG image (the header is truncated or has no IHDR chunk)`, file);
  checkSize(bytes.readUInt32BE(16), bytes.readUInt32BE(20), file);
  const end = pngEnd(bytes, file);
  let png: { width: number; height: number; data: Buffer };
  try {
    png = PNG.sync.read(bytes.subarray(0, end)); // always RGBA, 8 bits
  } catch (e) {
    const msg = String((e as Error)?.message ?? e);
    const why = /read requests|end of input|ran out of data/i.test(msg) ? "the file is truncated" : msg;
    throw new ExcitorInputError(`${file}: not a readable PNG image (${why})`, file);
  }
  return fromRgba(png.width, png.height, png.data);
}

/**
 * Walks the chunks (length, type, data, CRC-32) up to IEND and returns where IEND ends. pngjs's
 * sync reader reports a checksum error or a truncation as "unrecognised content at end of
 * stream", and refuses bytes after IEND, which PIL ignores: both are settled here first.
 */
function pngEnd(bytes: Buffer, file: string): number {
  const bad = (why: string) => new ExcitorInputError(`${file}: not a readable PNG image (${why})`, file);
  let at = 8;
  for (;;) {
    if (at + 12 > bytes.length) throw bad("the file is truncated");
    const len = bytes.readUInt32BE(at);
    const type = bytes.subarray(at + 4, at + 8).toString("latin1");
    if (at + 12 + len > bytes.length) throw bad(`the file is truncated inside its ${type} chunk`);
    if (crc32(bytes.subarray(at + 4, at + 8 + len)) !== bytes.readUInt32BE(at + 8 + len)) throw bad(`the ${type} chunk at byte ${at} fails its CRC check: the file is corrupt`);
    at += 12 + len;
    if (type === "IEND") return at;
  }
}

let CRC_TABLE: Uint32Array | undefined;

/** CRC-32 (ISO 3309, as PNG uses); zlib.crc32 is missing from the Node of older VS Code releases. */
function crc32(b: Uint8Array): number {
  CRC_TABLE ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c;
  });
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * RGBA -> RGB composited on opaque white, with PIL's integer arithmetic
 * (Image.alpha_composite, libImaging/AlphaComposite.c, 7 bits of extra precision).
 */
function fromRgba(width: number, height: number, rgba: Uint8Array): RgbImage {
  const n = width * height;
  const data = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const a = rgba[4 * i + 3];
    for (let c = 0; c < 3; c++) {
      const src = rgba[4 * i + c];
      if (a === 255) data[3 * i + c] = src;
      else if (a === 0) data[3 * i + c] = 255;
      else {
        // Over a white opaque background: coef1 = a·2^7, coef2 = (255 − a)·2^7.
        const tmp = src * a * 128 + 255 * (255 - a) * 128 + (0x80 << 7);
        data[3 * i + c] = (((tmp >> 8) + tmp) >> 8) >> 7;
      }
    }
  }
  return { width, height, data };
}

/** The frame header (SOFn) of a JPEG: what jpeg-js would decode, checked before it does. */
interface JpegFrame {
  /** Where the frame header starts (after any APPn segment, e.g. an EXIF thumbnail with its own end marker). */
  offset: number;
  marker: number;
  precision: number;
  height: number;
  width: number;
  components: number;
}

const EOI = Buffer.from([0xff, 0xd9]);

function jpegFrame(b: Buffer): JpegFrame | undefined {
  let at = 2;
  while (at + 4 <= b.length) {
    if (b[at] !== 0xff) return undefined;
    const marker = b[at + 1];
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      at += 2;
      continue;
    }
    const len = b.readUInt16BE(at + 2);
    // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (at + 10 > b.length) return undefined;
      return { offset: at, marker, precision: b[at + 4], height: b.readUInt16BE(at + 5), width: b.readUInt16BE(at + 7), components: b[at + 9] };
    }
    if (marker === 0xda || marker === 0xd9) return undefined; // scan data or the end before any frame
    at += 2 + len;
  }
  return undefined;
}

function decodeJpeg(bytes: Buffer, file: string): RgbImage {
  const bad = (why: string) => new ExcitorInputError(`${file}: not a readable JPEG image (${why})`, file);
  const frame = jpegFrame(bytes);
  if (!frame) throw bad("no frame header; the file is truncated or corrupt");
  if (frame.marker >= 0xc9) throw new ExcitorInputError(`${file}: is an arithmetic-coded JPEG, which is not supported; re-save it as a baseline or progressive JPEG (or PNG)`, file);
  if (frame.marker === 0xc3 || frame.marker === 0xc7) throw new ExcitorInputError(`${file}: is a lossless or hierarchical JPEG, which is not supported; re-save it as a baseline or progressive JPEG (or PNG)`, file);
  if (frame.precision !== 8) throw new ExcitorInputError(`${file}: is a ${frame.precision}-bit JPEG; only 8-bit JPEG images are supported`, file);
  if (![1, 3, 4].includes(frame.components)) throw new ExcitorInputError(`${file}: is a JPEG with ${frame.components} colour components; supported: greyscale, RGB (YCbCr), CMYK/YCCK`, file);
  checkSize(frame.width, frame.height, file);
  // jpeg-js decodes a cut-off scan as if the missing bytes were zeros; PIL refuses it ("image file
  // is truncated"). The end-of-image marker cannot occur inside entropy-coded data, so a file
  // without one after its frame header was cut off.
  if (bytes.lastIndexOf(EOI) < frame.offset) throw bad("the file is truncated: it has no end-of-image marker");
  let img: { width: number; height: number; data: Uint8Array };
  try {
    img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, maxResolutionInMP: MAX_IMAGE_PIXELS / 1e6, maxMemoryUsageInMB: 2048 });
  } catch (e) {
    const msg = String((e as Error)?.message ?? e);
    if (/4 components/.test(msg)) throw new ExcitorInputError(`${file}: is a CMYK JPEG without an Adobe marker, whose colours cannot be told apart; convert it to RGB first`, file);
    throw bad(/marker was not found/.test(msg) ? "the file is truncated" : msg);
  }
  if (img.data.length !== img.width * img.height * 3) throw bad(`decoded ${img.data.length} bytes for ${img.width}x${img.height} RGB`);
  return { width: img.width, height: img.height, data: img.data };
}

/** Encodes RGB [H, W, 3] as a PNG (for the attention overlay). */
export function encodePng(img: RgbImage): Buffer {
  return PNG.sync.write(img, { colorType: 2, inputColorType: 2, inputHasAlpha: false });
}
