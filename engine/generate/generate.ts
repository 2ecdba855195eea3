/**
 * Text generation with a KV cache, streamed token by token, stoppable by an AbortSignal,
 * EOS, stop strings or the token budget.
 */
import { yieldToEventLoop } from "../event-loop";
import type { ImageFeatures, ModelRuntime } from "../runtime";
import type { TextTokenizer } from "../tokenizer/tokenizer";
import { DEFAULT_SAMPLING, Sampler, type SamplingOptions } from "./sampler";

export interface GenerateOptions extends Partial<SamplingOptions> {
  maxTokens: number;
  /** Generation ends before the first occurrence of any of these; the stop string is not returned. */
  stop?: string[];
  signal?: AbortSignal;
  /** Use the runtime's adapter (default true); false gives the base model's answer. */
  useAdapter?: boolean;
  /** The picture a multimodal adapter answers about. */
  image?: ImageFeatures;
  /** Called with each new piece of text as soon as it is certain (not part of a possible stop string). */
  onText?: (delta: string) => void;
}

export type FinishReason = "eos" | "length" | "stop" | "aborted" | "context";

export interface GenerateResult {
  text: string;
  ids: number[];
  finishReason: FinishReason;
  promptTokens: number;
  /** Generated tokens per second, prompt processing excluded. */
  tokensPerSecond: number;
}

export async function generate(rt: ModelRuntime, tok: TextTokenizer, promptIds: number[], opts: GenerateOptions): Promise<GenerateResult> {
  const sampling: SamplingOptions = { ...DEFAULT_SAMPLING, ...definedOnly(opts) };
  const sampler = new Sampler(sampling);
  const stops = (opts.stop ?? []).filter((s) => s.length > 0);
  const eos = new Set(tok.eosIds);
  const context = promptIds.length ? promptIds.slice() : tok.bosId !== undefined ? [tok.bosId] : [];
  if (context.length === 0) throw new Error("generate: empty prompt and the tokenizer has no BOS token");
  const promptTokens = context.length;
  const session = rt.startDecode(opts.useAdapter ?? true, 1, opts.image);
  // The last prompt tokens as context, so the first generated word keeps its leading space.
  const decoder = tok.createStreamDecoder({ skipSpecial: true, context: context.slice(-4) });
  const ids: number[] = [];
  let text = "";
  let emitted = 0;
  let finishReason: FinishReason = "length";
  let t0 = 0;
  try {
    let logits = await session.feed(context);
    t0 = performance.now();
    while (ids.length < opts.maxTokens) {
      await yieldToEventLoop();
      if (opts.signal?.aborted) {
        finishReason = "aborted";
        break;
      }
      const id = sampler.pick(logits, context);
      if (eos.has(id)) {
        finishReason = "eos";
        break;
      }
      ids.push(id);
      context.push(id);
      text += decoder.push(id);
      const cut = firstStop(text, stops);
      if (cut >= 0) {
        text = text.slice(0, cut);
        finishReason = "stop";
        break;
      }
      const safe = text.length - heldBack(text, stops);
      if (safe > emitted) {
        opts.onText?.(text.slice(emitted, safe));
        emitted = safe;
      }
      if (ids.length >= opts.maxTokens) break;
      if (context.length >= rt.config.maxPositions) {
        finishReason = "context";
        break;
      }
      logits = await session.feed([id]);
    }
    if (finishReason !== "stop") text += decoder.flush();
  } finally {
    session.dispose();
  }
  if (text.length > emitted) opts.onText?.(text.slice(emitted));
  const secs = (performance.now() - t0) / 1000;
  return { text, ids, finishReason, promptTokens, tokensPerSecond: secs > 0 ? ids.length / secs : 0 };
}

function definedOnly(o: Partial<SamplingOptions>): Partial<SamplingOptions> {
  const out: Partial<SamplingOptions> = {};
  for (const k of ["temperature", "topP", "topK", "repetitionPenalty", "seed"] as const) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

function firstStop(text: string, stops: string[]): number {
  let best = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}

/** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
function heldBack(text: string, stops: string[]): number {
  let n = 0;
  for (const s of stops) for (let k = Math.min(s.length - 1, text.length); k > n; k--) if (text.endsWith(s.slice(0, k))) n = k;
  return n;
}
