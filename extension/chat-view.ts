/**
 * The sidebar chat (a webview view). The host owns the conversation (ChatState) and the webview
 * draws it: state snapshots, plus text deltas while an answer streams. Answers come from an
 * `excitor serve` process; Stop sends a stop request that ends generation in the engine, and the
 * engine's own "aborted" reply is what marks the answer stopped. The conversation is kept in the
 * workspace state, so it survives hiding the view and reloading the window. The adapter list
 * follows the runs as they start and end (refreshLists) and offers only adapters that fit the
 * chosen model; each answer is labelled with the adapter and model that produced it. With a
 * multimodal adapter the chat takes an image (attach button, drop, paste): the latest one attached
 * goes with every question of the conversation (chat-attach.ts gets and keeps it).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as vscode from "vscode";
import type { ServeEvent } from "../cli/serve-protocol";
import type { ChatMessage } from "../engine/tokenizer/tokenizer";
import { chooseImage, imageFromBytes, imageFromUri, imagesFolder, type Attached } from "./chat-attach";
import { pruneImages } from "./chat-image";
import type { EnginePool } from "./engine-pool";
import { EngineStartError } from "./serve-client";
import { showEngineError, messageOf } from "./errors";
import { adapterKind, adapterMisfit, adapterOptions, adapterTakesImages } from "./chat-adapters";
import { checkChatMessage, type ChatImage, type ChatParams, type ChatState, type ChatToHost, type ChatToWebview, type ChatTurn } from "./messages";
import { builtInModel, folderLabel } from "./places";
import { pickBaseModel } from "./model-picker";
import type { RunManager } from "./run-manager";
import { onCheckedMessage, webviewHtml, webviewOptions } from "./webview-html";

export const CHAT_VIEW_ID = "excitor.chat";
const STORE_KEY = "excitor.chat.v1";
/** Images nothing refers to are removed after this long (a chat in another window may have just been given one). */
const IMAGE_KEEP_MS = 7 * 24 * 3600 * 1000;

type Vision = Extract<ServeEvent, { type: "ready" }>["vision"];

export interface AttentionRequestFromChat {
  model: string;
  adapter: string | null;
  prompt: string;
  input: string;
  response: string;
  /** The conversation's image at that answer, if it had one. */
  image?: ChatImage;
}

interface Stored {
  model: string;
  adapter: string;
  turns: ChatTurn[];
  params: ChatParams;
  pendingImage?: ChatImage;
}

export class ChatViewProvider implements vscode.WebviewViewProvider {
  private view?: vscode.WebviewView;
  private state: ChatState;
  private current?: { stop: () => void };
  /** What the last Clear removed, until the next question. */
  private cleared?: ChatTurn[];
  /** What the engine's `ready` said about images, for the model + adapter it was started with. */
  private engineVision?: { key: string; vision: Vision };
  private readonly images: string;

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
    this.images = imagesFolder(ctx);
    this.state = {
      model: stored?.model ?? d.model,
      modelLabel: "",
      adapter: stored?.adapter ?? "",
      adapters: [],
      turns: (stored?.turns ?? []).map((t) => ({ ...t, streaming: false })),
      busy: false,
      status: "",
      params: stored?.params ?? { ...d.params, template: "auto" },
      canUndo: false,
      takesImages: false,
      imageNote: "",
      pendingImage: stored?.pendingImage,
    };
    const used = [...this.state.turns.map((t) => t.image?.path), this.state.pendingImage?.path].filter((p): p is string => p !== undefined);
    pruneImages(this.images, new Set(used), IMAGE_KEEP_MS);
    this.updateLists();
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    view.webview.options = webviewOptions(this.ctx.extensionUri, [vscode.Uri.file(this.images)]);
    view.webview.html = webviewHtml(view.webview, this.ctx.extensionUri, "chat", "Excitor chat");
    const sub = onCheckedMessage(view.webview, checkChatMessage, (m) => this.handle(m), this.log, "chat");
    view.onDidDispose(() => {
      sub.dispose();
      this.view = undefined;
    });
  }

  /** The model and adapter the chat is using, and its conversation's image. */
  target(): { model: string; adapter: string | null; image?: ChatImage } {
    return { model: this.state.model, adapter: this.state.adapter || null, image: this.conversationImage(this.state.turns.length) };
  }

  /** The image of the conversation as it stood before turn `end`: the latest one attached. */
  private conversationImage(end: number): ChatImage | undefined {
    for (let i = Math.min(end, this.state.turns.length) - 1; i >= 0; i--) if (this.state.turns[i].image) return this.state.turns[i].image;
    return undefined;
  }

  /** Chat with this adapter (from the runs tree, or after training). */
  useAdapter(model: string, adapter: string): void {
    this.state.model = model;
    this.state.adapter = adapter;
    this.updateLists();
    this.publish(true);
    void vscode.commands.executeCommand(`${CHAT_VIEW_ID}.focus`);
  }

  /** The runs changed (one started, ended or was deleted): the list follows, in the open view too. */
  refreshLists(): void {
    this.updateLists();
    if (this.view) this.publish();
  }

  /** The adapter entries for the chosen model, and the model's label. */
  private updateLists(): void {
    const root = this.ctx.extensionUri.fsPath;
    const label = (dir: string) => folderLabel(dir, root);
    const adapters = adapterOptions(this.runs().list(), this.state.model, label);
    if (this.state.adapter !== "" && !fs.existsSync(this.state.adapter)) this.state.adapter = ""; // its run was deleted
    if (this.state.adapter !== "" && !adapters.some((a) => a.path === this.state.adapter)) {
      // Chosen through Browse…: not a run of this workspace.
      const name = `${path.basename(this.state.adapter)}${adapterKind(this.state.adapter) === "LoRA" ? " · LoRA" : ""}`;
      adapters.unshift({ path: this.state.adapter, name, label: name, title: this.state.adapter });
    }
    this.state.adapters = adapters;
    this.state.modelLabel = label(this.state.model);
    this.updateVision();
  }

  /**
   * Whether the chat offers images: the engine's `ready` says, once it has started for this model
   * and adapter; before that, the adapter's config does. An image waiting to be sent is let go
   * when the adapter does not take images.
   */
  private updateVision(): void {
    const known = this.engineVision?.key === this.engineKey() ? this.engineVision.vision : undefined;
    this.state.takesImages = this.state.adapter !== "" && (known !== undefined ? known !== null : adapterTakesImages(this.state.adapter));
    this.state.imageNote = known ? `the encoder sees ${known.imageSize} × ${known.imageSize} pixels, ${known.grid} × ${known.grid} patches` : "";
    if (!this.state.takesImages && this.state.pendingImage) {
      this.state.status = `${this.state.pendingImage.name} was removed: this adapter does not take images`;
      this.state.pendingImage = undefined;
    }
  }

  private engineKey(): string {
    return `${this.state.model}\u0000${this.state.adapter}`;
  }

  /** An image to attach, or why not (said in the chat). */
  private attach(result: Attached | undefined): void {
    if (!result) return this.publish();
    if (result.ok) {
      this.state.pendingImage = result.image;
      if (this.state.status.startsWith("could not attach")) this.state.status = "";
    } else this.state.status = `could not attach the image: ${result.error}`;
    this.publish(true);
  }

  /** Who answers with the current choice: the adapter's entry name and the model's label. */
  private answerLabel(source: NonNullable<ChatTurn["source"]>): string {
    if (source === "base") return this.state.modelLabel;
    if (source === "model") return `${this.state.modelLabel}, no adapter`;
    const entry = this.state.adapters.find((a) => a.path === this.state.adapter);
    return `${entry?.name ?? path.basename(this.state.adapter)} on ${this.state.modelLabel}`;
  }

  /** The built-in demo model, the settings' model, the models runs were trained on, a GGUF file, or a folder. */
  private async pickModel(): Promise<string | undefined> {
    const root = this.ctx.extensionUri.fsPath;
    const fromSettings = this.defaults().model;
    const known = [
      ...(fromSettings !== builtInModel(root) ? [{ dir: fromSettings, description: "excitor.modelFolder" }] : []),
      ...this.runs().list().map((r) => ({ dir: r.spec.model, description: `base model of ${r.name}` })),
    ];
    return pickBaseModel({ root, title: "Excitor chat: base model", placeHolder: "The model to chat with", known, current: this.state.model, gguf: true });
  }

  private async handle(m: ChatToHost): Promise<void> {
    switch (m.type) {
      case "ready":
        return this.refreshLists();
      case "send":
        return this.send(m.text, m.input, m.compare, m.params);
      case "stop":
        return this.current?.stop();
      case "clear":
        this.current?.stop();
        if (this.state.turns.length > 0) this.cleared = this.state.turns;
        this.state.turns = [];
        this.state.pendingImage = undefined; // a new chat starts without an image
        this.state.status = "";
        this.state.canUndo = this.cleared !== undefined;
        return this.publish(true);
      case "undoClear":
        if (this.cleared) this.state.turns = [...this.cleared, ...this.state.turns];
        this.cleared = undefined;
        this.state.canUndo = false;
        return this.publish(true);
      case "copy": {
        const t = this.state.turns[m.index];
        if (t) await vscode.env.clipboard.writeText(t.text.trim());
        return;
      }
      case "chooseModel": {
        const model = await this.pickModel();
        if (!model) return;
        this.state.model = model;
        // The adapter stays when it fits the new model too.
        if (this.state.adapter !== "" && adapterMisfit(this.state.adapter, model) !== undefined) this.state.adapter = "";
        this.updateLists();
        return this.publish(true);
      }
      case "chooseAdapter": {
        let adapter = m.adapter;
        if (adapter === "browse") {
          const pick = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: "Use this adapter", title: "Adapter folder (adapter_config.json, adapter_model.safetensors)" });
          if (!pick?.[0]) return this.publish();
          adapter = pick[0].fsPath;
        }
        const misfit = adapter === "" ? undefined : (this.state.adapters.find((a) => a.path === adapter)?.disabled ?? adapterMisfit(adapter, this.state.model));
        if (misfit !== undefined) {
          void vscode.window.showWarningMessage(`Excitor: ${path.basename(adapter)} cannot be used with ${this.state.modelLabel}: ${misfit}`);
          return this.publish();
        }
        this.state.adapter = adapter;
        this.updateLists();
        return this.publish(true);
      }
      case "showAttention": {
        const answer = this.state.turns[m.index];
        const question = this.state.turns.slice(0, m.index).reverse().find((t) => t.role === "user");
        if (!answer || answer.role !== "assistant" || !question) return;
        const image = this.conversationImage(m.index);
        this.showAttention({ model: this.state.model, adapter: this.state.adapter || null, prompt: question.text, input: question.input ?? "", response: answer.text, image });
        return;
      }
      case "attachImage":
      case "attachImageUri":
      case "chooseImage":
        if (!this.state.takesImages) {
          this.state.status = "could not attach the image: this adapter does not take images";
          return this.publish();
        }
        if (m.type === "chooseImage") return this.attach(await chooseImage(this.images));
        if (m.type === "attachImage") return this.attach(imageFromBytes(this.images, m.name, m.data));
        return this.attach(await imageFromUri(this.images, vscode.Uri.parse(m.uri, true)));
      case "removeImage":
        this.state.pendingImage = undefined;
        return this.publish(true);
    }
  }

  private async send(text: string, input: string, compare: boolean, params: ChatParams): Promise<void> {
    if (this.state.busy) return;
    this.state.params = params;
    this.cleared = undefined;
    this.state.canUndo = false;
    const adapter = this.state.adapter || null;
    const engineKey = this.engineKey();
    const client = this.pool.get(this.state.model, adapter);
    this.state.busy = true;
    this.state.status = "loading the model…";
    const history: ChatMessage[] = this.state.turns
      .filter((t) => t.role === "user" || t.source !== "base")
      .map((t) => ({ role: t.role, content: t.text.trim() }));
    history.push({ role: "user", content: text });
    // The latest image attached is the conversation's, for this question and the ones after it.
    const image = this.state.pendingImage ?? this.conversationImage(this.state.turns.length);
    this.state.turns.push({ role: "user", text, input: input || undefined, image: this.state.pendingImage });
    this.state.pendingImage = undefined;
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
    if (engineKey === this.engineKey()) {
      this.engineVision = { key: this.engineKey(), vision: ready.vision };
      this.updateVision();
    }
    const template = params.template === "auto" ? ready.template : params.template;
    const sources: NonNullable<ChatTurn["source"]>[] = adapter ? (compare ? ["tuned", "base"] : ["tuned"]) : ["model"];
    // A fresh seed per question, shared by the tuned and base answers so that they differ only by the adapter.
    const seed = Math.floor(Math.random() * 2 ** 31);
    try {
      for (const source of sources) {
        // The turn is held by reference: Clear may empty the list while the engine is still finishing it.
        const turn: ChatTurn = { role: "assistant", text: "", source, label: this.answerLabel(source), streaming: true };
        // Only the adapter sees the image; the base model has no way to.
        const withImage = image !== undefined && source === "tuned" && ready.vision !== null;
        const index = this.state.turns.push(turn) - 1;
        this.state.status = source === "base" ? "the base model is answering…" : "answering…";
        this.publish();
        const gen = client.generate(
          { messages: history, template, input: input || undefined, useAdapter: source === "tuned", temperature: params.temperature, topP: params.topP, maxTokens: params.maxTokens, seed, image: withImage ? image.path : undefined },
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
        if (image && !withImage) turn.finish += source === "tuned" ? " · without the image: this adapter does not take images" : " · without the image: the base model cannot see it";
        // Each answer carries its own finish line; the status line is for what is under way.
        this.state.status = "";
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
    this.post({ type: "state", state: this.forWebview() });
    if (persist || !this.state.busy) {
      const stored: Stored = { model: this.state.model, adapter: this.state.adapter, turns: this.state.turns, params: this.state.params, pendingImage: this.state.pendingImage };
      void this.ctx.workspaceState.update(STORE_KEY, stored);
    }
  }

  /** The state with each image's webview URI filled in (the webview may load files from the image folder only). */
  private forWebview(): ChatState {
    const web = this.view?.webview;
    const src = (i: ChatImage | undefined) => (i && web ? { ...i, src: web.asWebviewUri(vscode.Uri.file(i.path)).toString() } : i);
    return { ...this.state, turns: this.state.turns.map((t) => (t.image ? { ...t, image: src(t.image) } : t)), pendingImage: src(this.state.pendingImage) };
  }

  private post(m: ChatToWebview): void {
    void this.view?.webview.postMessage(m);
  }
}

