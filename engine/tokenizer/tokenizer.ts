/**
 * The model's text tokenizer: a thin layer over @huggingface/tokenizers that makes the parts the
 * engine depends on explicit (BOS/EOS handling, all EOS ids, streaming decode, chat templates).
 *
 * Why not call the library's `encode(text)` with its post-processor: special-token insertion then
 * depends on each tokenizer.json's TemplateProcessing, which the training code cannot see. We
 * always encode without it and add BOS/EOS ourselves, so "is there a BOS in front" is a decision
 * made in one place (`encode`'s options, defaulting to the tokenizer's own `add_bos_token`).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ExcitorInputError } from "../errors";
import { readJsonObject, type JsonObject } from "../json-file";
import { isGgufPath, readGguf } from "../formats/gguf";
import { tokenizerJsonFromGguf } from "./gguf-vocab";
import { canCutPrefixes, cutAtOrAfter } from "./prefix-cut";

// Both @huggingface packages are ES modules that also ship CommonJS builds. This project compiles
// to CommonJS, where a static `import` of an ES module is rejected by TypeScript (TS1479), so we
// import the types only ("resolution-mode": "import") and load the CommonJS build with require().
import type { Tokenizer as HfTokenizer } from "@huggingface/tokenizers" with { "resolution-mode": "import" };
import type { Template as JinjaTemplate } from "@huggingface/jinja" with { "resolution-mode": "import" };
type TokenizersModule = typeof import("@huggingface/tokenizers", { with: { "resolution-mode": "import" } });
type JinjaModule = typeof import("@huggingface/jinja", { with: { "resolution-mode": "import" } });
const { Tokenizer } = require("@huggingface/tokenizers") as TokenizersModule;
const { Template } = require("@huggingface/jinja") as JinjaModule;

/** One turn of a conversation, as chat templates expect it. */
export interface ChatMessage {
  role: string;
  content: string;
}

/** Incremental id → text decoding for streaming generation output. */
export interface StreamDecoder {
  /** Adds one generated id; returns the text it completes (may be "" while a character is partial). */
  push(id: number): string;
  /** Returns whatever text is still held back (e.g. an incomplete UTF-8 sequence at the end). */
  flush(): string;
}


/** Names of the files in a Hugging Face tokenizer folder, for error messages. */
interface Sources {
  tokenizerJson: string;
  tokenizerConfig: string;
}

/** The ids a prefix of a text encodes to (`TextTokenizer.encodePrefix`). */
export interface PrefixIds {
  ids: number[];
  /** True when these are all of the text's ids (the whole text was tokenized), EOS included if asked for. */
  complete: boolean;
}

/** Characters added to the first cut beyond max ids × longest token, so short texts are never cut. */
const CUT_MARGIN = 64;

/** Stop-token names tried when neither config file names an EOS (a bare tokenizer.json). */
const WELL_KNOWN_EOS = ["</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "<|eot_id|>", "<|im_end|>"];

export class TextTokenizer {
  /** Number of ids the tokenizer can produce: largest id (vocabulary or added token) + 1. */
  readonly vocabSize: number;
  /**
   * Characters in the longest token's string (byte fallback "<0x41>" counts six): the most text
   * one token stands for as far as the vocabulary tells, which bounds how much text fits n tokens.
   * Normalizers can make a token cover more (collapsed runs of spaces); callers allow for that.
   */
  readonly longestTokenChars: number;
  /** The beginning-of-sequence id, if the tokenizer has one. */
  readonly bosId: number | undefined;
  /** The BOS token's text (e.g. "<s>"); chat templates usually write it into the text. */
  readonly bosToken: string | undefined;
  /**
   * Every id that ends generation: tokenizer_config's `eos_token` first (the one training appends),
   * then generation_config's `eos_token_id`(s). Chat models often stop on several (e.g. Llama 3).
   */
  readonly eosIds: number[];
  /** The EOS token's text (`eos_token` of tokenizer_config, or the text of eosIds[0]). */
  readonly eosToken: string | undefined;
  /** Id used to pad batches: `pad_token` if set, else eosIds[0], else 0 (padding is never a target). */
  readonly padId: number;
  /** Whether `encode` puts BOS in front by default (`add_bos_token`, or inferred from tokenizer.json). */
  readonly addBos: boolean;
  /** Whether `encode` appends EOS by default (`add_eos_token`, default false). */
  readonly addEos: boolean;
  /** The Jinja chat template, if the tokenizer ships one. */
  readonly chatTemplate: string | undefined;

  private readonly tok: HfTokenizer;
  private readonly config: JsonObject;
  private readonly sources: Sources;
  private compiledTemplate: JinjaTemplate | undefined;
  /** Where texts may be cut for encodePrefix; undefined when they must be tokenized whole. */
  /** Texts may be cut before tokenizing (./prefix-cut.ts): encodePrefix reads only what it needs. */
  private readonly cutsPrefixes: boolean;

  private constructor(
    tokenizerJson: JsonObject,
    tokenizerConfig: JsonObject,
    generationConfig: JsonObject,
    sources: Sources,
    chatTemplateOverride?: string,
  ) {
    this.sources = sources;
    this.config = tokenizerConfig;
    const model = tokenizerJson["model"];
    if (typeof model !== "object" || model === null) {
      throw new ExcitorInputError(`${sources.tokenizerJson}: not a Hugging Face tokenizer ("model" is missing)`, sources.tokenizerJson);
    }
    // Without a type the library infers one from the model's fields (older files omit it); a type
    // it does not know would be silently read as whatever those fields suggest.
    const modelType = (model as JsonObject).type;
    if (modelType !== undefined && !TOKENIZER_MODELS.includes(modelType as string))
      throw new ExcitorInputError(`${sources.tokenizerJson}: "model.type" is ${JSON.stringify(modelType)}; supported: ${TOKENIZER_MODELS.join(", ")}`, sources.tokenizerJson);
    // The library reads special tokens from the config as plain strings; normalise the
    // `{content: ...}` (serialised AddedToken) form so both spellings behave the same.
    const libConfig: JsonObject = { ...tokenizerConfig };
    for (const [key, value] of Object.entries(tokenizerConfig)) {
      if (key.endsWith("_token")) libConfig[key] = tokenString(value) ?? null;
    }
    try {
      this.tok = new Tokenizer(tokenizerJson, libConfig);
    } catch (e) {
      throw new ExcitorInputError(`${sources.tokenizerJson}: cannot build the tokenizer (${errorText(e)})`, sources.tokenizerJson);
    }

    let maxId = -1;
    let longest = 1;
    for (const [token, id] of this.tok.get_vocab(true)) {
      if (id > maxId) maxId = id;
      // typeof: the library leaves holes where added tokens' ids skip ahead
      if (typeof token === "string" && token.length > longest) longest = token.length;
    }
    this.vocabSize = maxId + 1;
    this.longestTokenChars = longest;

    const template = bosFromPostProcessor(tokenizerJson["post_processor"]);
    const bosFromConfig = this.idOf(tokenString(tokenizerConfig["bos_token"]));
    const bosFromGeneration = firstId(generationConfig["bos_token_id"]);
    this.bosId = bosFromConfig ?? bosFromGeneration ?? template.bosId;
    this.bosToken = this.bosId === undefined ? undefined : this.tok.id_to_token(this.bosId);

    const eos: number[] = [];
    const addEosId = (id: number | undefined) => {
      if (id !== undefined && id >= 0 && id < this.vocabSize && !eos.includes(id)) eos.push(id);
    };
    addEosId(this.idOf(tokenString(tokenizerConfig["eos_token"])));
    for (const id of idList(generationConfig["eos_token_id"])) addEosId(id);
    // A bare tokenizer.json (no configs) still needs a stop token; try the usual names.
    if (eos.length === 0) for (const name of WELL_KNOWN_EOS) addEosId(this.idOf(name));
    this.eosIds = eos;
    this.eosToken = eos.length > 0 ? this.tok.id_to_token(eos[0] as number) : undefined;

    this.padId =
      this.idOf(tokenString(tokenizerConfig["pad_token"])) ?? firstId(generationConfig["pad_token_id"]) ?? eos[0] ?? 0;

    const addBosSetting = tokenizerConfig["add_bos_token"];
    this.addBos = (typeof addBosSetting === "boolean" ? addBosSetting : template.addsBos) && this.bosId !== undefined;
    this.addEos = tokenizerConfig["add_eos_token"] === true && eos.length > 0;

    this.chatTemplate = chatTemplateOverride ?? pickChatTemplate(tokenizerConfig["chat_template"]);
    this.cutsPrefixes = canCutPrefixes(tokenizerJson, this.tok);
  }

  /**
   * Loads a Hugging Face tokenizer folder: `tokenizer.json` (required), `tokenizer_config.json`
   * and `generation_config.json` (optional), and `chat_template.jinja` (optional; newer
   * transformers versions store the chat template there instead of in tokenizer_config.json).
   * A `.gguf` file in place of the folder is read with `fromGguf`.
   */
  static fromFolder(dir: string): TextTokenizer {
    if (isGgufPath(dir)) return TextTokenizer.fromGguf(dir);
    const tokenizerJsonPath = path.join(dir, "tokenizer.json");
    const tokenizerConfigPath = path.join(dir, "tokenizer_config.json");
    const tokenizerJson = readTokenizerJson(tokenizerJsonPath, true) as JsonObject;
    const tokenizerConfig = readTokenizerJson(tokenizerConfigPath, false) ?? {};
    const generationConfig = readTokenizerJson(path.join(dir, "generation_config.json"), false) ?? {};
    let chatTemplate: string | undefined;
    const jinjaPath = path.join(dir, "chat_template.jinja");
    if (pickChatTemplate(tokenizerConfig["chat_template"]) === undefined && fs.existsSync(jinjaPath)) {
      chatTemplate = fs.readFileSync(jinjaPath, "utf8");
    }
    return new TextTokenizer(
      tokenizerJson,
      tokenizerConfig,
      generationConfig,
      { tokenizerJson: tokenizerJsonPath, tokenizerConfig: tokenizerConfigPath },
      chatTemplate,
    );
  }

  /** The tokenizer of a GGUF model file (its `tokenizer.ggml.*` metadata; ./gguf-vocab.ts), tokenizing as llama.cpp does. */
  static fromGguf(file: string): TextTokenizer {
    const { tokenizerJson, tokenizerConfig, generationConfig } = tokenizerJsonFromGguf(readGguf(file).metadata, file);
    return new TextTokenizer(tokenizerJson, tokenizerConfig, generationConfig, { tokenizerJson: file, tokenizerConfig: file });
  }

  /** Builds a tokenizer from already-parsed JSON (tests, or files fetched by other means). */
  static fromJson(tokenizerJson: object, tokenizerConfig: object, generationConfig?: object): TextTokenizer {
    return new TextTokenizer(
      tokenizerJson as JsonObject,
      tokenizerConfig as JsonObject,
      (generationConfig ?? {}) as JsonObject,
      { tokenizerJson: "tokenizer.json", tokenizerConfig: "tokenizer_config.json" },
    );
  }

  /**
   * Text → ids. Special tokens written in the text (e.g. `<|im_start|>`, `</s>`) become their ids.
   * BOS/EOS are added here, not by the tokenizer.json post-processor; defaults are addBos/addEos.
   * BOS/EOS are only added when the tokenizer has such a token.
   */
  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    const ids = this.tok.encode(text, { add_special_tokens: false }).ids;
    const out = ids.slice();
    if ((opts.bos ?? this.addBos) && this.bosId !== undefined) out.unshift(this.bosId);
    if ((opts.eos ?? this.addEos) && this.eosIds.length > 0) out.push(this.eosIds[0] as number);
    return out;
  }

  /**
   * The first ids of `encode(text, opts)`, at least `minIds` of them (all, when the text has
   * fewer), tokenizing only about as much text as they take: the text is cut at a space where
   * the tokens before it cannot depend on what follows (see ./prefix-cut.ts), so the ids are
   * exactly the start of the whole text's ids. EOS is only added when the whole text was encoded.
   */
  encodePrefix(text: string, minIds: number, opts: { bos?: boolean; eos?: boolean } = {}): PrefixIds {
    if (this.cutsPrefixes) {
      let from = minIds * this.longestTokenChars + CUT_MARGIN;
      // A normalizer may make tokens cover more text than the longest token (runs of spaces
      // collapsed): then cut again further on, doubling, so the work stays within twice the whole.
      for (let cut = cutAtOrAfter(text, from); from < text.length && cut !== undefined; cut = cutAtOrAfter(text, from)) {
        const ids = this.encode(text.slice(0, cut), { bos: opts.bos, eos: false });
        if (ids.length >= minIds) return { ids, complete: false };
        from = 2 * cut;
      }
    }
    return { ids: this.encode(text, opts), complete: true };
  }

  /**
   * Ids → text. `clean_up_tokenization_spaces` is always off: it is a BERT-era rule that rewrites
   * " ." as "." (corrupting code) and would make streamed text differ from the full decode.
   */
  decode(ids: number[], opts: { skipSpecial?: boolean } = {}): string {
    if (ids.length === 0) return ""; // the library rejects an empty list (e.g. an answer that is EOS at once)
    return this.tok.decode(ids, { skip_special_tokens: opts.skipSpecial ?? false, clean_up_tokenization_spaces: false });
  }

  /**
   * Turns ids into text deltas one at a time, for printing generated text as it comes.
   *
   * Token-by-token decoding is wrong for both SentencePiece (byte-fallback pieces like `<0xE2>`
   * form one character over several tokens; the first token's leading space is stripped) and
   * byte-level BPE (a token can end mid-character). So each push decodes the whole prefix and
   * emits the new suffix, holding everything back while the text ends in U+FFFD (an incomplete
   * UTF-8 sequence). The deltas therefore concatenate to exactly `decode(context + allIds)` minus
   * `decode(context)`. Cost is
   * quadratic in the output length, which is negligible for the lengths a chat turn produces.
   */
  createStreamDecoder(opts: { skipSpecial?: boolean; context?: number[] } = {}): StreamDecoder {
    // Decoding the new ids after a few context ids keeps what depends on the left neighbour
    // (SentencePiece strips the leading space of the *first* token only): a continuation of
    // "there was a" must print " happy", not "happy".
    const ids: number[] = (opts.context ?? []).slice();
    let emitted = this.decode(ids, opts);
    const emit = (text: string): string => {
      // Decoding a longer prefix only appends text for the decoders we use; if a decoder ever
      // rewrote earlier text we cannot take it back, so we emit only what goes beyond it.
      const delta = text.startsWith(emitted) ? text.slice(emitted.length) : text.slice(Math.min(emitted.length, text.length));
      emitted = text;
      return delta;
    };
    return {
      push: (id: number): string => {
        ids.push(id);
        const text = this.decode(ids, opts);
        return text.endsWith("\uFFFD") ? "" : emit(text);
      },
      flush: (): string => (ids.length ? emit(this.decode(ids, opts)) : ""),
    };
  }

  /** The id of a token's text, or undefined when it is not in the vocabulary. */
  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  /** The text of one id as stored in the vocabulary (e.g. "▁the", "Ġthe", "<0x0A>"). */
  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  /**
   * Renders a conversation with the tokenizer's Jinja chat template, passing `messages`,
   * `add_generation_prompt`, and every `*_token` string of tokenizer_config (bos_token, eos_token,
   * pad_token, ...) as the Hugging Face `apply_chat_template` does. A template that rejects the
   * conversation (e.g. `raise_exception('roles must alternate')`) becomes an ExcitorInputError.
   */
  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt: boolean }): string {
    if (this.chatTemplate === undefined) {
      throw new ExcitorInputError(
        `${this.sources.tokenizerConfig}: the tokenizer has no chat template ("chat_template" is missing)`,
        this.sources.tokenizerConfig,
      );
    }
    if (this.compiledTemplate === undefined) {
      try {
        this.compiledTemplate = new Template(this.chatTemplate);
      } catch (e) {
        throw new ExcitorInputError(
          `${this.sources.tokenizerConfig}: "chat_template" is not a valid Jinja template (${errorText(e)})`,
          this.sources.tokenizerConfig,
        );
      }
    }
    const vars: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(this.config)) {
      if (key.endsWith("_token")) {
        const s = tokenString(value);
        if (s !== undefined) vars[key] = s;
      }
    }
    vars["bos_token"] ??= this.bosToken ?? "";
    vars["eos_token"] ??= this.eosToken ?? "";
    vars["messages"] = messages.map((m) => ({ role: m.role, content: m.content }));
    vars["add_generation_prompt"] = opts.addGenerationPrompt;
    try {
      return this.compiledTemplate.render(vars);
    } catch (e) {
      throw new ExcitorInputError(`chat template failed: ${errorText(e)}`);
    }
  }

  private idOf(token: string | undefined): number | undefined {
    return token === undefined ? undefined : this.tok.token_to_id(token);
  }
}

/** A special token from tokenizer_config: a string, or the `{content: "..."}` AddedToken form. */
function tokenString(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "object" && value !== null && typeof (value as JsonObject)["content"] === "string") {
    return (value as JsonObject)["content"] as string;
  }
  return undefined;
}

function idList(value: unknown): number[] {
  if (typeof value === "number" && Number.isInteger(value)) return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === "number" && Number.isInteger(v));
  return [];
}

function firstId(value: unknown): number | undefined {
  return idList(value)[0];
}

/**
 * When tokenizer_config has no `add_bos_token`, the tokenizer.json post-processor tells whether
 * the model expects BOS: a TemplateProcessing whose `single` template starts with a SpecialToken
 * (possibly inside a Sequence of processors, as in Llama 3) puts that token in front.
 */
function bosFromPostProcessor(pp: unknown): { addsBos: boolean; bosId: number | undefined } {
  if (typeof pp !== "object" || pp === null) return { addsBos: false, bosId: undefined };
  const p = pp as JsonObject;
  if (p["type"] === "Sequence" && Array.isArray(p["processors"])) {
    for (const sub of p["processors"]) {
      const r = bosFromPostProcessor(sub);
      if (r.addsBos) return r;
    }
    return { addsBos: false, bosId: undefined };
  }
  if (p["type"] !== "TemplateProcessing" || !Array.isArray(p["single"])) return { addsBos: false, bosId: undefined };
  const first = p["single"][0] as JsonObject | undefined;
  const special = first?.["SpecialToken"] as JsonObject | undefined;
  if (special === undefined) return { addsBos: false, bosId: undefined };
  const name = special["id"];
  const table = p["special_tokens"] as Record<string, JsonObject> | undefined;
  const ids = typeof name === "string" ? table?.[name]?.["ids"] : undefined;
  return { addsBos: true, bosId: firstId(ids) };
}

/** `chat_template` is a string, or a list of `{name, template}`: we take "default" (else the first). */
function pickChatTemplate(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value.filter(
      (v): v is { name: unknown; template: string } =>
        typeof v === "object" && v !== null && typeof (v as JsonObject)["template"] === "string",
    );
    return (named.find((v) => v.name === "default") ?? named[0])?.template;
  }
  return undefined;
}

/** Reads a JSON object file; a missing optional file gives undefined, anything else wrong throws. */
/** The tokenizer models @huggingface/tokenizers implements. */
const TOKENIZER_MODELS = ["BPE", "Unigram", "WordPiece"];

/** A tokenizer folder's JSON file (engine/json-file.ts reads it); a missing optional one is undefined. */
function readTokenizerJson(file: string, required: boolean): JsonObject | undefined {
  if (!fs.existsSync(file)) {
    if (!required) return undefined;
    throw new ExcitorInputError(`${file}: file not found (a tokenizer folder needs tokenizer.json)`, file);
  }
  return readJsonObject(file);
}

function errorText(e: unknown): string {
  const s = e instanceof Error ? e.message : String(e);
  const one = s.replace(/\s+/g, " ").trim();
  return one.length > 160 ? one.slice(0, 157) + "..." : one;
}
