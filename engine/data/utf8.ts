/**
 * Bytes → text for data files, strictly: a byte that is not UTF-8 (a Latin-1 "é", a binary file)
 * is an input error naming the file and line, because decoding it as U+FFFD would train the model
 * on replacement characters without a word. A UTF-8 byte order mark at the start is dropped.
 */
import { ExcitorInputError } from "../errors";

export function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    let line = 1;
    for (let i = 0; i < at; i++) if (bytes[i] === 0x0a) line++;
    const hex = (bytes[at] ?? 0).toString(16).toUpperCase().padStart(2, "0");
    throw new ExcitorInputError(`${file}:${line}: not UTF-8 text (byte 0x${hex} at offset ${at}); save the file as UTF-8`, file, line);
  }
}

/** The offset of the first byte that does not start a well-formed UTF-8 sequence (Unicode's table 3-7), or -1. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  const cont = (i: number, lo = 0x80, hi = 0xbf) => i < bytes.length && (bytes[i] as number) >= lo && (bytes[i] as number) <= hi;
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i] as number;
    let n: number;
    if (b <= 0x7f) n = 1;
    else if (b >= 0xc2 && b <= 0xdf) n = cont(i + 1) ? 2 : 0;
    else if (b === 0xe0) n = cont(i + 1, 0xa0) && cont(i + 2) ? 3 : 0;
    else if (b === 0xed) n = cont(i + 1, 0x80, 0x9f) && cont(i + 2) ? 3 : 0; // no surrogates
    else if (b >= 0xe1 && b <= 0xef) n = cont(i + 1) && cont(i + 2) ? 3 : 0;
    else if (b === 0xf0) n = cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    else if (b >= 0xf1 && b <= 0xf3) n = cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    else if (b === 0xf4) n = cont(i + 1, 0x80, 0x8f) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    else n = 0;
    if (n === 0) return i;
    i += n;
  }
  return -1;
}
