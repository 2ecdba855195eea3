/**
 * What the chat takes as an image: PNG or JPEG (by the file's first bytes), at most
 * MAX_IMAGE_BYTES, and the one-line messages that say why not. Pure: the webview checks a pasted
 * or dropped picture with these before it sends its bytes, and the host checks again whatever
 * it receives (a webview is untrusted).
 */

/** The largest image the chat takes (a photo from a phone is a few megabytes; the encoder sees 224–336 px). */
export const MAX_IMAGE_BYTES = 20 * 1024 * 1024;

export type ImageFormat = "png" | "jpeg";

/** PNG or JPEG from the file's signature (its name or type may say anything). */
export function imageFormat(bytes: Uint8Array): ImageFormat | undefined {
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length >= png.length && png.every((b, i) => bytes[i] === b)) return "png";
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "jpeg";
  return undefined;
}

/** "2.4 MB", rounded up: a file just over the limit never reads as the limit itself. */
export function megabytes(n: number): string {
  return `${(Math.ceil((10 * n) / (1024 * 1024)) / 10).toFixed(1)} MB`;
}

/** Why an image of `size` bytes cannot be attached, said to the user; undefined when it can. Checked before reading it. */
export function imageSizeProblem(name: string, size: number): string | undefined {
  if (size > MAX_IMAGE_BYTES) return `${name} is ${megabytes(size)}; an image can be at most ${MAX_IMAGE_BYTES / (1024 * 1024)} MB`;
  if (size === 0) return `${name} is empty`;
  return undefined;
}

/** Why these bytes cannot be attached as an image named `name`, said to the user; undefined when they can. */
export function imageProblem(name: string, bytes: Uint8Array): string | undefined {
  return imageSizeProblem(name, bytes.length) ?? (imageFormat(bytes) ? undefined : `${name} is not a PNG or JPEG image`);
}

/** The base64 text of an image at the size limit: what a webview may post at most. */
export const MAX_IMAGE_BASE64_CHARS = 4 * Math.ceil(MAX_IMAGE_BYTES / 3);

/** A name to show for an attachment: the file's base name, one line, not too long. */
export function imageName(raw: string): string {
  const base = raw.split(/[\\/]/).pop()?.replace(/\s+/g, " ").trim() ?? "";
  const name = base === "" ? "image" : base;
  return name.length > 60 ? `${name.slice(0, 40)}…${name.slice(-15)}` : name;
}

