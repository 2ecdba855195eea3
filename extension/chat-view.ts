/**
 * The sidebar chat (a webview view). The host owns the conversation (ChatState) and the webview
 * draws it: state snapshots, plus text deltas while an answer streams. Answers come from an
 * `excitor serve` process; Stop sends a stop request that ends generation in the engine, and the
 * engine's own "aborted" reply is what marks the answer stopped. The conversation is kept in the
 * workspace state, so it survives hiding the view and reloading the window.
 */
import * as path from "node:path";
import * as vscode from "vscode";
import type { ChatMessage } from "../engine/tokenizer/tokenizer";
import type { EnginePool } from "./engine-pool";
import { EngineStartError } from "./serve-client";
import { showEngineError, messageOf } from "./errors";
import { checkChatMessage, type ChatParams, type ChatState, type ChatToHost, type ChatToWebview, type ChatTurn } from "./messages";
import { folderLabel } from "./places";
import type { RunManager } from "./run-manager";
import { onCheckedMessage, webviewHtml, webviewOptions } from "./webview-html";

export const CHAT_VIEW_ID = "excitor.chat";
const STORE_KEY = "excitor.chat.v1";

export interface AttentionRequestFromChat {
  model: string;
  adapter: string | null;
  prompt: string;
  input: string;
  response: string;
}

interface Stored {
  model: string;
  adapter: string;
  turns: ChatTurn[];
  params: ChatParams;
}

export class ChatViewProvider implements vscode.WebviewViewProvider {
  private view?: vscode.WebviewView;
  private state: ChatState;
  private current?: { stop: () => void };

  constructor(
    private readonly ctx: vscode.ExtensionContext,
    private readonly pool: EnginePool,
    private readonly runs: () => RunManager,
    private readonly defaults: () => { model: string; params: Omit<ChatParams, "template"> },
    private readonly log: vscode.LogOutputChannel,
    private readonly showAttention: (r: AttentionRequestFromChat) => void,
  ) {
    const stored = ctx.workspaceState.get<Stored>(STORE_KEY);
    const d = defaults();
    this.state = {
      model: stored?.model ?? d.model,
      modelLabel: "",
      adapter: stored?.adapter ?? "",
      adapters: [],
      turns: (stored?.turns ?? []).map((t) => ({ ...t, streaming: false })),
      busy: false,
      status: "",
      params: stored?.params ?? { ...d.params, template: "auto" },
    };
    this.refreshLists();
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    view.webview.options = webviewOptions(this.ctx.extensionUri);
    view.webview.html = webviewHtml(view.webview, this.ctx.extensionUri, "chat", "Excitor chat");
    const sub = onCheckedMessage(view.webview, checkChatMessage, (m) => this.handle(m), this.log, "chat");
    view.onDidDispose(() => {
      sub.dispose();
      this.view = undefined;
    });
  }

  /** The model and adapter the chat is using. */
  target(): { model: string; adapter: string | null } {
    return { model: this.state.model, adapter: this.state.adapter || null };
  }

  /** Chat with this adapter (from the runs tree, or after training). */
  useAdapter(model: string, adapter: string): void {
    this.state.model = model;
    this.state.adapter = adapter;
    this.refreshLists();
    this.publish();
    void vscode.commands.executeCommand(`${CHAT_VIEW_ID}.focus`);
  }

  /** The runs changed: the adapter list may have new entries. */
  refreshLists(): void {
    const root = this.ctx.extensionUri.fsPath;
    const adapters = this.runs()
      .list()
      .filter((r) => r.hasAdapter && r.status !== "running")
      .map((r) => ({ label: r.name, path: r.dir }));
    if (this.state.adapter !== "" && !adapters.some((a) => a.path === this.state.adapter)) adapters.unshift({ label: path.basename(this.state.adapter), path: this.state.adapter });
    this.state.adapters = adapters;
    this.state.modelLabel = folderLabel(this.state.model, root);
  }

  private async handle(m: ChatToHost): Promise<void> {
    switch (m.type) {
      case "ready":
        this.refreshLists();
        return this.publish();
      case "send":
        return this.send(m.text, m.input, m.compare, m.params);
      case "stop":
        return this.current?.stop();
      case "clear":
        this.current?.stop();
        this.state.turns = [];
        this.state.status = "";
        return this.publish(true);
      case "copy": {
        const t = this.state.turns[m.index];
        if (t) await vscode.env.clipboard.writeText(t.text.trim());
        return;
      }
      case "chooseModel": {
        const pick = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: "Use this model", title: "Base model folder (config.json, *.safetensors, tokenizer.json)" });
        if (!pick?.[0]) return;
        this.state.model = pick[0].fsPath;
        this.state.adapter = "";
        this.refreshLists();
        return this.publish(true);
      }
      case "chooseAdapter": {
        let adapter = m.adapter;
        if (adapter === "browse") {
          const pick = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: "Use this adapter", title: "Adapter folder (adapter_config.json, adapter_model.safetensors)" });
          if (!pick?.[0]) return this.publish();
          adapter = pick[0].fsPath;
        }
        this.state.adapter = adapter;
        this.refreshLists();
        return this.publish(true);
      }
      case "showAttention": {
        const answer = this.state.turns[m.index];
        const question = this.state.turns.slice(0, m.index).reverse().find((t) => t.role === "user");
        if (!answer || answer.role !== "assistant" || !question) return;
        this.showAttention({ model: this.state.model, adapter: this.state.adapter || null, prompt: question.text, input: question.input ?? "", response: answer.text });
        return;
      }
    }
  }

  private async send(text: string, input: string, compare: boolean, params: ChatParams): Promise<void> {
    if (this.state.busy) return;
    this.state.params = params;
    const adapter = this.state.adapter || null;
    const client = this.pool.get(this.state.model, adapter);
    this.state.busy = true;
    this.state.status = "loading the model…";
    const history: ChatMessage[] = this.state.turns
      .filter((t) => t.role === "user" || t.source !== "base")
      .map((t) => ({ role: t.role, content: t.text.trim() }));
    history.push({ role: "user", content: text });
    this.state.turns.push({ role: "user", text, input: input || undefined });
    this.publish();
    let ready;
    try {
      ready = await client.ready;
    } catch (e) {
      this.state.busy = false;
      this.state.status = `could not start the engine: ${messageOf(e)}`;
      this.publish(true);
      if (e instanceof EngineStartError) void showEngineError("Excitor chat", { message: e.message, file: e.file, line: e.line });
      return;
    }
    const template = params.template === "auto" ? ready.template : params.template;
    const sources: ChatTurn["source"][] = adapter ? (compare ? ["tuned", "base"] : ["tuned"]) : ["model"];
    // A fresh seed per question, shared by the tuned and base answers so that they differ only by the adapter.
    const seed = Math.floor(Math.random() * 2 ** 31);
    try {
      for (const source of sources) {
        // The turn is held by reference: Clear may empty the list while the engine is still finishing it.
        const turn: ChatTurn = { role: "assistant", text: "", source, streaming: true };
        const index = this.state.turns.push(turn) - 1;
        this.state.status = source === "base" ? "the base model is answering…" : "answering…";
        this.publish();
        const gen = client.generate(
          { messages: history, template, input: input || undefined, useAdapter: source === "tuned", temperature: params.temperature, topP: params.topP, maxTokens: params.maxTokens, seed },
          (delta) => {
            turn.text += delta;
            if (this.state.turns[index] === turn) this.post({ type: "delta", index, text: delta });
          },
        );
        let stopped = false;
        this.current = {
          stop: () => {
            stopped = true;
            client.stop(gen.id);
          },
        };
        const done = await gen.done;
        turn.streaming = false;
        turn.text = done.text;
        turn.finish =
          done.finishReason === "aborted"
            ? `stopped in the engine after ${done.tokens} tokens`
            : `${done.tokens} tokens, ${done.tokensPerSecond.toFixed(0)} tokens/s, ended by ${done.finishReason === "eos" ? "end of text" : done.finishReason}`;
        this.state.status = turn.finish;
        if (stopped) break;
      }
    } catch (e) {
      this.state.status = `error: ${messageOf(e)}`;
      for (const t of this.state.turns) t.streaming = false;
    } finally {
      this.current = undefined;
      this.state.busy = false;
      this.publish(true);
    }
  }

  private publish(persist = false): void {
    this.post({ type: "state", state: this.state });
    if (persist || !this.state.busy) {
      const stored: Stored = { model: this.state.model, adapter: this.state.adapter, turns: this.state.turns, params: this.state.params };
      void this.ctx.workspaceState.update(STORE_KEY, stored);
    }
  }

  private post(m: ChatToWebview): void {
    void this.view?.webview.postMessage(m);
  }
}

