/**
 * Writes a tiny random LLaMA checkpoint in the Hugging Face layout (config.json,
 * model.safetensors, tokenizer.json, tokenizer_config.json) for tests that must not depend
 * on downloaded models. The tokenizer is SentencePiece-style: one token per character of a
 * small alphabet plus byte fallback, no merges.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readHeader, readTensorF32, writeSafetensors, type F32Tensor } from "../../engine/formats/safetensors";
import { Rng } from "../../engine/rng";

export interface TinyModelOptions {
  hidden?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  intermediate?: number;
  seed?: number;
  /** Std of the random weights. */
  scale?: number;
  architecture?: string;
  /** Vocabulary size of the weights (default: the tiny tokenizer's); benchmarks use a larger one. */
  vocab?: number;
  /** Write q/k/v biases (Qwen2 style) with this std (0 writes zero biases). */
  qkvBias?: number;
  tieWordEmbeddings?: boolean;
}

const ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;!?'\"#()-\n";

export function tinyTokenizerJson(): { tokenizer: object; config: object; vocabSize: number } {
  const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = 3 + b;
  for (const ch of ["▁", ...ALPHABET.replace("\n", "")]) vocab[ch] = Object.keys(vocab).length;
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
    normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" }, { type: "Replace", pattern: { String: " " }, content: "▁" }] },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab, merges: [] },
  };
  const config = { add_bos_token: true, add_eos_token: false, bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>", legacy: true, tokenizer_class: "LlamaTokenizer" };
  return { tokenizer, config, vocabSize: Object.keys(vocab).length };
}

export function writeTinyModel(dir: string, o: TinyModelOptions = {}): string {
  const C = o.hidden ?? 32;
  const N = o.layers ?? 2;
  const H = o.heads ?? 4;
  const Hkv = o.kvHeads ?? 2;
  const I = o.intermediate ?? 48;
  const d = C / H;
  const scale = o.scale ?? 0.2;
  const { tokenizer, config: tokConfig, vocabSize } = tinyTokenizerJson();
  const V = Math.max(o.vocab ?? 0, vocabSize);
  const rng = new Rng(o.seed ?? 1);
  const biasRng = new Rng((o.seed ?? 1) + 7919);
  const rand = (shape: number[], std = scale): F32Tensor => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
    return { shape, data };
  };
  const ones = (n: number): F32Tensor => ({ shape: [n], data: new Float32Array(n).fill(1) });
  const t: Record<string, F32Tensor> = { "model.embed_tokens.weight": rand([V, C], 1), "model.norm.weight": ones(C), "lm_head.weight": rand([V, C]) };
  for (let i = 0; i < N; i++) {
    const p = `model.layers.${i}`;
    t[`${p}.input_layernorm.weight`] = ones(C);
    t[`${p}.post_attention_layernorm.weight`] = ones(C);
    t[`${p}.self_attn.q_proj.weight`] = rand([H * d, C]);
    t[`${p}.self_attn.k_proj.weight`] = rand([Hkv * d, C]);
    t[`${p}.self_attn.v_proj.weight`] = rand([Hkv * d, C]);
    t[`${p}.self_attn.o_proj.weight`] = rand([C, H * d]);
    if (o.qkvBias !== undefined) {
      // From their own generator, so that the other weights equal the bias-free model's.
      const b = (n: number): F32Tensor => ({ shape: [n], data: Float32Array.from({ length: n }, () => biasRng.normal() * o.qkvBias!) });
      t[`${p}.self_attn.q_proj.bias`] = b(H * d);
      t[`${p}.self_attn.k_proj.bias`] = b(Hkv * d);
      t[`${p}.self_attn.v_proj.bias`] = b(Hkv * d);
    }
    t[`${p}.mlp.gate_proj.weight`] = rand([I, C]);
    t[`${p}.mlp.up_proj.weight`] = rand([I, C]);
    t[`${p}.mlp.down_proj.weight`] = rand([C, I]);
  }
  if (o.tieWordEmbeddings) delete t["lm_head.weight"];
  fs.mkdirSync(dir, { recursive: true });
  const config = {
    architectures: [o.architecture ?? "LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: C,
    intermediate_size: I,
    num_hidden_layers: N,
    num_attention_heads: H,
    num_key_value_heads: Hkv,
    vocab_size: V,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    max_position_embeddings: 256,
    tie_word_embeddings: o.tieWordEmbeddings ?? false,
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: "silu",
  };
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2));
  writeSafetensors(path.join(dir, "model.safetensors"), t);
  fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(tokConfig));
  return dir;
}

const made: string[] = [];
process.on("exit", () => {
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

/** A fresh temporary folder, removed when the process exits. */
export function tempDir(prefix = "excitor-test-"): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

/** Alpaca JSONL of n records for a toy task. */
export function writeAlpaca(file: string, records: { instruction: string; input?: string; output: string }[]): string {
  fs.writeFileSync(file, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  return file;
}

/**
 * A copy of the model folder `src` at `dst` whose weights are `change(name, tensor)` (every
 * tensor is offered; return it unchanged to keep it): the second model that a merged or
 * trained weight set is checked against.
 */
export function copyModelWith(src: string, dst: string, change: (name: string, t: F32Tensor) => F32Tensor): string {
  fs.mkdirSync(dst, { recursive: true });
  for (const f of fs.readdirSync(src)) if (f !== "model.safetensors") fs.copyFileSync(path.join(src, f), path.join(dst, f));
  const header = readHeader(path.join(src, "model.safetensors"));
  const out: Record<string, F32Tensor> = {};
  for (const name of Object.keys(header.tensors)) out[name] = change(name, readTensorF32(header, name));
  writeSafetensors(path.join(dst, "model.safetensors"), out);
  return dst;
}
