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

/**
 * The prompt for an Alpaca record; the response text follows it directly (no separator).
 * An empty or missing `input` selects the shorter "without input" template. Built by
 * concatenation, not placeholder replacement, so user text containing "{input}" stays intact.
 */
export function alpacaPrompt(instruction: string, input?: string): string {
  if (input === undefined || input === "") {
    return `${HEADER_WITHOUT_INPUT}### Instruction:\n${instruction}\n\n### Response:`;
  }
  return `${HEADER_WITH_INPUT}### Instruction:\n${instruction}\n\n### Input:\n${input}\n\n### Response:`;
}
