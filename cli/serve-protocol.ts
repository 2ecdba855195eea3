/**
 * The protocol of `excitor serve`: JSON, one object per line, requests on stdin and events on
 * stdout. An editor (the VS Code extension) keeps one such process per model + adapter, so the
 * model loads once and generation never runs in the editor's own process. Every event that
 * answers a request carries the request's `id`.
 */
import type { AttentionReport } from "../engine/analysis/attention";
import type { FinishReason } from "../engine/generate/generate";
import type { ChatMessage } from "../engine/tokenizer/tokenizer";

export type PromptTemplate = "chat" | "alpaca";

export interface GenerateRequest {
  id: number;
  op: "generate";
  /** The conversation so far, ending with the user's message. */
  messages: ChatMessage[];
  template: PromptTemplate;
  /** Alpaca's context field for the last user message ("### Input:"). */
  input?: string;
  /** false: the base model answers (the adapter is bypassed), for "compare with base". */
  useAdapter: boolean;
  temperature: number;
  topP: number;
  maxTokens: number;
  seed?: number;
}

export interface AttentionRequest {
  id: number;
  op: "attention";
  prompt: string;
  input?: string;
  /** The response to analyse; without it the tuned model answers first (greedy). */
  response?: string;
  template: PromptTemplate | "none";
}

export type ServeRequest =
  | GenerateRequest
  | AttentionRequest
  /** Ends generation `target` in the engine, at the next token. */
  | { id: number; op: "stop"; target: number };

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
    }
  | { id: number; type: "text"; text: string }
  | { id: number; type: "done"; text: string; finishReason: FinishReason; tokens: number; promptTokens: number; tokensPerSecond: number }
  | { id: number; type: "attention"; report: AttentionReport; responseText: string }
  /** A request failed; the process goes on. */
  | { id: number; type: "error"; message: string }
  /** The process cannot start (bad model folder or adapter); it exits after this. */
  | { type: "fatal"; message: string; file?: string; line?: number };
