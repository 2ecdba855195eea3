/**
 * The Alpaca prompt template, exactly as in the method spec (docs/excitor-method.md, "Prompt
 * formats"): the same text at training and at generation time, or the tuned model sees prompts
 * it was not trained on.
 */

const HEADER_WITH_INPUT =
  "Below is an instruction that describes a task, paired with an input that provides further context. " +
  "Write a response that appropriately completes the request.\n\n";

const HEADER_WITHOUT_INPUT =
  "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n";

/** Which part of a prompt a piece of its text is: the format's own words, or the user's. */
export type PromptPieceKind = "template" | "instruction" | "input";

export interface PromptPiece {
  kind: PromptPieceKind;
  text: string;
}

/**
 * The prompt for an Alpaca record; the response text follows it directly (no separator).
 * An empty or missing `input` selects the shorter "without input" template. Built by
 * concatenation, not placeholder replacement, so user text containing "{input}" stays intact.
 */
export function alpacaPrompt(instruction: string, input?: string): string {
  return alpacaPromptPieces(instruction, input)
    .map((p) => p.text)
    .join("");
}

/**
 * The same prompt in pieces, each marked as template text or the user's instruction or input:
 * what the attention view uses to tell the boilerplate from the user's words. Joined, the pieces
 * are exactly `alpacaPrompt(instruction, input)`.
 */
export function alpacaPromptPieces(instruction: string, input?: string): PromptPiece[] {
  if (input === undefined || input === "") {
    return [
      { kind: "template", text: `${HEADER_WITHOUT_INPUT}### Instruction:\n` },
      { kind: "instruction", text: instruction },
      { kind: "template", text: "\n\n### Response:" },
    ];
  }
  return [
    { kind: "template", text: `${HEADER_WITH_INPUT}### Instruction:\n` },
    { kind: "instruction", text: instruction },
    { kind: "template", text: "\n\n### Input:\n" },
    { kind: "input", text: input },
    { kind: "template", text: "\n\n### Response:" },
  ];
}
