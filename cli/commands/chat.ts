/**
 * `excitor chat`: a terminal conversation. The prompt format is the one the adapter was trained
 * with (its config records it), else the tokenizer's chat template, else Alpaca, so the tuned
 * model sees what it learned from. History is kept and its oldest exchanges are dropped when it
 * no longer fits the context. Slash commands (cli/chat-commands.ts, `/help`): `/input TEXT` sets
 * the context the next questions are about (Alpaca's Input: the demo's stories), `/temp`, `/max`,
 * `/reset`, `/image PATH` (a multimodal adapter), `/exit`. End of input quits, and Ctrl-C while an
 * answer streams stops that answer only (at the prompt it quits). Piped lines work the same, so
 * scripts and tests drive it line by line.
 */
import * as readline from "node:readline";
import type { Command } from "commander";
import type { SamplingOptions } from "../../engine/generate/sampler";
import { encodeChatPrompt } from "../../engine/data/encode";
import { generate } from "../../engine/generate/generate";
import type { HeldPrecision } from "../../engine/model/memory";
import { openModel, type BackendChoice } from "../../engine/load";
import type { ModelRuntime } from "../../engine/runtime";
import type { TextTokenizer } from "../../engine/tokenizer/tokenizer";
import { ExcitorInputError } from "../../engine/errors";
import { EXIT } from "../errors";
import { samplingFrom, type Runner } from "../options";
import { adapterTemplate, alpacaConversationIds, fitContext, withInput, type ChatTurn } from "../prompt";
import { chatPrompt, helpText, parseChatLine, type ChatSettings } from "../chat-commands";
import { attachAdapter, checkIds, imageOptions, modelOptions, openPicture, openTokenizer } from "../session";
import { pictureFeatures } from "../../engine/vision/attach";
import type { ImageFeatures } from "../../engine/runtime";
import { samplingOptions } from "./generate";

interface Opts extends SamplingOptions {
  model: string;
  adapter?: string;
  image?: string;
  vision?: string;
  backend: BackendChoice;
  weights: HeldPrecision;
  system?: string;
  input?: string;
  maxTokens: number;
}

export function registerChat(program: Command, run: Runner): void {
  const cmd = imageOptions(modelOptions(program.command("chat").description("chat with the model in the terminal (/help lists the commands: /input TEXT, /temp, /max, /reset, /exit)")))
    .option("--system <text>", "system message (chat-template models only)")
    .option("--input <text>", "the context the questions are about (Alpaca's Input, e.g. a story), as /input TEXT sets it");
  samplingOptions(cmd, 512, 1.1).action(run(async (c) => chatCommand(c.optsWithGlobals<Opts>())));
}

async function chatCommand(o: Opts): Promise<number> {
  const tok = openTokenizer(o.model);
  const rt = await openModel(o.model, { backend: o.backend, weights: o.weights });
  try {
    return await converse(o, tok, rt);
  } finally {
    rt.dispose();
  }
}

async function converse(o: Opts, tok: TextTokenizer, rt: ModelRuntime): Promise<number> {
  const adapter = attachAdapter(rt, o.adapter);
  const picture = await openPicture(rt, adapter, o);
  let image: ImageFeatures | undefined = picture.features;
  const template = adapterTemplate(adapter) ?? (tok.chatTemplate !== undefined ? "chat" : "alpaca");
  const encode = (history: ChatTurn[]) => (template === "chat" ? encodeChatPrompt(history, tok) : alpacaConversationIds(history, tok));
  const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: interactive, prompt: "> " });
  const lines = lineQueue(rl);
  let answering: AbortController | undefined;
  const onInterrupt = () => (answering ? answering.abort() : rl.close());
  rl.on("SIGINT", onInterrupt); // terminal mode: readline sees Ctrl-C as a key
  process.on("SIGINT", onInterrupt); // piped input: a real signal
  const start: ChatTurn[] = o.system && template === "chat" ? [{ role: "system", content: o.system }] : [];
  let history = start.slice();
  let settings: ChatSettings = { input: o.input, temperature: o.temperature, maxTokens: o.maxTokens };
  const images = picture.encoder !== undefined;
  if (interactive) process.stdout.write(`chatting with ${o.model}${adapter ? ` + ${o.adapter}` : ""} (${template} format); /help lists the commands, /exit quits\n`);
  try {
    for (;;) {
      if (interactive) {
        rl.setPrompt(chatPrompt(settings));
        rl.prompt();
      }
      const line = await lines.next();
      if (line === null) break;
      const parsed = parseChatLine(line, settings, images);
      if (parsed.kind === "exit") break;
      if (parsed.kind === "empty") continue;
      if (parsed.kind === "help") {
        process.stdout.write(helpText(images));
        continue;
      }
      if (parsed.kind === "error") {
        process.stderr.write(`excitor: error: ${parsed.message}\n`);
        continue;
      }
      if (parsed.kind === "settings") {
        settings = parsed.settings;
        if (parsed.fresh) history = start.slice();
        process.stdout.write(parsed.note + "\n");
        continue;
      }
      if (parsed.kind === "reset") {
        history = start.slice();
        process.stdout.write("(history cleared)\n");
        continue;
      }
      if (parsed.kind === "image") {
        try {
          image = parsed.file === "" ? undefined : await pictureFeatures(picture.encoder, parsed.file, "/image");
          process.stdout.write(parsed.file === "" ? "(picture removed)\n" : `(picture: ${parsed.file})\n`);
        } catch (e) {
          if (!(e instanceof ExcitorInputError)) throw e;
          process.stderr.write(`excitor: error: ${e.message}\n`);
        }
        continue;
      }
      history.push(template === "chat" ? { role: "user", content: withInput(parsed.text, settings.input) } : { role: "user", content: parsed.text, input: settings.input });
      let ids: number[] | null;
      try {
        ids = fitContext(history, encode, rt, settings.maxTokens, start.length);
        if (!ids) throw new ExcitorInputError(`that message does not fit the model's context of ${rt.config.maxPositions} tokens`);
        checkIds(ids, rt.config.vocabSize, "that message", tok);
      } catch (e) {
        // A message too long, or a chat template that rejects the conversation: drop it, go on.
        if (!(e instanceof ExcitorInputError)) throw e;
        history.pop();
        process.stderr.write(`excitor: error: ${e.message}\n`);
        continue;
      }
      answering = new AbortController();
      const result = await generate(rt, tok, ids, {
        ...samplingFrom(o),
        maxTokens: settings.maxTokens,
        temperature: settings.temperature,
        stop: template === "alpaca" ? ["### Instruction:"] : [],
        signal: answering.signal,
        useAdapter: adapter !== null,
        image,
        onText: (d) => process.stdout.write(d),
      });
      answering = undefined;
      process.stdout.write(result.finishReason === "aborted" ? " [stopped]\n" : "\n");
      history.push({ role: "assistant", content: result.text.trim() });
    }
    return EXIT.ok;
  } finally {
    process.removeListener("SIGINT", onInterrupt);
    rl.close();
    picture.encoder?.dispose();
  }
}

/** readline's lines as a pull queue (lines typed or piped while an answer streams wait their turn); null at end of input. */
function lineQueue(rl: readline.Interface): { next(): Promise<string | null> } {
  const buffered: (string | null)[] = [];
  let waiting: ((l: string | null) => void) | undefined;
  const push = (l: string | null) => {
    if (waiting) {
      const w = waiting;
      waiting = undefined;
      w(l);
    } else buffered.push(l);
  };
  rl.on("line", push);
  rl.on("close", () => push(null));
  return {
    next: () => (buffered.length ? Promise.resolve(buffered.shift()!) : new Promise((resolve) => (waiting = resolve))),
  };
}

