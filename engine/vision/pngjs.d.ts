/**
 * The part of pngjs (pure-JS PNG codec, MIT) this project uses; the package ships no types and
 * a declaration of two functions beats a @types dependency.
 */
declare module "pngjs" {
  export interface PngReadOptions {
    /** Keep 16-bit samples instead of scaling them to 8 bits. */
    skipRescale?: boolean;
    checkCRC?: boolean;
  }
  export interface PngWriteOptions {
    /** 0 grey, 2 RGB, 4 grey + alpha, 6 RGBA. */
    colorType?: 0 | 2 | 4 | 6;
    inputColorType?: 0 | 2 | 4 | 6;
    inputHasAlpha?: boolean;
    bitDepth?: 8 | 16;
  }
  export interface DecodedPng {
    width: number;
    height: number;
    depth: number;
    colorType: number;
    interlace: boolean;
    /** RGBA, 8 bits a sample (16 with skipRescale). */
    data: Buffer;
  }
  export const PNG: {
    sync: {
      read(buffer: Buffer, options?: PngReadOptions): DecodedPng;
      /** `data` in the input layout `options` names (default RGBA, 8 bits; 16-bit samples as a Uint16Array). */
      write(png: { width: number; height: number; data: Uint8Array | Uint16Array }, options?: PngWriteOptions): Buffer;
    };
  };
}
