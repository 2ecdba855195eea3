/**
 * `excitor serve`: a long-lived engine process for editors, speaking the JSON-lines protocol of
 * cli/serve-protocol.ts on stdin/stdout. The model and adapter load once; generations run one at
 * a time in arrival order, while `stop` requests act at once (the engine checks its AbortSignal
 * before every token). End of stdin ends the process.
 */
import * as readline from "node:readline";
import type { Command } from "commander";
import { attentionReport } from "../../engine/analysis/attention";
import { encodeChatPrompt } from "../../engine/data/encode";
import { ExcitorInputError } from "../../engine/errors";
import type { Adapter } from "../../engine/adapters";
import { generate } from "../../engine/generate/generate";
import { openModel, type BackendChoice } from "../../engine/load";
import type { ModelRuntime } from "../../engine/runtime";
import type { TextTokenizer } from "../../engine/tokenizer/tokenizer";
import { EXIT } from "../errors";
import type { Runner } from "../options";
import { adapterTemplate, alpacaConversationIds, fitContext, promptIds, responseIds } from "../prompt";
import { promptPieces } from "../prompt-pieces";
import type { AttentionRequest, GenerateRequest, PromptTemplate, ServeEvent, ServeRequest } from "../serve-protocol";
import { attachAdapter, modelOptions, openTokenizer } from "../session";

interface Opts {
  model: string;
  adapter?: string;
  backend: BackendChoice;
}

const ATTENTION_ANSWER_TOKENS = 64;

export function registerServe(program: Command, run: Runner): void {
  modelOptions(program.command("serve").description("engine process for editors: JSON-lines requests on stdin, events on stdout"))
    .action(run(async (c) => serveCommand(c.optsWithGlobals<Opts>())));
}

function send(e: ServeEvent): void {
  process.stdout.write(JSON.stringify(e) + "\n");
}

async function serveCommand(o: Opts): Promise<number> {
  let tok: TextTokenizer;
  let rt: ModelRuntime;
  let adapter: Adapter | null;
  try {
    tok = openTokenizer(o.model);
    rt = await openModel(o.model, { backend: o.backend });
    adapter = attachAdapter(rt, o.adapter);
  } catch (e) {
    if (e instanceof ExcitorInputError) send({ type: "fatal", message: e.message, file: e.file, line: e.line });
    throw e;
  }
  const hasChatTemplate = tok.chatTemplate !== undefined;
  const trained = adapterTemplate(adapter);
  const template: PromptTemplate = trained === "alpaca" || trained === "chat" ? trained : hasChatTemplate ? "chat" : "alpaca";
  send({ type: "ready", model: o.model, adapter: o.adapter ?? null, adapterMethod: adapter?.method ?? null, backend: rt.backend, numLayers: rt.config.numLayers, numHeads: rt.config.numHeads, template, hasChatTemplate });

  const running = new Map<number, AbortController>();
  let queue: Promise<void> = Promise.resolve();
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  rl.on("line", (line) => {
    let req: ServeRequest;
    try {
      req = JSON.parse(line) as ServeRequest;
    } catch {
      process.stderr.write(`excitor serve: ignored a line that is not JSON: ${line.slice(0, 80)}\n`);
      return;
    }
    if (req.op === "stop") {
      running.get(req.target)?.abort();
      return;
    }
    const ac = new AbortController();
    running.set(req.id, ac);
    queue = queue.then(async () => {
      try {
        if (req.op === "generate") await answer(req, ac.signal);
        else if (req.op === "attention") await attention(req);
        else send({ id: (req as { id: number }).id, type: "error", message: `unknown op ${JSON.stringify((req as { op: unknown }).op)}` });
      } catch (e) {
        send({ id: req.id, type: "error", message: e instanceof Error ? e.message : String(e) });
      } finally {
        running.delete(req.id);
      }
    });
  });

  async function answer(req: GenerateRequest, signal: AbortSignal): Promise<void> {
    const history = req.messages.slice();
    const encode = (h: typeof history) =>
      req.template === "chat" && hasChatTemplate ? encodeChatPrompt(h, tok) : alpacaConversationIds(h, tok, req.input || undefined);
    const ids = fitContext(history, encode, rt, req.maxTokens, history[0]?.role === "system" ? 1 : 0);
    if (!ids) throw new ExcitorInputError(`the message does not fit the model's context of ${rt.config.maxPositions} tokens`);
    const result = await generate(rt, tok, ids, {
      maxTokens: req.maxTokens,
      temperature: req.temperature,
      topP: req.topP,
      seed: req.seed,
      stop: req.template === "alpaca" || !hasChatTemplate ? ["### Instruction:"] : [],
      signal,
      useAdapter: req.useAdapter && adapter !== null,
      onText: (text) => send({ id: req.id, type: "text", text }),
    });
    send({ id: req.id, type: "done", text: result.text, finishReason: result.finishReason, tokens: result.ids.length, promptTokens: result.promptTokens, tokensPerSecond: result.tokensPerSecond });
  }

  async function attention(req: AttentionRequest): Promise<void> {
    const template = req.template === "chat" && !hasChatTemplate ? "alpaca" : req.template;
    const prompt = promptIds(tok, req.prompt, template, req.input || undefined);
    if (prompt.length === 0) throw new ExcitorInputError("the prompt is empty");
    const response =
      req.response !== undefined
        ? responseIds(tok, prompt, req.prompt, template, req.response, req.input || undefined)
        : (await generate(rt, tok, prompt, { maxTokens: ATTENTION_ANSWER_TOKENS, temperature: 0, repetitionPenalty: 1, useAdapter: adapter !== null })).ids;
    if (prompt.length + response.length > rt.config.maxPositions)
      throw new ExcitorInputError(`prompt and response are ${prompt.length + response.length} tokens; the model's context holds ${rt.config.maxPositions}`);
    const report = await attentionReport(rt, tok, adapter, prompt, response, promptPieces(tok, req.prompt, template, req.input || undefined));
    send({ id: req.id, type: "attention", report, responseText: tok.decode(response, { skipSpecial: true }) });
  }

  await new Promise<void>((resolve) => rl.on("close", resolve));
  for (const ac of running.values()) ac.abort();
  await queue;
  rt.dispose();
  return EXIT.ok;
}
