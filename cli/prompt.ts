/**
 * User text → prompt ids, in the format a tuned model was trained on. The Alpaca prompt gets
 * BOS the way the trainer adds it (always, when the tokenizer has one), or the model sees
 * prompts that differ from its training data by one token.
 */
import { encodeChatPrompt } from "../engine/data/encode";
import { alpacaPrompt } from "../engine/data/templates";
import type { ChatMessage, TextTokenizer } from "../engine/tokenizer/tokenizer";
import type { Adapter } from "../engine/adapters";
import type { ModelRuntime } from "../engine/runtime";
import type { TemplateName } from "./options";

/** `none` with empty text gives [] (generation then starts from BOS). `input` is Alpaca's context field. */
export function promptIds(tok: TextTokenizer, text: string, template: TemplateName, input?: string): number[] {
  if (template === "alpaca") return tok.encode(alpacaPrompt(text, input), { bos: true, eos: false });
  if (template === "chat") return encodeChatPrompt([{ role: "user", content: withInput(text, input) }], tok);
  return text === "" ? [] : tok.encode(text, { eos: false });
}

/** The template an adapter was trained with (the trainer records it), if it says. */
export function adapterTemplate(adapter: Adapter | null): TemplateName | undefined {
  const t = adapter?.template;
  return t === "alpaca" || t === "chat" ? t : undefined;
}

/** A chat message; a user's may carry the Alpaca input it was asked about (the chat's /input). */
export type ChatTurn = ChatMessage & { input?: string };

/**
 * A user message with its input, for a chat template (which has no input field): the input
 * follows the question after a blank line, in Alpaca's order.
 */
export function withInput(text: string, input: string | undefined): string {
  return input === undefined ? text : `${text}\n\n${input}`;
}

/** The messages with `input` on the last user message (the open question), as an editor's request gives it. */
export function inputOnLast(messages: ChatMessage[], input: string | undefined): ChatTurn[] {
  const last = messages.map((m) => m.role).lastIndexOf("user");
  return input === undefined || last < 0 ? messages : messages.map((m, i) => (i === last ? { ...m, input } : m));
}

/**
 * A conversation in Alpaca format: each finished exchange as one Alpaca example followed by EOS
 * (as the trainer joins chunks), then the open question's prompt. Alpaca has no multi-turn form;
 * replaying earlier exchanges this way is the closest thing to what the model saw. A user
 * message's `input` is its Alpaca context ("### Input:").
 */
export function alpacaConversationIds(messages: ChatTurn[], tok: TextTokenizer): number[] {
  const ids: number[] = [];
  let pendingUser: string | undefined;
  let context: string | undefined;
  const flush = (answer?: string) => {
    if (pendingUser === undefined) return;
    // A loop, not push(...): a pasted message of some 130,000 tokens would overflow the call stack.
    for (const id of tok.encode(alpacaPrompt(pendingUser, context) + (answer ?? ""), { bos: ids.length === 0, eos: false })) ids.push(id);
    if (answer !== undefined && tok.eosIds[0] !== undefined) ids.push(tok.eosIds[0]);
    pendingUser = undefined;
  };
  for (const m of messages) {
    if (m.role === "user") {
      flush("");
      pendingUser = m.content;
      context = m.input;
    } else if (m.role === "assistant") flush(m.content);
  }
  flush(undefined);
  return ids;
}

/**
 * A given response's ids as they follow the prompt: tokenized together with the prompt text, as
 * training tokenizes prompt + response, so that e.g. a SentencePiece tokenizer does not start the
 * response with a word-start "▁" token the model never saw there. Falls back to tokenizing the
 * response alone when the joint ids do not begin with the prompt's ids (a merge across the seam).
 */
export function responseIds(tok: TextTokenizer, prompt: number[], text: string, template: TemplateName, response: string, input?: string): number[] {
  const rendered =
    template === "alpaca" || (template === "chat" && tok.chatTemplate === undefined)
      ? alpacaPrompt(text, input)
      : template === "chat"
        ? tok.applyChatTemplate([{ role: "user", content: text }], { addGenerationPrompt: true })
        : text;
  const textHasBos = tok.bosToken !== undefined && rendered.startsWith(tok.bosToken);
  const joint = tok.encode(rendered + response, { bos: prompt[0] === tok.bosId && !textHasBos, eos: false });
  if (joint.length > prompt.length && prompt.every((id, i) => joint[i] === id)) return joint.slice(prompt.length);
  return tok.encode(response, { bos: false, eos: false });
}

/**
 * The prompt ids for `history`, dropping the oldest exchanges (after the first `keep` messages,
 * the system prompt) until the prompt and a full answer fit; null if even the last message alone
 * does not leave room for one token of answer.
 */
export function fitContext(history: ChatMessage[], encode: (h: ChatMessage[]) => number[], rt: ModelRuntime, maxTokens: number, keep: number): number[] | null {
  const limit = rt.config.maxPositions;
  let ids = encode(history);
  while (ids.length + maxTokens > limit && history.length - keep > 1) {
    history.splice(keep, 2);
    ids = encode(history);
  }
  return ids.length < limit ? ids : null;
}
