/**
 * The text `promptIds` (./prompt.ts) encodes, split into template words, instruction and input,
 * for the attention report's spans. It follows promptIds branch by branch; the report checks that
 * the pieces joined encode to the same ids and falls back to one instruction span when not.
 */
import { alpacaPromptPieces, type PromptPiece } from "../engine/data/templates";
import type { TextTokenizer } from "../engine/tokenizer/tokenizer";
import type { TemplateName } from "./options";

export function promptPieces(tok: TextTokenizer, text: string, template: TemplateName, input?: string): PromptPiece[] {
  if (template === "alpaca") return alpacaPromptPieces(text, input);
  if (template === "chat") {
    // Without a chat template, a single user message is an Alpaca prompt without input (encodeChatPrompt's fallback).
    if (tok.chatTemplate === undefined) return alpacaPromptPieces(text);
    const rendered = tok.applyChatTemplate([{ role: "user", content: text }], { addGenerationPrompt: true });
    const at = text === "" ? -1 : rendered.lastIndexOf(text);
    if (at < 0) return [{ kind: "template", text: rendered }];
    return [
      { kind: "template", text: rendered.slice(0, at) },
      { kind: "instruction", text },
      { kind: "template", text: rendered.slice(at + text.length) },
    ].filter((p) => p.text !== "") as PromptPiece[];
  }
  return [{ kind: "instruction", text }];
}
