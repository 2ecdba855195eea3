/**
 * The pictures of a multimodal training set, encoded once before the first step: the encoder is
 * frozen, so an image's features never change, and an epoch (or a resumed run) only looks them
 * up. A picture that is missing or cannot be decoded stops the run before training starts, with
 * the dataset line that names it.
 */
import * as fs from "node:fs";
import type { Example } from "../data/encode";
import { ExcitorInputError } from "../errors";
import type { ImageFeatures } from "../runtime";

/** What training needs of an image encoder (engine/vision's VisionEncoder). */
export interface ImageEncoder {
  /** Nv, the image tokens. */
  readonly numTokens: number;
  /** Cv, their width. */
  readonly hiddenSize: number;
  /** The features of each file, [files, Nv, Cv] row-major. */
  featuresOf(files: string[]): Promise<Float32Array>;
}

/** Pictures encoded per encoder call while building the table. */
const ENCODE_CHUNK = 16;

export class ImageTable {
  private constructor(
    readonly numTokens: number,
    readonly hidden: number,
    /** Features [Nv·Cv] by absolute path. */
    private readonly features: Map<string, Float32Array>,
  ) {}

  /** Encodes every distinct picture the examples name. `where(e)` says where an example comes from ("data.jsonl:7"). */
  static async build(examples: readonly Example[], encoder: ImageEncoder, where: (e: Example) => string, onProgress?: (done: number, total: number) => void): Promise<ImageTable> {
    const firstUse = new Map<string, Example>();
    for (const e of examples) if (e.image && !firstUse.has(e.image)) firstUse.set(e.image, e);
    for (const [file, e] of firstUse) {
      let stat: fs.Stats | undefined;
      try {
        stat = fs.statSync(file);
      } catch {
        /* reported below */
      }
      if (!stat) throw new ExcitorInputError(`${where(e)}: image ${file} not found`, undefined, e.line);
      if (!stat.isFile()) throw new ExcitorInputError(`${where(e)}: image ${file} is not a file`, undefined, e.line);
    }
    const one = encoder.numTokens * encoder.hiddenSize;
    const files = [...firstUse.keys()];
    const features = new Map<string, Float32Array>();
    for (let i = 0; i < files.length; i += ENCODE_CHUNK) {
      const part = files.slice(i, i + ENCODE_CHUNK);
      let data: Float32Array;
      try {
        data = await encoder.featuresOf(part);
      } catch (e) {
        if (!(e instanceof ExcitorInputError)) throw e;
        // Name the dataset line of the picture that failed: encode the chunk's files one by one.
        for (const f of part) {
          try {
            await encoder.featuresOf([f]);
          } catch (err) {
            const ex = firstUse.get(f)!;
            throw new ExcitorInputError(`${where(ex)}: ${err instanceof Error ? err.message : String(err)}`, undefined, ex.line);
          }
        }
        throw e;
      }
      part.forEach((f, j) => features.set(f, data.slice(j * one, (j + 1) * one)));
      onProgress?.(Math.min(i + ENCODE_CHUNK, files.length), files.length);
    }
    return new ImageTable(encoder.numTokens, encoder.hiddenSize, features);
  }

  /** Distinct pictures held. */
  get size(): number {
    return this.features.size;
  }

  /** The features of a batch's rows ([B, Nv, Cv]; rows without a picture are zeros, marked absent), or undefined when no row has one. */
  batch(examples: readonly Example[]): ImageFeatures | undefined {
    if (!examples.some((e) => e.image)) return undefined;
    const one = this.numTokens * this.hidden;
    const data = new Float32Array(examples.length * one);
    const present = new Uint8Array(examples.length);
    examples.forEach((e, b) => {
      const f = e.image ? this.features.get(e.image) : undefined;
      if (!f) return;
      data.set(f, b * one);
      present[b] = 1;
    });
    return { rows: examples.length, numTokens: this.numTokens, hidden: this.hidden, data, present };
  }
}
