/**
 * Dataset records → token ids with a loss mask, following docs/excitor-method.md: the loss is
 * next-token cross-entropy on response tokens only, so prompts are tokenized but masked out.
 */
import { ExcitorInputError } from "../errors";
import { Rng } from "../rng";
import type { ChatMessage, PrefixIds, TextTokenizer } from "../tokenizer/tokenizer";
import { idsOutsideVocabulary } from "../tokenizer/ids-fit";
import { recordLocation, type DatasetRecord } from "./datasets";
import { alpacaPrompt } from "./templates";

export interface Example {
  ids: number[];
  /** 1 where token ids[t] is a target (loss on predicting ids[t] from ids[<t]), else 0. */
  lossMask: Uint8Array;
  /** True when the example was longer than maxLen and its end was cut off (reported to the user). */
  truncated: boolean;
  /** The record's `line` (JSON Lines line, or record number in a JSON array). */
  line: number;
  /** The record's picture (absolute path), for a multimodal adapter. */
  image?: string;
}

/**
 * Ids and mask before truncation: all of the record's tokens, or (complete = false) at least the
 * first `budget` of them, where the record is longer than that.
 */
interface Encoded {
  ids: number[];
  mask: number[];
  complete: boolean;
}

/**
 * Encodes one record for training.
 *
 * Alpaca, exactly per the spec: ids = BOS + tokenize(prompt + output) + EOS, and the first
 * len(BOS + tokenize(prompt)) tokens are masked out (the EOS is a target, so the model learns to stop).
 *
 * Chat: rendered with the tokenizer's chat template; only assistant turns are targets, found by
 * rendering and tokenizing prefixes of the conversation (see `encodeWithTemplate`). Tokenizers
 * without a chat template use the fallback format of `fallbackChunks`.
 *
 * Examples longer than maxLen are cut to maxLen (truncated = true); one with no target left
 * after the cut is an ExcitorInputError, since it would teach nothing. Only about as much text as
 * maxLen + 1 tokens take is tokenized (TextTokenizer.encodePrefix), so a huge record costs no
 * more than a normal one, and the kept ids are those of tokenizing the whole record. With the
 * model's `vocabSize`, an id the model has no embedding for is an error naming the record.
 */
export function encodeRecord(rec: DatasetRecord, tok: TextTokenizer, maxLen: number, file: string, vocabSize?: number): Example {
  if (!Number.isInteger(maxLen) || maxLen < 2) {
    throw new ExcitorInputError(`max length must be an integer of at least 2, got ${maxLen}`);
  }
  const where = recordLocation(file, rec);
  const line = rec.fromArray ? undefined : rec.line;
  // One token more than is kept tells whether the example was cut.
  const budget = maxLen + 1;
  let enc: Encoded;
  try {
    if (rec.kind === "alpaca") {
      enc = encodeChunks([{ prompt: alpacaPrompt(rec.instruction, rec.input), response: rec.output }], tok, budget);
    } else if (rec.kind === "text") {
      enc = encodeChunks([{ prompt: "", response: rec.text }], tok, budget); // BOS + text + EOS, all but BOS targets
    } else if (tok.chatTemplate !== undefined) {
      enc = encodeWithTemplate(rec.messages, tok, budget);
    } else {
      enc = encodeChunks(fallbackChunks(rec.messages), tok, budget);
    }
  } catch (e) {
    if (e instanceof ExcitorInputError && e.file === undefined) {
      throw new ExcitorInputError(`${where}: ${e.message}`, file, line);
    }
    throw e;
  }

  const promptLen = enc.mask.indexOf(1);
  if (promptLen < 0 && !enc.complete) {
    throw new ExcitorInputError(
      `${where}: prompt is more than ${maxLen} tokens, longer than max length ${maxLen}: no response token left to learn from`,
      file,
      line,
    );
  }
  if (promptLen < 0) {
    throw new ExcitorInputError(`${where}: the chat template rendered no assistant text to learn from`, file, line);
  }
  if (promptLen >= maxLen) {
    throw new ExcitorInputError(
      `${where}: prompt is ${promptLen} tokens, ${promptLen > maxLen ? "longer than" : "as long as"} max length ` +
        `${maxLen}: no response token left to learn from`,
      file,
      line,
    );
  }
  const truncated = enc.ids.length > maxLen;
  const n = Math.min(enc.ids.length, maxLen);
  const ids = enc.ids.slice(0, n);
  const misfit = vocabSize === undefined ? undefined : idsOutsideVocabulary(ids, vocabSize, tok);
  if (misfit) throw new ExcitorInputError(`${where}: ${misfit}`, file, line);
  const image = rec.kind !== "text" ? rec.image : undefined;
  return { ids, lossMask: Uint8Array.from(enc.mask.slice(0, n)), truncated, line: rec.line, ...(image ? { image } : {}) };
}

/**
 * The ids to feed the model to generate the next assistant turn of `messages`, in the same
 * format `encodeRecord` trains on (chat template with add_generation_prompt, or the fallback).
 */
export function encodeChatPrompt(messages: ChatMessage[], tok: TextTokenizer): number[] {
  if (tok.chatTemplate !== undefined) {
    return encodeRendered(tok.applyChatTemplate(messages, { addGenerationPrompt: true }), tok);
  }
  const chunks = fallbackChunks(messages);
  const done = encodeChunks(chunks.filter((c) => c.response !== undefined), tok).ids;
  const open = chunks.find((c) => c.response === undefined);
  const prompt = open?.prompt ?? FALLBACK_ASSISTANT;
  return done.concat(tok.encode(prompt, { bos: done.length === 0, eos: false }));
}

/**
 * Chat with a template. Each assistant message i spans the tokens between
 * tokenize(render(messages[<i], add_generation_prompt=true)) and
 * tokenize(render(messages[<=i], add_generation_prompt=false)), so its content and whatever end
 * marker the template writes after it (e.g. `<|im_end|>\n`, ` </s>`) are targets, while the role
 * header and all user/system text are not. Spans are measured as the common prefix of the prefix's
 * tokens with the full conversation's tokens, which stays right even if a merge crosses a boundary.
 */
function encodeWithTemplate(messages: ChatMessage[], tok: TextTokenizer, budget: number): Encoded {
  // Each sequence is tokenized up to `budget` ids: their common prefixes, hence the mask, are
  // then those of the whole sequences within the first `budget` tokens.
  const rendered = (upTo: number, addGenerationPrompt: boolean) =>
    encodeRendered(tok.applyChatTemplate(messages.slice(0, upTo), { addGenerationPrompt }), tok, budget);
  const { ids, complete } = rendered(messages.length, false);
  const mask = new Array<number>(ids.length).fill(0);
  for (const [i, m] of messages.entries()) {
    if (m.role !== "assistant" || m.content.trim() === "") continue;
    const start = commonPrefixLength(rendered(i, true).ids, ids);
    if (start >= ids.length) break; // this answer and the later ones begin after the kept tokens
    const end = commonPrefixLength(rendered(i + 1, false).ids, ids);
    for (let t = start; t < end; t++) mask[t] = 1;
  }
  return { ids, mask, complete };
}

/**
 * Tokenizes template output. Templates usually write `bos_token` into the text themselves, so BOS
 * is added only when the tokenizer wants one and the text does not already start with it.
 */
function encodeRendered(text: string, tok: TextTokenizer): number[];
function encodeRendered(text: string, tok: TextTokenizer, budget: number): PrefixIds;
function encodeRendered(text: string, tok: TextTokenizer, budget?: number): number[] | PrefixIds {
  const hasBos = tok.bosToken !== undefined && text.startsWith(tok.bosToken);
  const opts = { bos: tok.addBos && !hasBos, eos: false };
  return budget === undefined ? tok.encode(text, opts) : tok.encodePrefix(text, budget, opts);
}

/** One prompt → response exchange; the last chunk of a generation prompt has no response yet. */
interface Chunk {
  prompt: string;
  response?: string;
}

const FALLBACK_ASSISTANT = "### Assistant:\n";

/**
 * The format used when the tokenizer has no chat template (base models):
 * - a single user → assistant exchange uses the Alpaca template (instruction = the user's text),
 *   so a chat dataset trains exactly like the equivalent Alpaca dataset;
 * - anything else becomes blocks: a system message as plain text followed by a blank line, each
 *   other turn as `### User:\n{content}\n\n` (`### System:` etc. for other roles after the
 *   start), and each answer as `### Assistant:\n{content}` followed by the EOS token.
 * Each chunk (pending prompt blocks + one answer) is tokenized as one string, like an Alpaca
 * record, and chunks are joined by EOS.
 */
function fallbackChunks(messages: ChatMessage[]): Chunk[] {
  const [first, second] = messages;
  if (messages.length === 2 && first?.role === "user" && second?.role === "assistant") {
    return [{ prompt: alpacaPrompt(first.content), response: second.content }];
  }
  if (messages.length === 1 && first?.role === "user") return [{ prompt: alpacaPrompt(first.content) }];
  const chunks: Chunk[] = [];
  let pending = "";
  messages.forEach((m, i) => {
    if (m.role === "assistant") {
      chunks.push({ prompt: pending + FALLBACK_ASSISTANT, response: m.content });
      pending = "";
    } else if (m.role === "system" && i === 0) {
      pending += `${m.content}\n\n`;
    } else {
      const role = m.role.charAt(0).toUpperCase() + m.role.slice(1);
      pending += `### ${role}:\n${m.content}\n\n`;
    }
  });
  chunks.push({ prompt: pending + FALLBACK_ASSISTANT });
  return chunks;
}

/**
 * BOS + tokenize(prompt₁ + response₁) + EOS + tokenize(prompt₂ + response₂) + EOS ...; within each
 * chunk the first len(tokenize(prompt)) tokens are masked (the spec's Alpaca rule, per chunk).
 * Chunks without a response are skipped (they only matter for generation prompts).
 */
function encodeChunks(chunks: Chunk[], tok: TextTokenizer, budget = Infinity): Encoded {
  const ids: number[] = [];
  const mask: number[] = [];
  for (const c of chunks) {
    if (c.response === undefined || c.response === "") continue;
    const eos = tok.eosIds[0];
    if (eos === undefined) {
      throw new ExcitorInputError("the tokenizer has no EOS token (set eos_token in tokenizer_config.json)");
    }
    const room = budget - ids.length;
    if (room <= 0) return { ids, mask, complete: false };
    const bos = ids.length === 0;
    const full = tok.encodePrefix(c.prompt + c.response, room, { bos, eos: false });
    const prompt = tok.encodePrefix(c.prompt, room, { bos, eos: false });
    // A prompt cut short is longer than everything kept: no target among these ids.
    const promptLen = prompt.complete ? prompt.ids.length : Infinity;
    if (full.complete) full.ids.push(eos);
    full.ids.forEach((id, t) => {
      ids.push(id);
      mask.push(t < promptLen ? 0 : 1);
    });
    if (!full.complete) return { ids, mask, complete: false };
  }
  return { ids, mask, complete: true };
}

function commonPrefixLength(a: number[], b: number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * Splits items into train and validation sets, reproducibly for a seed. With validationShare > 0
 * and at least 2 items, validation gets max(1, round(share · n)) items and train keeps at least
 * one. Which items go where is random (by seed); both parts keep the items' original order, so
 * reports list validation examples in file order.
 */
/** How many of `n` examples splitTrainValidation holds out (none when the share is 0 or n < 2). */
export function validationSize(n: number, validationShare: number): number {
  if (validationShare === 0 || n < 2) return 0;
  return Math.min(n - 1, Math.max(1, Math.round(validationShare * n)));
}

export function splitTrainValidation<T>(items: T[], validationShare: number, seed: number): { train: T[]; validation: T[] } {
  if (!Number.isFinite(validationShare) || validationShare < 0 || validationShare >= 1) {
    throw new ExcitorInputError(`validation share must be at least 0 and below 1, got ${validationShare}`);
  }
  const n = items.length;
  const nVal = validationSize(n, validationShare);
  if (nVal === 0) return { train: items.slice(), validation: [] };
  const order = new Rng(seed).shuffle(Array.from({ length: n }, (_, i) => i));
  const isVal = new Uint8Array(n);
  for (const i of order.slice(0, nVal)) isVal[i] = 1;
  return { train: items.filter((_, i) => !isVal[i]), validation: items.filter((_, i) => isVal[i]) };
}
