/**
 * Random-weight LLaMA checkpoints for the benchmark, written once per shape and cached in
 * ~/.cache/excitor-bench (a 1.1B-shaped model is 4.4 GB of float32; writing it takes about
 * a minute). Tensors are streamed to disk one at a time, so writing holds one tensor in memory.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export interface BenchShape {
  name: string;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  /** Standard deviation of the weights (uniform with this spread). */
  scale: number;
}

function tensorShapes(s: BenchShape): [string, number[]][] {
  const d = s.hidden / s.heads;
  const out: [string, number[]][] = [["model.embed_tokens.weight", [s.vocab, s.hidden]], ["model.norm.weight", [s.hidden]], ["lm_head.weight", [s.vocab, s.hidden]]];
  for (let i = 0; i < s.layers; i++) {
    const p = `model.layers.${i}`;
    out.push(
      [`${p}.input_layernorm.weight`, [s.hidden]],
      [`${p}.post_attention_layernorm.weight`, [s.hidden]],
      [`${p}.self_attn.q_proj.weight`, [s.heads * d, s.hidden]],
      [`${p}.self_attn.k_proj.weight`, [s.kvHeads * d, s.hidden]],
      [`${p}.self_attn.v_proj.weight`, [s.kvHeads * d, s.hidden]],
      [`${p}.self_attn.o_proj.weight`, [s.hidden, s.heads * d]],
      [`${p}.mlp.gate_proj.weight`, [s.intermediate, s.hidden]],
      [`${p}.mlp.up_proj.weight`, [s.intermediate, s.hidden]],
      [`${p}.mlp.down_proj.weight`, [s.hidden, s.intermediate]],
    );
  }
  return out;
}

/** Float32 bytes of the weights one generated token reads (all but the embedding table, which is gathered). */
export function decodeWeightBytes(s: BenchShape): number {
  return tensorShapes(s)
    .filter(([n]) => n !== "model.embed_tokens.weight")
    .reduce((a, [, shape]) => a + shape.reduce((x, y) => x * y, 1) * 4, 0);
}

/**
 * Matrix FLOPs of one training token: the forward pass through every weight matrix (lm_head
 * included), then the backward pass to the activations from the top down to the lowest adapted
 * layer, where only o_proj and the MLP are needed (frozen weights get no gradient). Attention
 * scores and the Excitor terms are left out (under 2 % on the 1.1B shape).
 */
export function trainFlopsPerToken(s: BenchShape, lowestAdapted: number): number {
  const d = s.hidden / s.heads;
  const attnQO = 2 * s.hidden * s.heads * d;
  const attnKV = 2 * s.hidden * s.kvHeads * d;
  const mlp = 3 * s.hidden * s.intermediate;
  const head = s.vocab * s.hidden;
  const forward = s.layers * (attnQO + attnKV + mlp) + head;
  const backward = head + (s.layers - lowestAdapted - 1) * (attnQO + attnKV + mlp) + attnQO / 2 + mlp;
  return 2 * (forward + backward);
}

/** The model folder for `s`, written on first use. */
export function randomModel(s: BenchShape): string {
  const dir = path.join(os.homedir(), ".cache", "excitor-bench", `${s.name}-${s.hidden}x${s.layers}-${s.heads}h${s.kvHeads}kv-${s.intermediate}-${s.vocab}`);
  const weights = path.join(dir, "model.safetensors");
  if (fs.existsSync(weights)) return dir;
  fs.mkdirSync(dir, { recursive: true });
  const shapes = tensorShapes(s).sort(([a], [b]) => (a < b ? -1 : 1));
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of shapes) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: "F32", shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const tmp = `${weights}.tmp`;
  const fd = fs.openSync(tmp, "w");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeSync(fd, len);
  fs.writeSync(fd, json);
  let seed = 12345;
  const half = s.scale * Math.sqrt(3); // uniform(−a, a) has std a/sqrt(3)
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.endsWith("norm.weight")) data.fill(1);
    else
      for (let i = 0; i < n; i++) {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; // LCG: the values only need to be finite and spread
        data[i] = (seed / 2 ** 32 - 0.5) * 2 * half;
      }
    fs.writeSync(fd, new Uint8Array(data.buffer));
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, weights);
  const d = s.hidden / s.heads;
  const config = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    head_dim: d,
    vocab_size: s.vocab,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    max_position_embeddings: 2048,
    tie_word_embeddings: false,
    hidden_act: "silu",
  };
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2));
  return dir;
}
