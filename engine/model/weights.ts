/**
 * Finds and reads the weight files of a Hugging Face model folder: `model.safetensors`, or
 * shards listed in `model.safetensors.index.json`. Tensors are read one at a time.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ExcitorInputError } from "../errors";
import { readHeader, readTensorF32, numel, type F32Tensor, type SafetensorsHeader } from "../formats/safetensors";

export class WeightFiles {
  private constructor(
    readonly dir: string,
    private readonly where: Map<string, SafetensorsHeader>,
  ) {}

  static open(dir: string): WeightFiles {
    const single = path.join(dir, "model.safetensors");
    const index = path.join(dir, "model.safetensors.index.json");
    const where = new Map<string, SafetensorsHeader>();
    if (fs.existsSync(single)) {
      const h = readHeader(single);
      for (const name of Object.keys(h.tensors)) where.set(name, h);
    } else if (fs.existsSync(index)) {
      let map: Record<string, string>;
      try {
        map = JSON.parse(fs.readFileSync(index, "utf8")).weight_map;
      } catch (e) {
        throw new ExcitorInputError(`${index}: not valid JSON (${(e as Error).message})`, index);
      }
      if (!map || typeof map !== "object") throw new ExcitorInputError(`${index}: "weight_map" is missing`, index);
      const headers = new Map<string, SafetensorsHeader>();
      for (const [name, shard] of Object.entries(map)) {
        const file = path.join(dir, shard);
        if (!headers.has(file)) {
          if (!fs.existsSync(file)) throw new ExcitorInputError(`${index}: shard ${shard} (holding ${name}) is missing from ${dir}`, index);
          headers.set(file, readHeader(file));
        }
        where.set(name, headers.get(file)!);
      }
    } else {
      const bins = fs.readdirSync(dir).filter((f) => /\.(bin|pth|pt|gguf)$/.test(f));
      throw new ExcitorInputError(
        `${dir}: no model.safetensors or model.safetensors.index.json` + (bins.length ? ` (found ${bins[0]}: only safetensors weights are supported)` : ""),
        dir,
      );
    }
    return new WeightFiles(dir, where);
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  shape(name: string): number[] {
    return this.header(name).tensors[name].shape;
  }

  read(name: string, expectShape?: number[]): F32Tensor {
    const h = this.header(name);
    const shape = h.tensors[name].shape;
    if (expectShape && shape.join(",") !== expectShape.join(","))
      throw new ExcitorInputError(`${h.file}: tensor ${name} has shape [${shape}], but config.json implies [${expectShape}]`, h.file);
    return readTensorF32(h, name);
  }

  /** Bytes the weights take once converted to float32. */
  float32Bytes(): number {
    let n = 0;
    for (const [name, h] of this.where) n += numel(h.tensors[name].shape) * 4;
    return n;
  }

  private header(name: string): SafetensorsHeader {
    const h = this.where.get(name);
    if (!h) throw new ExcitorInputError(`${this.dir}: weight ${name} is missing from the checkpoint`, this.dir);
    return h;
  }
}
