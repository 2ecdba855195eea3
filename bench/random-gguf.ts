/**
 * Random-weight LLaMA models as GGUF files, Q8_0 or Q4_0, for the benchmark's quantized section:
 * the same file is run by the engine and by llama.cpp. Written with the project's own writer
 * (engine/formats/gguf-write.ts) and quantized as ggml does (engine/formats/ggml-quants.ts), every
 * matrix at the file's type (llama-quantize --pure: token_embd and output too), norms float32.
 * The tokenizer metadata is a SentencePiece ("llama") vocabulary llama.cpp accepts: <unk>, <s>,
 * </s>, the 256 byte tokens, then letter pieces with and without the word-start mark.
 *
 * Cached in ~/.cache/excitor-bench, one tensor in memory at a time while writing; a stamp file
 * beside each model (<file>.key) holds the key it was written under (shape, type, this
 * generator's version, the writer's and quantizer's code), and a file without the current key
 * is written again.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { arr, bool, f32, str, u32, writeGguf, type GgufTensorToWrite, type GgufTypedValue } from "../engine/formats/gguf-write";
import { quantize } from "../engine/formats/ggml-quants";
import { writeFileAtomic } from "../engine/fs-atomic";
import { Rng } from "../engine/rng";
import type { BenchShape } from "./random-model";

export type BenchGgufType = "Q8_0" | "Q4_0";

/** Bump when what this file writes changes (values, names, metadata). */
const GENERATOR_VERSION = 1;
export const GGUF_CACHE = path.join(os.homedir(), ".cache", "excitor-bench");

/** ggml's llama_ftype of a file whose matrices are all of one type. */
const FILE_TYPE: Record<BenchGgufType, number> = { Q8_0: 7, Q4_0: 2 };

/** SentencePiece token types as llama.cpp numbers them (llama_token_type). */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, byte: 6 };

/**
 * A `size`-token SentencePiece vocabulary: <unk> <s> </s>, <0x00>..<0xFF> (llama.cpp needs
 * <0x0A> for its newline token), then every lowercase string of 1, 2, 3... letters, each as a
 * word start ("▁ab") and inside a word ("ab"), shortest first; scores fall with the index, as
 * sentencepiece's do, so longer pieces merge last.
 */
export function spmVocab(size: number): { tokens: string[]; scores: Float32Array; types: Int32Array } {
  if (size < 3 + 256 + 2) throw new Error(`a SentencePiece vocabulary needs at least 261 tokens (got ${size})`);
  const tokens = ["<unk>", "<s>", "</s>"];
  const types = [TOKEN_TYPE.unknown, TOKEN_TYPE.control, TOKEN_TYPE.control];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(TOKEN_TYPE.byte);
  }
  const letters = "abcdefghijklmnopqrstuvwxyz";
  let layer = [""];
  while (tokens.length < size) {
    layer = layer.flatMap((p) => Array.from(letters, (c) => p + c));
    for (const piece of layer) {
      for (const t of [`▁${piece}`, piece]) {
        if (tokens.length === size) break;
        tokens.push(t);
        types.push(TOKEN_TYPE.normal);
      }
    }
  }
  const scores = Float32Array.from(tokens, (_, i) => (types[i] === TOKEN_TYPE.normal ? -i : 0));
  return { tokens, scores, types: Int32Array.from(types) };
}

/** One tensor of the file: GGUF name, row-major shape, and whether it is a norm (float32, ones). */
export interface BenchGgufTensor {
  name: string;
  shape: number[];
  norm: boolean;
}

/** The tensors of a llama model of shape `s`, in the order llama.cpp's converter writes them. */
export function ggufTensors(s: BenchShape): BenchGgufTensor[] {
  const d = s.hidden / s.heads;
  const out: BenchGgufTensor[] = [{ name: "token_embd.weight", shape: [s.vocab, s.hidden], norm: false }];
  for (let i = 0; i < s.layers; i++) {
    const blk = (k: string, shape: number[]) => out.push({ name: `blk.${i}.${k}.weight`, shape, norm: shape.length === 1 });
    blk("attn_norm", [s.hidden]);
    blk("attn_q", [s.heads * d, s.hidden]);
    blk("attn_k", [s.kvHeads * d, s.hidden]);
    blk("attn_v", [s.kvHeads * d, s.hidden]);
    blk("attn_output", [s.hidden, s.heads * d]);
    blk("ffn_norm", [s.hidden]);
    blk("ffn_gate", [s.intermediate, s.hidden]);
    blk("ffn_up", [s.intermediate, s.hidden]);
    blk("ffn_down", [s.hidden, s.intermediate]);
  }
  out.push({ name: "output_norm.weight", shape: [s.hidden], norm: true }, { name: "output.weight", shape: [s.vocab, s.hidden], norm: false });
  return out;
}

/**
 * The float32 values of tensor `t` before quantization: norms are ones, matrices uniform with
 * standard deviation `scale`, from a generator seeded by the tensor's name (so a test can
 * recompute any one tensor).
 */
export function tensorValues(t: BenchGgufTensor, scale: number, into?: Float32Array): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const out = into ? into.subarray(0, n) : new Float32Array(n);
  if (t.norm) return out.fill(1);
  const rng = new Rng(createHash("sha256").update(t.name).digest().readUInt32LE(0));
  const width = 2 * scale * Math.sqrt(3); // uniform(−a, a) has std a/√3; next() − 0.5 spans 1
  for (let i = 0; i < n; i++) out[i] = (rng.next() - 0.5) * width;
  return out;
}

function metadata(s: BenchShape, type: BenchGgufType): Record<string, GgufTypedValue> {
  const vocab = spmVocab(s.vocab);
  return {
    "general.architecture": str("llama"),
    "general.name": str(`excitor-bench ${s.name} (random weights)`),
    "general.file_type": u32(FILE_TYPE[type]),
    "general.quantization_version": u32(2),
    "llama.context_length": u32(2048),
    "llama.embedding_length": u32(s.hidden),
    "llama.block_count": u32(s.layers),
    "llama.feed_forward_length": u32(s.intermediate),
    "llama.rope.dimension_count": u32(s.hidden / s.heads),
    "llama.attention.head_count": u32(s.heads),
    "llama.attention.head_count_kv": u32(s.kvHeads),
    "llama.attention.layer_norm_rms_epsilon": f32(1e-5),
    "llama.rope.freq_base": f32(10000),
    "llama.vocab_size": u32(s.vocab),
    "tokenizer.ggml.model": str("llama"),
    "tokenizer.ggml.tokens": arr("str", vocab.tokens),
    "tokenizer.ggml.scores": arr("f32", vocab.scores),
    "tokenizer.ggml.token_type": arr("i32", vocab.types),
    "tokenizer.ggml.unknown_token_id": u32(0),
    "tokenizer.ggml.bos_token_id": u32(1),
    "tokenizer.ggml.eos_token_id": u32(2),
    "tokenizer.ggml.add_bos_token": bool(true),
    "tokenizer.ggml.add_eos_token": bool(false),
  };
}

/** Writes the model of shape `s` with every matrix quantized to `type` (atomically). */
export function writeRandomGguf(s: BenchShape, type: BenchGgufType, file: string, onTensor?: (name: string, i: number, n: number) => void): void {
  const specs = ggufTensors(s);
  // One buffer each for the values and the bytes, reused: writeGguf writes a tensor's bytes before asking for the next.
  const most = Math.max(...specs.map((t) => t.shape.reduce((a, b) => a * b, 1)));
  const values = new Float32Array(most);
  const bytes = new Uint8Array(4 * most);
  const tensors: GgufTensorToWrite[] = specs.map((t) => ({
    name: t.name,
    shape: t.shape,
    type: t.norm ? "F32" : type,
    data: () => quantize(t.norm ? "F32" : type, tensorValues(t, s.scale, values), bytes),
  }));
  writeGguf(file, metadata(s, type), tensors, { onTensor });
}

/** What a cached file must have been written under: a change to any part writes it again. */
export function ggufCacheKey(s: BenchShape, type: BenchGgufType): string {
  const h = createHash("sha256").update(JSON.stringify({ GENERATOR_VERSION, s, type }));
  // The writer's and the quantizer's code as built: a fix there changes the bytes.
  for (const m of ["../engine/formats/gguf-write", "../engine/formats/ggml-quants"]) h.update(fs.readFileSync(require.resolve(m)));
  return h.digest("hex").slice(0, 16);
}

/** The cached GGUF file for shape `s` at `type`, written on first use or when its key changed. */
export function randomGguf(s: BenchShape, type: BenchGgufType, dir = GGUF_CACHE, log: (line: string) => void = () => {}): string {
  const file = path.join(dir, `${s.name}-${s.hidden}x${s.layers}-${s.heads}h${s.kvHeads}kv-${s.intermediate}-${s.vocab}-${type}.gguf`);
  const stamp = `${file}.key`;
  const key = ggufCacheKey(s, type);
  if (fs.existsSync(file) && fs.existsSync(stamp) && fs.readFileSync(stamp, "utf8").trim() === key) return file;
  const t0 = performance.now();
  writeRandomGguf(s, type, file, (name, i, n) => i % 50 === 0 && log(`${path.basename(file)}: tensor ${i + 1}/${n}`));
  writeFileAtomic(stamp, `${key}\n`);
  log(`${path.basename(file)}: written in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return file;
}
