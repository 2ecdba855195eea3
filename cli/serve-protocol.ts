/**
 * The protocol of `excitor serve`: JSON, one object per line, requests on stdin and events on
 * stdout. An editor (the VS Code extension) keeps one such process per model + adapter, so the
 * model loads once and generation never runs in the editor's own process. Every event that
 * answers a request carries the request's `id`. A blank line is ignored; any other line that is
 * not a valid request is answered by an `error` event.
 */
import type { AttentionReport } from "../engine/analysis/attention";
import type { FinishReason } from "../engine/generate/generate";
import type { ChatMessage } from "../engine/tokenizer/tokenizer";

export type PromptTemplate = "chat" | "alpaca";

/**
 * Every request is checked field by field before the engine acts on it (cli/serve-requests.ts):
 * a missing required field, a value of the wrong type or out of range, or a field the protocol
 * does not have (a typo would otherwise silently get the default) is answered by an `error`
 * event, and the process carries on. Optional fields say their default.
 */
export interface GenerateRequest {
  /** A whole number ≥ 0, unique among the requests not yet answered. */
  id: number;
  op: "generate";
  /**
   * The conversation so far, ending with the user's message: roles system, user, assistant;
   * content strings. Oldest exchanges are dropped (after a leading system message) when the
   * conversation and the answer do not fit the model's context together.
   */
  messages: ChatMessage[];
  /**
   * Default: the `template` of the `ready` event. "chat" on a tokenizer without a chat template
   * (`ready.hasChatTemplate` false) uses Alpaca.
   */
  template?: PromptTemplate;
  /** Alpaca's context field for the last user message ("### Input:"). Default: none. */
  input?: string;
  /** false: the base model answers (the adapter is bypassed), for "compare with base". Default: true. */
  useAdapter?: boolean;
  /** ≥ 0; 0 is greedy. Default 0.7 (as `excitor chat`). */
  temperature?: number;
  /** In (0, 1]; 1 turns nucleus sampling off. Default 0.9 (as `excitor chat`). */
  topP?: number;
  /** A whole number from 1 to 2^20; the answer also ends at the model's context. Default: 512, or the model's context if smaller (as `excitor chat`). */
  maxTokens?: number;
  /** A whole number from 0 to 2^32 − 1 (the sampler's seed is 32 bits). Default 0. */
  seed?: number;
  /**
   * Absolute path of a PNG or JPEG file; it applies to the whole conversation (one image per
   * conversation: the latest attached one). Default: none.
   */
  image?: string;
}

export interface AttentionRequest {
  /** A whole number ≥ 0, unique among the requests not yet answered. */
  id: number;
  op: "attention";
  prompt: string;
  input?: string;
  /** The response to analyse; without it the tuned model answers first (greedy). */
  response?: string;
  /** Default: the `template` of the `ready` event. */
  template?: PromptTemplate | "none";
  /** Absolute path of a PNG or JPEG file the prompt is about (multimodal adapters). Default: none. */
  image?: string;
}

/** Ends generation `target` in the engine, at the next token; nothing answers it (a target already done is ignored). */
export interface StopRequest {
  /** Optional: a stop gets no answer, so nothing needs its id; when present, a whole number ≥ 0. */
  id?: number;
  op: "stop";
  target: number;
}

export type ServeRequest = GenerateRequest | AttentionRequest | StopRequest;

export type ServeEvent =
  | {
      type: "ready";
      model: string;
      adapter: string | null;
      /** Which kind of adapter it is (its adapter_config.json's peft_type), null without one. */
      adapterMethod: "excitor" | "lora" | null;
      backend: string;
      numLayers: number;
      numHeads: number;
      /** The prompt format the adapter was trained with, else the chat template if the tokenizer has one, else Alpaca. */
      template: PromptTemplate;
      hasChatTemplate: boolean;
      /** Non-null when the adapter is multimodal (the chat then offers images). */
      vision: { numTokens: number; grid: number; imageSize: number } | null;
    }
  | { id: number; type: "text"; text: string }
  | { id: number; type: "done"; text: string; finishReason: FinishReason; tokens: number; promptTokens: number; tokensPerSecond: number }
  | { id: number; type: "attention"; report: AttentionReport; responseText: string }
  /**
   * A request failed or was malformed; the process goes on. `id` is the request's, absent when
   * the line has no usable one (not JSON, not an object, a missing or malformed id, or an id
   * already taken by a request not yet answered, whose events it would be mistaken for).
   */
  | { id?: number; type: "error"; message: string }
  /** The process cannot start (bad model folder or adapter); it exits after this. */
  | { type: "fatal"; message: string; file?: string; line?: number };
