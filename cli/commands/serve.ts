/**
 * `excitor serve`: a long-lived engine process for editors, speaking the JSON-lines protocol of
 * cli/serve-protocol.ts on stdin/stdout. The model and adapter load once; generations run one at
 * a time in arrival order, while `stop` requests act at once (the engine checks its AbortSignal
 * before every token). End of stdin ends the process.
 *
 * Nothing a line holds ends the process or reaches the engine unchecked: each line is checked
 * when it arrives (cli/serve-requests.ts), and a malformed one, or a prompt that cannot fit the
 * model's context (cli/prompt-size.ts, decided without tokenizing it), is answered at once with
 * an `error` event. So the line handler never does long work, and a `stop` is heard while a huge
 * line is turned away.
 */
import * as readline from "node:readline";
import type { Command } from "commander";
import { attentionReport } from "../../engine/analysis/attention";
import { encodeChatPrompt } from "../../engine/data/encode";
import { ExcitorInputError } from "../../engine/errors";
import type { Adapter } from "../../engine/adapters";
import { generate } from "../../engine/generate/generate";
import type { HeldPrecision } from "../../engine/model/memory";
import { openModel, type BackendChoice } from "../../engine/load";
import type { ModelRuntime } from "../../engine/runtime";
import type { TextTokenizer } from "../../engine/tokenizer/tokenizer";
import { EXIT } from "../errors";
import type { Runner } from "../options";
import { adapterTemplate, alpacaConversationIds, fitContext, inputOnLast, promptIds, responseIds } from "../prompt";
import { promptPieces } from "../prompt-pieces";
import { dropOverlong, maxPromptChars, overlongMessage } from "../prompt-size";
import type { PromptTemplate, ServeEvent } from "../serve-protocol";
import { checkRequest, type CheckedAttention, type CheckedGenerate, type RequestLimits } from "../serve-requests";
import { attachAdapter, checkIds, modelOptions, openTokenizer, pictureView } from "../session";
import { openAdapterEncoder, pictureFeatures } from "../../engine/vision/attach";
import type { VisionEncoder } from "../../engine/vision/encoder";

interface Opts {
  model: string;
  adapter?: string;
  vision?: string;
  backend: BackendChoice;
  weights: HeldPrecision;
}

const ATTENTION_ANSWER_TOKENS = 64;

export function registerServe(program: Command, run: Runner): void {
  modelOptions(program.command("serve").description("engine process for editors: JSON-lines requests on stdin, events on stdout"))
    .option("--vision <dir>", "the CLIP vision encoder folder of a multimodal adapter (default: the one its adapter_config.json names)")
    .action(run(async (c) => serveCommand(c.optsWithGlobals<Opts>())));
}

function send(e: ServeEvent): void {
  process.stdout.write(JSON.stringify(e) + "\n");
}

async function serveCommand(o: Opts): Promise<number> {
  let tok: TextTokenizer;
  let rt: ModelRuntime;
  let adapter: Adapter | null;
  let encoder: VisionEncoder | undefined;
  try {
    tok = openTokenizer(o.model);
    rt = await openModel(o.model, { backend: o.backend, weights: o.weights });
    adapter = attachAdapter(rt, o.adapter);
    encoder = await openAdapterEncoder(rt, adapter, o.adapter, o.vision);
  } catch (e) {
    if (e instanceof ExcitorInputError) send({ type: "fatal", message: e.message, file: e.file, line: e.line });
    throw e;
  }
  const hasChatTemplate = tok.chatTemplate !== undefined;
  const trained = adapterTemplate(adapter);
  const template: PromptTemplate = trained === "alpaca" || trained === "chat" ? trained : hasChatTemplate ? "chat" : "alpaca";
  send({ type: "ready", model: o.model, adapter: o.adapter ?? null, adapterMethod: adapter?.method ?? null, backend: rt.backend, numLayers: rt.config.numLayers, numHeads: rt.config.numHeads, template, hasChatTemplate, vision: encoder ? { numTokens: encoder.numTokens, grid: encoder.grid, imageSize: encoder.imageSize } : null });

  const maxPositions = rt.config.maxPositions;
  const limits: RequestLimits = { maxPositions, template };
  const maxChars = maxPromptChars(tok, maxPositions);
  /** Generations and attention requests queued or running, by id: what `stop` can reach. */
  const inFlight = new Map<number, AbortController>();
  let queue: Promise<void> = Promise.resolve();
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  rl.on("line", (line) => {
    try {
      take(line);
    } catch (e) {
      // A bug in the checks must not cost the generations in flight: report it and go on.
      send({ type: "error", message: `internal error on a request line: ${e instanceof Error ? e.message : String(e)}` });
    }
  });

  function take(line: string): void {
    if (line.trim() === "") return; // a blank line asks nothing
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (e) {
      process.stderr.write(`excitor serve: ignored a line that is not JSON: ${line.slice(0, 80)}\n`);
      return send({ type: "error", message: `the line is not JSON (${e instanceof Error ? e.message.slice(0, 120) : String(e)})` });
    }
    const checked = checkRequest(raw, limits);
    if (!checked.ok) return send(checked.id === undefined ? { type: "error", message: checked.error } : { id: checked.id, type: "error", message: checked.error });
    const req = checked.request;
    if (req.op === "stop") return void inFlight.get(req.target)?.abort();
    // Its events would be routed to the earlier request of that id, so this error carries none.
    if (inFlight.has(req.id)) return send({ type: "error", message: `${req.op}.id: ${req.id} is taken by a request not yet answered` });
    const job = fitted(req);
    if (typeof job === "string") return send({ id: req.id, type: "error", message: job });
    const ac = new AbortController();
    inFlight.set(job.id, ac);
    queue = queue.then(async () => {
      try {
        if (job.op === "generate") await answer(job, ac.signal);
        else await attention(job);
      } catch (e) {
        send({ id: job.id, type: "error", message: e instanceof Error ? e.message : String(e) });
      } finally {
        inFlight.delete(job.id);
      }
    });
  }

  /**
   * The request with the template it will really get ("chat" needs a chat template) and the
   * exchanges that cannot fit dropped, or why its prompt cannot fit at all; decided from lengths
   * alone, so a huge prompt is never tokenized.
   */
  function fitted(req: CheckedGenerate | CheckedAttention): CheckedGenerate | CheckedAttention | string {
    const tpl = req.template === "chat" && !hasChatTemplate ? "alpaca" : req.template;
    const inputChars = tpl === "alpaca" ? req.input.length : 0;
    if (req.op === "attention") {
      const chars = req.prompt.length + inputChars + (req.response?.length ?? 0);
      return chars > maxChars ? `attention.prompt: prompt + input + response: ${overlongMessage(chars, maxChars, maxPositions)}` : { ...req, template: tpl };
    }
    const keep = req.messages[0]?.role === "system" ? 1 : 0;
    const fit = dropOverlong(req.messages, maxChars, keep, (m) => tpl === "chat" || m.role !== "system", inputChars);
    if ("chars" in fit) {
      const kept = ["the last message", ...(keep && tpl === "chat" ? ["the system message"] : []), ...(inputChars ? ["the input"] : [])].join(" + ");
      return `generate.messages: ${kept}: ${overlongMessage(fit.chars, maxChars, maxPositions)}`;
    }
    return { ...req, template: tpl as PromptTemplate, messages: fit.kept };
  }

  async function answer(req: CheckedGenerate, signal: AbortSignal): Promise<void> {
    const history = req.messages.slice();
    const encode = (h: typeof history) => (req.template === "chat" ? encodeChatPrompt(h, tok) : alpacaConversationIds(inputOnLast(h, req.input || undefined), tok));
    const ids = fitContext(history, encode, rt, req.maxTokens, history[0]?.role === "system" ? 1 : 0);
    if (!ids) throw new ExcitorInputError(`the message does not fit the model's context of ${rt.config.maxPositions} tokens`);
    checkIds(ids, rt.config.vocabSize, "generate.messages", tok);
    const result = await generate(rt, tok, ids, {
      maxTokens: req.maxTokens,
      temperature: req.temperature,
      topP: req.topP,
      seed: req.seed,
      stop: req.template === "alpaca" ? ["### Instruction:"] : [],
      signal,
      useAdapter: req.useAdapter && adapter !== null,
      image: req.image === undefined ? undefined : await pictureFeatures(encoder, req.image, "generate.image"),
      onText: (text) => send({ id: req.id, type: "text", text }),
    });
    send({ id: req.id, type: "done", text: result.text, finishReason: result.finishReason, tokens: result.ids.length, promptTokens: result.promptTokens, tokensPerSecond: result.tokensPerSecond });
  }

  async function attention(req: CheckedAttention): Promise<void> {
    const template = req.template;
    const prompt = promptIds(tok, req.prompt, template, req.input || undefined);
    if (prompt.length === 0) throw new ExcitorInputError("the prompt is empty");
    const image = req.image === undefined ? undefined : await pictureFeatures(encoder, req.image, "attention.image");
    const response =
      req.response !== undefined
        ? responseIds(tok, prompt, req.prompt, template, req.response, req.input || undefined)
        : (await generate(rt, tok, prompt, { maxTokens: ATTENTION_ANSWER_TOKENS, temperature: 0, repetitionPenalty: 1, useAdapter: adapter !== null, image })).ids;
    checkIds(prompt, rt.config.vocabSize, "attention.prompt", tok);
    checkIds(response, rt.config.vocabSize, "attention.response", tok);
    if (prompt.length + response.length > rt.config.maxPositions)
      throw new ExcitorInputError(`prompt and response are ${prompt.length + response.length} tokens; the model's context holds ${rt.config.maxPositions}`);
    const picture = image && encoder ? { features: image, view: pictureView(encoder, req.image!) } : undefined;
    const report = await attentionReport(rt, tok, adapter, prompt, response, promptPieces(tok, req.prompt, template, req.input || undefined), picture);
    send({ id: req.id, type: "attention", report, responseText: tok.decode(response, { skipSpecial: true }) });
  }

  await new Promise<void>((resolve) => rl.on("close", resolve));
  for (const ac of inFlight.values()) ac.abort();
  await queue;
  encoder?.dispose();
  rt.dispose();
  return EXIT.ok;
}
