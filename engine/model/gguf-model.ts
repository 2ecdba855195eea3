/**
 * A GGUF file as a model: its metadata as a ModelConfig and its tensors as a WeightSource under
 * Hugging Face names, so the engines never learn the model came from llama.cpp.
 *
 * Two things differ from a Hugging Face checkpoint besides names:
 * - llama.cpp's `llama` tensors keep q and k rows in Meta's interleaved RoPE order (its
 *   converter permutes Hugging Face's rotate-half order back); the rows are put back here, for
 *   float and quantized tensors alike (a row permutation moves whole quantized rows).
 * - Llama 3.1's rope scaling is a tensor (`rope_freqs.weight`, one divisor per frequency), not a
 *   config entry.
 */
import * as fs from "node:fs";
import { ExcitorInputError } from "../errors";
import { readGguf, readTensorBytes, type GgufFile, type GgufTensorInfo, type GgufValue } from "../formats/gguf";
import { isSupportedGgmlType, SUPPORTED_GGML_TYPES } from "../formats/ggml-types";
import { dequantize, ggmlToBlocks } from "../formats/ggml-quants";
import type { F32Tensor } from "../formats/safetensors";
import { parseModelConfig, type ModelConfig } from "./config";
import type { BlockQuantized } from "./quantized";
import { expectedWeights, type WeightSource } from "./weights";

/** general.architecture values and the Hugging Face architecture each one is. */
const ARCHITECTURES: Record<string, string> = { llama: "LlamaForCausalLM", mistral: "MistralForCausalLM", qwen2: "Qwen2ForCausalLM" };

/** GGUF tensor name -> Hugging Face name (per layer: blk.N.<key>). */
const TOP_LEVEL: Record<string, string> = {
  "token_embd.weight": "model.embed_tokens.weight",
  "output_norm.weight": "model.norm.weight",
  "output.weight": "lm_head.weight",
};
const PER_LAYER: Record<string, string> = {
  attn_norm: "input_layernorm",
  attn_q: "self_attn.q_proj",
  attn_k: "self_attn.k_proj",
  attn_v: "self_attn.v_proj",
  attn_output: "self_attn.o_proj",
  ffn_norm: "post_attention_layernorm",
  ffn_gate: "mlp.gate_proj",
  ffn_up: "mlp.up_proj",
  ffn_down: "mlp.down_proj",
};
const ROPE_FREQS = "rope_freqs.weight";

/** The Hugging Face name of a GGUF tensor, or undefined for one a LLaMA-family model does not have. */
export function hfTensorName(gguf: string): string | undefined {
  if (Object.hasOwn(TOP_LEVEL, gguf)) return TOP_LEVEL[gguf];
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(gguf);
  const module = m && Object.hasOwn(PER_LAYER, m[2]) ? PER_LAYER[m[2]] : undefined;
  return module ? `model.layers.${m![1]}.${module}.${m![3]}` : undefined;
}

let cache: { key: string; file: GgufFile } | undefined;

/** The file's header, read once while the file is unchanged (config, tokenizer and weights all need it). */
export function ggufHeader(file: string): GgufFile {
  const st = fs.existsSync(file) ? fs.statSync(file) : undefined;
  const key = st ? `${file}:${st.size}:${st.mtimeMs}` : file;
  if (cache?.key !== key) cache = { key, file: readGguf(file) };
  return cache.file;
}

/** The model's config from a GGUF file's metadata, as config.json would give it. */
export function readGgufConfig(file: string): ModelConfig {
  return ggufModelConfig(ggufHeader(file));
}

export function ggufModelConfig(g: GgufFile): ModelConfig {
  const file = g.file;
  const meta = g.metadata;
  const arch = meta.get("general.architecture");
  if (typeof arch !== "string") throw new ExcitorInputError(`${file}: metadata general.architecture is missing; not a model file`, file);
  const hfArch = Object.hasOwn(ARCHITECTURES, arch) ? ARCHITECTURES[arch] : undefined;
  if (!hfArch) throw new ExcitorInputError(`${file}: general.architecture is "${arch}", which Excitor does not support; supported: ${Object.keys(ARCHITECTURES).join(", ")}`, file);
  const key = (k: string) => `${arch}.${k}`;
  const num = (k: string): number | undefined => {
    const v = meta.get(key(k));
    if (v === undefined) return undefined;
    if (typeof v !== "number") throw new ExcitorInputError(`${file}: metadata ${key(k)} must be a number (got ${describe(v)})`, file);
    return v;
  };
  for (const k of ["embedding_length", "feed_forward_length", "block_count", "attention.head_count"])
    if (num(k) === undefined) throw new ExcitorInputError(`${file}: metadata ${key(k)} is missing`, file);
  const embd = g.tensors.get("token_embd.weight");
  if (!embd) throw new ExcitorInputError(`${file}: tensor token_embd.weight is missing; not a ${arch} model`, file);
  const heads = num("attention.head_count");
  const hidden = num("embedding_length");
  const headDim = num("attention.key_length") ?? (heads && hidden ? hidden / heads : undefined);
  const ropeDims = num("rope.dimension_count");
  if (ropeDims !== undefined && headDim !== undefined && ropeDims !== headDim)
    throw new ExcitorInputError(`${file}: ${key("rope.dimension_count")} is ${ropeDims} but heads are ${headDim} wide; partial rotary embeddings are not supported`, file);
  const scalingType = meta.get(key("rope.scaling.type"));
  let ropeScaling: object | undefined;
  if (scalingType === "linear") ropeScaling = { type: "linear", factor: num("rope.scaling.factor") };
  else if (scalingType !== undefined && scalingType !== "none")
    throw new ExcitorInputError(`${file}: ${key("rope.scaling.type")} is ${describe(scalingType)}; supported: none, linear (and Llama 3's rope_freqs tensor)`, file);
  const json: Record<string, unknown> = {
    architectures: [hfArch],
    model_type: arch,
    hidden_size: hidden,
    intermediate_size: num("feed_forward_length"),
    num_hidden_layers: num("block_count"),
    num_attention_heads: heads,
    num_key_value_heads: num("attention.head_count_kv"),
    head_dim: headDim,
    vocab_size: embd.shape[0],
    rms_norm_eps: num("attention.layer_norm_rms_epsilon"),
    rope_theta: num("rope.freq_base"),
    rope_scaling: ropeScaling,
    max_position_embeddings: num("context_length"),
    tie_word_embeddings: !g.tensors.has("output.weight"),
    attention_bias: g.tensors.has("blk.0.attn_output.bias") || (arch !== "qwen2" && g.tensors.has("blk.0.attn_q.bias")),
    bos_token_id: meta.get("tokenizer.ggml.bos_token_id"),
    eos_token_id: meta.get("tokenizer.ggml.eos_token_id"),
  };
  const config = parseModelConfig(json, `${file} (metadata ${arch}.*)`);
  // llama.cpp's Mistral ignores the sliding window (the metadata has none): so do we.
  config.slidingWindow = undefined;
  const freqs = g.tensors.get(ROPE_FREQS);
  if (freqs) {
    if (freqs.shape.length !== 1 || freqs.shape[0] !== config.headDim / 2)
      throw new ExcitorInputError(`${file}: tensor ${ROPE_FREQS} has shape [${freqs.shape}], expected [${config.headDim / 2}]`, file);
    config.ropeScaling = { type: "factors", factors: Array.from(readFloat(g, freqs)) };
  }
  return config;
}

/** A GGUF file's tensors under Hugging Face names. */
export class GgufWeights implements WeightSource {
  private constructor(
    private readonly g: GgufFile,
    private readonly config: ModelConfig,
    /** Hugging Face name -> the GGUF tensor. */
    private readonly byHf: Map<string, GgufTensorInfo>,
    private readonly unpermute: boolean,
  ) {}

  static open(file: string, config: ModelConfig): GgufWeights {
    const g = ggufHeader(file);
    const byHf = new Map<string, GgufTensorInfo>();
    const expected = expectedWeights(config);
    for (const t of g.tensors.values()) {
      if (t.name === ROPE_FREQS) continue; // part of the config
      const hf = hfTensorName(t.name);
      if (!hf || !expected.has(hf)) throw new ExcitorInputError(`${file}: tensor ${t.name} is not a weight of this ${config.architecture} model`, file);
      if (!isSupportedGgmlType(t.type.name))
        throw new ExcitorInputError(`${file}: tensor ${t.name} is ${t.type.name}, which Excitor cannot read; supported types: ${SUPPORTED_GGML_TYPES.join(", ")}`, file);
      const want = expected.get(hf)!;
      if (t.shape.join(",") !== want.join(",")) throw new ExcitorInputError(`${file}: tensor ${t.name} has shape [${t.shape}], but the metadata implies [${want}]`, file);
      byHf.set(hf, t);
    }
    for (const name of expected.keys()) {
      if (!byHf.has(name) && name !== "lm_head.weight") throw new ExcitorInputError(`${file}: tensor for ${name} is missing`, file);
    }
    return new GgufWeights(g, config, byHf, g.metadata.get("general.architecture") !== "qwen2");
  }

  get path(): string {
    return this.g.file;
  }

  has(name: string): boolean {
    return this.byHf.has(name);
  }

  shape(name: string): number[] {
    return this.info(name).shape;
  }

  storedType(name: string): string {
    return this.info(name).type.name;
  }

  read(name: string, expectShape?: number[]): F32Tensor {
    const t = this.info(name);
    if (expectShape && t.shape.join(",") !== expectShape.join(","))
      throw new ExcitorInputError(`${this.g.file}: tensor ${t.name} has shape [${t.shape}], but the metadata implies [${expectShape}]`, this.g.file);
    const data = readFloat(this.g, t);
    const perm = this.rowOrder(name);
    return { shape: t.shape.slice(), data: perm ? permuteFloatRows(data, perm, data.length / perm.length) : data };
  }

  readBlocks(name: string): BlockQuantized | undefined {
    const t = this.info(name);
    if (t.shape.length !== 2) return undefined;
    const [rows, cols] = t.shape;
    const blocks = ggmlToBlocks(t.type, readTensorBytes(this.g, t), rows, cols);
    const perm = this.rowOrder(name);
    return blocks && perm ? permuteBlockRows(blocks, perm) : blocks;
  }

  float32Bytes(): number {
    let n = 0;
    for (const t of this.byHf.values()) n += 4 * t.shape.reduce((a, b) => a * b, 1);
    return n;
  }

  storedBytes(): number {
    let n = 0;
    for (const t of this.byHf.values()) n += t.bytes;
    return n;
  }

  private info(name: string): GgufTensorInfo {
    const t = this.byHf.get(name);
    if (!t) throw new ExcitorInputError(`${this.g.file}: weight ${name} is missing from the GGUF file`, this.g.file);
    return t;
  }

  /**
   * For q and k (weights and biases) of a llama.cpp `llama` file: HF row h·d + s·d/2 + i is
   * GGUF row h·d + 2i + s (llama.cpp's convert_hf_to_gguf `permute`, undone).
   */
  private rowOrder(name: string): Int32Array | undefined {
    if (!this.unpermute) return undefined;
    const m = /\.self_attn\.(q|k)_proj\./.exec(name);
    if (!m) return undefined;
    const c = this.config;
    const heads = m[1] === "q" ? c.numHeads : c.numKvHeads;
    const d = c.headDim;
    const half = d / 2;
    const perm = new Int32Array(heads * d); // perm[hfRow] = ggufRow
    for (let h = 0; h < heads; h++) for (let s = 0; s < 2; s++) for (let i = 0; i < half; i++) perm[h * d + s * half + i] = h * d + 2 * i + s;
    return perm;
  }
}

/** A tensor's values as float32 (F32 read in place, anything else dequantized). */
function readFloat(g: GgufFile, t: GgufTensorInfo): Float32Array {
  const bytes = readTensorBytes(g, t);
  const count = t.shape.reduce((a, b) => a * b, 1);
  if (t.type.name === "F32") return new Float32Array(bytes.buffer, bytes.byteOffset, count);
  return dequantize(t.type, bytes, count);
}

/** out[r] = x[perm[r]] for rows of `width` values. */
function permuteFloatRows(x: Float32Array, perm: Int32Array, width: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < perm.length; r++) out.set(x.subarray(perm[r] * width, (perm[r] + 1) * width), r * width);
  return out;
}

/** The same row permutation on quantized rows: codes, scales and zero points move with their row. */
function permuteBlockRows(b: BlockQuantized, perm: Int32Array): BlockQuantized {
  const rows = perm.length;
  const move = <T extends Uint8Array | Float32Array>(x: T): T => {
    const width = x.length / rows;
    const out = new (x.constructor as new (n: number) => T)(x.length);
    for (let r = 0; r < rows; r++) out.set(x.subarray(perm[r] * width, (perm[r] + 1) * width), r * width);
    return out;
  };
  return { ...b, data: move(b.data), scales: move(b.scales), zeroPoints: b.zeroPoints && move(b.zeroPoints) };
}

function describe(v: GgufValue): string {
  return typeof v === "string" ? JSON.stringify(v) : Array.isArray(v) || ArrayBuffer.isView(v) ? "an array" : String(v);
}
