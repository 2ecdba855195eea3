/**
 * Finds and reads the weight files of a Hugging Face model folder: `model.safetensors`, or
 * shards listed in `model.safetensors.index.json`. Tensors are read one at a time.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ExcitorInputError } from "../errors";
import { isJsonObject, jsonType, readJsonObject } from "../json-file";
import type { ModelConfig } from "./config";
import { readHeader, readTensorF32, numel, type F32Tensor, type SafetensorsHeader } from "../formats/safetensors";
import type { BlockQuantized } from "./quantized";

/**
 * Where a model's weights come from, by Hugging Face tensor name: a safetensors folder
 * (WeightFiles) or a GGUF file (GgufWeights). The engines read through this and never learn
 * which.
 */
export interface WeightSource {
  /** The model folder or file, for messages. */
  readonly path: string;
  has(name: string): boolean;
  shape(name: string): number[];
  /** The tensor as float32 (dequantized if stored quantized), checked against `expectShape`. */
  read(name: string, expectShape?: number[]): F32Tensor;
  /** How the tensor is stored: "F32", "F16", "BF16", or a ggml type such as "Q4_K". */
  storedType(name: string): string;
  /** The tensor as MatMulNBits blocks, when it is stored in a layout they hold exactly (ggml Q8_0, Q4_0); else undefined. */
  readBlocks(name: string): BlockQuantized | undefined;
  /** Bytes the weights take once converted to float32. */
  float32Bytes(): number;
  /** Bytes the weights take as stored. */
  storedBytes(): number;
}

export class WeightFiles implements WeightSource {
  private constructor(
    readonly dir: string,
    private readonly where: Map<string, SafetensorsHeader>,
  ) {}

  /** Opens the checkpoint in `dir` and checks that it holds exactly the weights `config` describes (checkFits). */
  static open(dir: string, config: ModelConfig): WeightFiles {
    const files = WeightFiles.find(dir);
    files.checkFits(config);
    return files;
  }

  /**
   * The tensors of the checkpoint in `dir`, unchecked against any config: for readers that pick
   * their tensors from a larger file (the CLIP vision tower inside a CLIPModel).
   */
  static find(dir: string): WeightFiles {
    const single = path.join(dir, "model.safetensors");
    const index = path.join(dir, "model.safetensors.index.json");
    const where = new Map<string, SafetensorsHeader>();
    if (fs.existsSync(single)) {
      const h = readHeader(single);
      for (const name of Object.keys(h.tensors)) where.set(name, h);
    } else if (fs.existsSync(index)) {
      const map = readJsonObject(index).weight_map;
      if (map === undefined) throw new ExcitorInputError(`${index}: "weight_map" is missing`, index);
      if (!isJsonObject(map)) throw new ExcitorInputError(`${index}: "weight_map" must be an object of tensor name to shard file, not ${jsonType(map)}`, index);
      const headers = new Map<string, SafetensorsHeader>();
      for (const [name, shard] of Object.entries(map)) {
        if (typeof shard !== "string") throw new ExcitorInputError(`${index}: the shard of ${name} must be a file name, not ${jsonType(shard)}`, index);
        const file = shardFile(dir, index, shard, name);
        if (!headers.has(file)) headers.set(file, readHeader(file));
        const h = headers.get(file)!;
        if (!Object.hasOwn(h.tensors, name)) throw new ExcitorInputError(`${index}: lists ${name} in shard ${shard}, which does not hold it`, index);
        where.set(name, h);
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

  /**
   * The checkpoint must hold exactly the model's weights with their shapes: a layer count that
   * differs from config.json or a tensor the model would not use means the two do not belong
   * together, and ignoring it would run a different model than the one on disk.
   */
  private checkFits(config: ModelConfig): void {
    const configFile = path.join(this.dir, "config.json");
    const layers = new Set<number>();
    for (const name of this.where.keys()) {
      const m = /^model\.layers\.(\d+)\./.exec(name);
      if (m && !KNOWN_NON_WEIGHT.test(name)) layers.add(Number(m[1]));
    }
    let held = 0; // a loop, not Math.max(...): a hostile header may name a million layers
    for (const l of layers) held = Math.max(held, l + 1);
    if (held !== config.numLayers)
      throw new ExcitorInputError(`${configFile}: "num_hidden_layers" is ${config.numLayers}, but the checkpoint in ${this.dir} holds ${held} layers`, configFile);
    const expected = expectedWeights(config);
    for (const [name, h] of this.where) {
      if (expected.has(name) || KNOWN_NON_WEIGHT.test(name) || (name === LM_HEAD && config.tieWordEmbeddings)) continue;
      throw new ExcitorInputError(`${h.file}: tensor ${name} is not a weight of this model (per ${configFile}); the checkpoint and config.json do not belong together`, h.file);
    }
    for (const [name, shape] of expected) {
      if (name === LM_HEAD && !this.has(name)) continue; // absent: the engines tie it to the embedding
      this.shapeMatches(name, shape);
    }
  }

  get path(): string {
    return this.dir;
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  storedType(name: string): string {
    return this.header(name).tensors[name].dtype;
  }

  readBlocks(): BlockQuantized | undefined {
    return undefined; // safetensors holds no ggml blocks; quantizing at load is the engine's choice
  }

  storedBytes(): number {
    let n = 0;
    for (const [name, h] of this.where) n += h.tensors[name].data_offsets[1] - h.tensors[name].data_offsets[0];
    return n;
  }

  shape(name: string): number[] {
    return this.header(name).tensors[name].shape;
  }

  read(name: string, expectShape?: number[]): F32Tensor {
    const h = expectShape ? this.shapeMatches(name, expectShape) : this.header(name);
    return readTensorF32(h, name);
  }

  private shapeMatches(name: string, expectShape: number[]): SafetensorsHeader {
    const h = this.header(name);
    const shape = h.tensors[name].shape;
    if (shape.join(",") !== expectShape.join(","))
      throw new ExcitorInputError(`${h.file}: tensor ${name} has shape [${shape}], but config.json implies [${expectShape}]`, h.file);
    return h;
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

/**
 * The shard's path. The index is data from the download, so a name that leads out of the model
 * folder (`..`, an absolute path, a link to elsewhere) would load another model's weights or
 * open any file: it is refused. One kind of link is the norm, not an escape: the Hugging Face
 * hub cache keeps `snapshots/<revision>/<file>` as links into the same repository's `blobs/`.
 */
function shardFile(dir: string, index: string, shard: string, name: string): string {
  const refuse = (why: string) => new ExcitorInputError(`${index}: shard "${shard}" ${why}; a shard must be a file inside the model folder`, index);
  if (path.isAbsolute(shard) || path.win32.isAbsolute(shard)) throw refuse("is an absolute path");
  const root = path.resolve(dir);
  const file = path.resolve(root, shard);
  if (!isInside(root, file)) throw refuse("leads out of the model folder");
  if (!fs.existsSync(file)) throw new ExcitorInputError(`${index}: shard ${shard} (holding ${name}) is missing from ${dir}`, index);
  const realRoot = fs.realpathSync(root);
  const real = fs.realpathSync(file);
  const hubRepo = path.basename(path.dirname(realRoot)) === "snapshots" ? path.join(path.dirname(path.dirname(realRoot)), "blobs") : undefined;
  if (!isInside(realRoot, real) && !(hubRepo && isInside(hubRepo, real))) throw refuse(`is a link to ${real}, outside the model folder`);
  if (!fs.statSync(real).isFile()) throw refuse("is not a file");
  return file;
}

/** Whether `p` lies strictly inside the folder `root` (both resolved). */
function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel !== "" && rel !== ".." && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

const LM_HEAD = "lm_head.weight";
/** Buffers some checkpoints carry that are derived, not learned (RoPE's inverse frequencies). */
const KNOWN_NON_WEIGHT = /(^|\.)rotary_emb\.inv_freq$/;

/**
 * Every weight a LLaMA-family model of this config has, with its shape: what the engines read.
 * lm_head.weight is listed unless the embeddings are tied; a checkpoint may still leave it out
 * (the engines then tie it).
 */
export function expectedWeights(c: ModelConfig): Map<string, number[]> {
  const cq = c.numHeads * c.headDim;
  const ckv = c.numKvHeads * c.headDim;
  const out = new Map<string, number[]>();
  const linear = (name: string, outDim: number, inDim: number, bias: boolean) => {
    out.set(`${name}.weight`, [outDim, inDim]);
    if (bias) out.set(`${name}.bias`, [outDim]);
  };
  out.set("model.embed_tokens.weight", [c.vocabSize, c.hiddenSize]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}`;
    out.set(`${p}.input_layernorm.weight`, [c.hiddenSize]);
    linear(`${p}.self_attn.q_proj`, cq, c.hiddenSize, c.qkvBias);
    linear(`${p}.self_attn.k_proj`, ckv, c.hiddenSize, c.qkvBias);
    linear(`${p}.self_attn.v_proj`, ckv, c.hiddenSize, c.qkvBias);
    linear(`${p}.self_attn.o_proj`, c.hiddenSize, cq, c.oBias);
    out.set(`${p}.post_attention_layernorm.weight`, [c.hiddenSize]);
    linear(`${p}.mlp.gate_proj`, c.intermediateSize, c.hiddenSize, false);
    linear(`${p}.mlp.up_proj`, c.intermediateSize, c.hiddenSize, false);
    linear(`${p}.mlp.down_proj`, c.hiddenSize, c.intermediateSize, false);
  }
  out.set("model.norm.weight", [c.hiddenSize]);
  if (!c.tieWordEmbeddings) out.set(LM_HEAD, [c.vocabSize, c.hiddenSize]);
  return out;
}
