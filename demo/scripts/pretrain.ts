/**
 * Builds the built-in demo model from nothing: generates the story corpus, trains its BPE
 * tokenizer, initialises a small GQA LLaMA and pretrains it with the engine's full-parameter
 * training mode, then writes the Hugging Face folder to demo/model with a README of how it went.
 *
 *   npm run build && node dist/demo/scripts/pretrain.js [--steps N] [--out DIR]
 *
 * Resumable: rerun with the same options after an interruption and it continues from the last
 * checkpoint in .excitor-cache/pretrain.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { writeSafetensors, type F32Tensor } from "../../engine/formats/safetensors";
import { openModel } from "../../engine/load";
import { Rng } from "../../engine/rng";
import { scoreIds } from "../../engine/score";
import { TextTokenizer } from "../../engine/tokenizer/tokenizer";
import { train, TRAIN_DEFAULTS } from "../../engine/train/trainer";
import { hasTrainerState } from "../../engine/train/checkpoint";
import { RETAIN_NONE } from "../../engine/train/retention"; // pretraining from random weights: no base knowledge to keep
import { alpacaPrompt } from "../../engine/data/templates";
import { generate } from "../../engine/generate/generate";
import { formatDocument, stories } from "./corpus";
import { trainBpe } from "./bpe";
import { TASK_INSTRUCTIONS } from "./instructions";

export const PRETRAIN_SEED = 1;
export const HELDOUT_SEED = 2;
export const ARCH = { hidden: 128, layers: 4, heads: 4, kvHeads: 2, intermediate: 384, maxPositions: 256 };

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const STEPS = Number(opt("--steps", "2000"));
const BATCH = Number(opt("--batch", "16"));
const LR = Number(opt("--lr", "3e-3"));
const CORPUS = Number(opt("--stories", "40000"));
/** Share of the corpus in the instruction format (see formatDocument). */
const FORMAT_SHARE = Number(opt("--format-share", "0.15"));
const repo = path.resolve(__dirname, "../../..");
const work = path.resolve(opt("--work", path.join(repo, ".excitor-cache", "pretrain"))!);
const out = path.resolve(opt("--out", path.join(repo, "demo", "model")));

/** The tokenizer also learns the words of the instruction format, so prompts stay short (the model never sees the demo's questions in pretraining). */
function tokenizerTexts(corpus: string[]): string[] {
  const format = [alpacaPrompt("x"), alpacaPrompt("x", "y"), ...TASK_INSTRUCTIONS];
  return [...corpus, ...Array.from({ length: 50 }, () => format).flat()];
}

function initModel(dir: string, vocab: number, tokenizerJson: object, tokenizerConfig: object): void {
  const { hidden: C, layers: N, heads: H, kvHeads: Hkv, intermediate: I } = ARCH;
  const d = C / H;
  const rng = new Rng(PRETRAIN_SEED);
  const normal = (shape: number[], std: number): F32Tensor => ({ shape, data: Float32Array.from({ length: shape[0] * (shape[1] ?? 1) }, () => rng.normal() * std) });
  const ones = (n: number): F32Tensor => ({ shape: [n], data: new Float32Array(n).fill(1) });
  const resid = 0.02 / Math.sqrt(2 * N); // GPT-2's scaled init for the projections that write to the residual stream
  const t: Record<string, F32Tensor> = { "model.embed_tokens.weight": normal([vocab, C], 0.02), "model.norm.weight": ones(C), "lm_head.weight": normal([vocab, C], 0.02) };
  for (let i = 0; i < N; i++) {
    const p = `model.layers.${i}`;
    Object.assign(t, {
      [`${p}.input_layernorm.weight`]: ones(C),
      [`${p}.post_attention_layernorm.weight`]: ones(C),
      [`${p}.self_attn.q_proj.weight`]: normal([H * d, C], 0.02),
      [`${p}.self_attn.k_proj.weight`]: normal([Hkv * d, C], 0.02),
      [`${p}.self_attn.v_proj.weight`]: normal([Hkv * d, C], 0.02),
      [`${p}.self_attn.o_proj.weight`]: normal([C, H * d], resid),
      [`${p}.mlp.gate_proj.weight`]: normal([I, C], 0.02),
      [`${p}.mlp.up_proj.weight`]: normal([I, C], 0.02),
      [`${p}.mlp.down_proj.weight`]: normal([C, I], resid),
    });
  }
  fs.mkdirSync(dir, { recursive: true });
  const config = {
    architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: C, intermediate_size: I, num_hidden_layers: N,
    num_attention_heads: H, num_key_value_heads: Hkv, head_dim: d, vocab_size: vocab, rms_norm_eps: 1e-5, rope_theta: 10000,
    max_position_embeddings: ARCH.maxPositions, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, hidden_act: "silu",
    attention_bias: false, torch_dtype: "float32",
  };
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
  fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizerJson));
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(tokenizerConfig, null, 2) + "\n");
  fs.writeFileSync(path.join(dir, "generation_config.json"), JSON.stringify({ bos_token_id: 1, eos_token_id: 2 }, null, 2) + "\n");
  writeSafetensors(path.join(dir, "model.safetensors"), t);
}

async function main(): Promise<void> {
  const rng = new Rng(PRETRAIN_SEED + 100);
  const corpus = stories(CORPUS, PRETRAIN_SEED).map((s) => (rng.next() < FORMAT_SHARE ? formatDocument(rng, alpacaPrompt) : s.text));
  const heldout = stories(300, HELDOUT_SEED).map((s) => s.text);
  const init = path.join(work, "init");
  const data = path.join(work, "corpus.jsonl");
  const run = path.join(work, "run");
  const resume = hasTrainerState(run);
  if (!resume) {
    fs.rmSync(work, { recursive: true, force: true });
    const tok = trainBpe(tokenizerTexts(corpus), 1024, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;!?'\"#()-\n");
    console.log(`tokenizer: ${tok.vocabSize} tokens (${tok.merges} merges)`);
    initModel(init, tok.vocabSize, tok.tokenizerJson, tok.tokenizerConfig);
    fs.writeFileSync(data, corpus.map((text) => JSON.stringify({ text })).join("\n") + "\n");
  }
  const rt = await openModel(init, { backend: "tfjs", forTraining: true }); // full-parameter training is tfjs-only
  const tokenizer = TextTokenizer.fromFolder(init);
  console.log(`pretraining ${rt.backend}: ${STEPS} steps x ${BATCH} stories, lr ${LR}${resume ? " (resuming)" : ""}`);
  let lastPrint = 0;
  const res = await train(rt, tokenizer, {
    ...TRAIN_DEFAULTS, method: "full", retain: RETAIN_NONE, dataFile: data, outDir: run, baseModel: init, epochs: 1000, maxSteps: STEPS,
    batchSize: BATCH, microBatch: BATCH, learningRate: LR, weightDecay: 0.1, validationShare: 0.01, seed: PRETRAIN_SEED,
    maxLength: ARCH.maxPositions, checkpointEvery: 100, evalEvery: 500, resume,
    onEvent: (e) => {
      if (e.type === "step" && (performance.now() - lastPrint > 15000 || e.step === e.totalSteps)) {
        lastPrint = performance.now();
        console.log(`step ${e.step}/${e.totalSteps} loss ${e.loss.toFixed(3)} lr ${e.learningRate.toExponential(2)} ${e.tokensPerSecond.toFixed(0)} tok/s eta ${(e.etaSeconds / 60).toFixed(1)} min`);
      } else if (e.type === "validation") console.log(`step ${e.step}: validation loss ${e.loss.toFixed(3)}`);
    },
  });
  rt.dispose();
  // Training time of the whole run from its metrics log: each process's span (from its "start"
  // event to its last event) added up, so a pause between an interruption and the resume does not count.
  const events = fs.readFileSync(path.join(run, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { time: string; type: string; loss?: number });
  let ms = 0;
  let spanStart = 0;
  events.forEach((e, i) => {
    const t = Date.parse(e.time);
    if (e.type === "start") spanStart = t;
    if (i === events.length - 1 || events[i + 1].type === "start") ms += t - spanStart;
  });
  const minutes = ms / 60000;
  const finalLoss = [...events].reverse().find((e) => e.type === "step")?.loss ?? res.loss;

  const model = await openModel(run);
  const nll: number[] = [];
  for (const text of heldout) nll.push(...(await scoreIds(model, tokenizer.encode(text, { eos: true }), false)).logprobs);
  const ppl = Math.exp(-nll.reduce((a, b) => a + b, 0) / nll.length);
  fs.mkdirSync(out, { recursive: true });
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]) fs.copyFileSync(path.join(run, f), path.join(out, f));
  const info = { vocab: tokenizer.vocabSize, steps: res.step, batch: BATCH, lr: LR, stories: CORPUS, formatShare: FORMAT_SHARE, minutes: Number(minutes.toFixed(1)), heldoutPerplexity: Number(ppl.toFixed(3)), heldoutStories: heldout.length, finalLoss: Number(finalLoss.toFixed(4)), cpu: os.cpus()[0]?.model, cores: os.cpus().length };
  fs.writeFileSync(path.join(out, "pretraining.json"), JSON.stringify(info, null, 2) + "\n");
  const sample = await greedySample(model, tokenizer);
  model.dispose();
  fs.writeFileSync(path.join(out, "README.md"), modelReadme(info, sample));
  console.log(JSON.stringify(info));
}

async function greedySample(rt: Awaited<ReturnType<typeof openModel>>, tok: TextTokenizer): Promise<string> {
  const prompt = "Once upon a time, there was a";
  const r = await generate(rt, tok, tok.encode(prompt), { maxTokens: 80, temperature: 0, repetitionPenalty: 1 });
  return prompt + r.text;
}

function modelReadme(info: Record<string, unknown>, sample: string): string {
  const { hidden, layers, heads, kvHeads, intermediate, maxPositions } = ARCH;
  return `# The Excitor demo model

A small LLaMA (\`LlamaForCausalLM\`: RMSNorm, rotate-half RoPE, SwiGLU, grouped-query attention)
made by this repository from nothing, for \`npm run demo\` and the tests. Nothing here came from a
model hub; the corpus is generated by \`demo/scripts/corpus.ts\` and ships under the project's license.

| | |
|---|---|
| shape | hidden ${hidden}, ${layers} layers, ${heads} query heads / ${kvHeads} key-value heads (head dim ${hidden / heads}), MLP ${intermediate}, context ${maxPositions} |
| vocabulary | ${(info.vocab as number) ?? ""} tokens: a SentencePiece-style BPE with byte fallback trained by \`demo/scripts/bpe.ts\` |
| corpus | ${info.stories} generated children's stories, ${Math.round(100 * (info.formatShare as number))} % of them wrapped in the Alpaca format: write a story, continue a story, or answer who a character's friend is or where the story happens (never the demo's questions) |
| pretraining | ${info.steps} steps of ${info.batch} documents, AdamW, peak lr ${info.lr}, warmup then cosine, the engine's full-parameter mode on the tfjs wasm backend |
| time | ${info.minutes} minutes on ${info.cores} cores (${info.cpu}) |
| held-out perplexity | **${info.heldoutPerplexity}** on ${info.heldoutStories} stories from a seed the corpus did not use (final training loss ${(info.finalLoss as number).toFixed(3)}) |

Rebuild it (about the time above): \`npm run build && node dist/demo/scripts/pretrain.js\`. It
writes this folder, \`pretraining.json\` with the numbers, and this README.

Greedy continuation of "Once upon a time, there was a":

> ${sample.replace(/\n/g, " ")}
`;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
