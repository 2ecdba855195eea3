/**
 * The terminal chat's slash commands, apart from the terminal: a typed line → what to do, and the
 * settings they change (the Alpaca input the next questions carry, temperature, answer length).
 * A line that starts with "/" and a word is a command, never a message: a mistyped command gets
 * an error and the list, instead of reaching the model.
 */
import { SAMPLING_RANGES, numberProblem } from "../engine/option-ranges";

export interface ChatSettings {
  /** Alpaca's "### Input:" for the questions that follow (the story a question is about). */
  input?: string;
  temperature: number;
  maxTokens: number;
}

export type ChatLine =
  | { kind: "message"; text: string }
  /** `fresh`: the conversation starts over (a new input is a new subject; Alpaca examples are single questions). */
  | { kind: "settings"; settings: ChatSettings; note: string; fresh?: boolean }
  | { kind: "reset" }
  | { kind: "image"; file: string }
  | { kind: "help" }
  | { kind: "exit" }
  | { kind: "error"; message: string }
  | { kind: "empty" };

export interface CommandHelp {
  usage: string;
  what: string;
}

/** Every slash command, in the order /help lists them; /image only with a multimodal adapter. */
export function chatCommands(images: boolean): CommandHelp[] {
  return [
    { usage: "/input TEXT", what: "the context the next questions are about (Alpaca's Input, e.g. a story); shown in the prompt while set; starts a new conversation" },
    { usage: "/input", what: "clear the input (and start a new conversation)" },
    ...(images ? [{ usage: "/image PATH", what: "show the model a picture for the rest of the conversation; /image alone removes it" }] : []),
    { usage: "/temp T", what: "sampling temperature (0: greedy, always the same answer)" },
    { usage: "/max N", what: "the longest answer, in tokens" },
    { usage: "/reset", what: "forget the conversation (the input and settings stay)" },
    { usage: "/help", what: "this list" },
    { usage: "/exit", what: "quit (so does Ctrl-D; Ctrl-C stops an answer)" },
  ];
}

export function helpText(images: boolean): string {
  const cmds = chatCommands(images);
  const width = Math.max(...cmds.map((c) => c.usage.length));
  return cmds.map((c) => `  ${c.usage.padEnd(width)}  ${c.what}`).join("\n") + "\n";
}

export function parseChatLine(line: string, s: ChatSettings, images: boolean): ChatLine {
  const text = line.trim();
  if (text === "") return { kind: "empty" };
  const m = /^\/([a-z]+)\b\s*([\s\S]*)$/i.exec(text);
  if (!m) return { kind: "message", text };
  const [, name, rest] = m;
  const arg = rest.trim();
  switch (name.toLowerCase()) {
    case "exit":
    case "quit":
      return { kind: "exit" };
    case "help":
      return { kind: "help" };
    case "reset":
      return { kind: "reset" };
    case "input":
      return arg === ""
        ? { kind: "settings", settings: { ...s, input: undefined }, note: "(input cleared; a new conversation starts)", fresh: true }
        : { kind: "settings", settings: { ...s, input: arg }, note: `(input set: ${preview(arg, 60)}; a new conversation starts; /input alone clears it)`, fresh: true };
    case "temp":
      return numberSetting(arg, "/temp", SAMPLING_RANGES.temperature, (temperature) => ({ kind: "settings", settings: { ...s, temperature }, note: `(temperature ${temperature}${temperature === 0 ? ": greedy" : ""})` }));
    case "max":
      return numberSetting(arg, "/max", SAMPLING_RANGES.maxTokens, (maxTokens) => ({ kind: "settings", settings: { ...s, maxTokens }, note: `(answers of at most ${maxTokens} tokens)` }));
    case "image":
      if (images) return { kind: "image", file: arg };
  }
  return { kind: "error", message: `/${name} is not a chat command; /help lists them (${chatCommands(images).map((c) => c.usage.split(" ")[0]).filter((u, i, a) => a.indexOf(u) === i).join(" ")})` };
}

function numberSetting(arg: string, name: string, rule: Parameters<typeof numberProblem>[1], make: (n: number) => ChatLine): ChatLine {
  if (arg === "") return { kind: "error", message: `${name} needs a value, e.g. ${name} ${name === "/temp" ? "0.7" : "128"}` };
  const n = Number(arg);
  const problem = numberProblem(n, rule);
  return problem ? { kind: "error", message: `${name} ${arg}: ${problem}` } : make(n);
}

/** The prompt: "> ", or with an input set "[input: One day, a brave cat…] > ". */
export function chatPrompt(s: ChatSettings): string {
  return s.input === undefined ? "> " : `[input: ${preview(s.input, 32)}] > `;
}

function preview(text: string, width: number): string {
  const flat = text.replace(/\s+/g, " ");
  return flat.length <= width ? flat : `${flat.slice(0, width - 1)}…`;
}
