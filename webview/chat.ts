/**
 * The sidebar chat: draws the host's ChatState, streams deltas into the open answer, sends user
 * actions. Laid out as chat views are: what the chat talks to at the top, the conversation filling
 * the view, and a compact input pinned at the bottom that grows with its text. The Alpaca Input
 * field and the generation settings fold behind one "Options" toggle above the input. With a
 * multimodal adapter, an image can be attached (button, drop, paste; chat-images.ts).
 */
import type { ChatImage, ChatParams, ChatState, ChatToHost, ChatToWebview, ChatTurn } from "../extension/messages";
import { attachButton, imageDrop, pendingImageView } from "./chat-images";
import { button, checkbox, dropdown, h, progressRing, row, textArea, textField, type DropdownOption } from "./ui";
import { connect } from "./vscode-api";

interface Draft {
  text: string;
  input: string;
  compare: boolean;
  options: boolean;
}

const app = document.getElementById("app")!;
let state: ChatState | undefined;
const host = connect<ChatToHost, ChatToWebview, Draft>((m) => {
  if (m.type === "state") render(m.state);
  else if (m.type === "delta") {
    const el = document.querySelector<HTMLElement>(`[data-turn="${m.index}"] .text`);
    if (el) {
      el.textContent += m.text;
      scrollToEnd();
    }
  }
});
const draft: Draft = { text: "", input: "", compare: false, options: false, ...host.getState() };

// ---- controls (built once; render() only updates them)

/** Enter sends, Shift+Enter (or Enter while an IME composes) types a new line. */
const sendOnEnter = (e: KeyboardEvent) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  }
};

const modelLabel = h("span", "model-label");
/** A text button: the model line must fit a narrow sidebar with the model's whole name. */
const changeModel = h("button", "link", "Change…");
changeModel.type = "button";
changeModel.id = "change-model";
changeModel.title = "Choose the base model: the built-in demo model, one a run was trained on, or a folder";
changeModel.addEventListener("click", () => host.post({ type: "chooseModel" }));
const adapterPick = dropdown("Adapter", [["", "none"]], { id: "adapter", onChange: (v) => host.post({ type: "chooseAdapter", adapter: v }) });
const temperature = textField("Temperature", { id: "temperature", size: 4 });
const topP = textField("Top-p", { id: "top-p", size: 4 });
const maxTokens = textField("Max tokens", { id: "max-tokens", size: 5 });
// The entries name themselves, so the dropdown needs no label beside it in a narrow view.
const template = dropdown("Template", [["auto", "Template as trained"], ["chat", "Chat template"], ["alpaca", "Alpaca template"]], { id: "template", onChange: () => showInput() });
template.el.classList.add("bare");
const compare = checkbox("Compare with base", { id: "compare", checked: draft.compare, onChange: (v) => save({ compare: v }) });
const messages = h("div", "messages");
messages.setAttribute("role", "log");
messages.setAttribute("aria-live", "polite");
messages.id = "messages";
const prompt = textArea("Message", { id: "prompt", rows: 1, grow: true, hideLabel: true, value: draft.text, placeholder: "Ask something", onKeydown: sendOnEnter });
prompt.el.title = "Enter sends, Shift+Enter starts a new line";
const context = textArea("Input (Alpaca context, optional)", { id: "context", rows: 1, grow: true, hideLabel: true, value: draft.input, placeholder: "Input (optional)", onKeydown: sendOnEnter });
context.el.title = "The Alpaca Input: text the instruction is about, sent with your question (Enter sends)";
const sendButton = button("Send", () => send(), { id: "send", title: "Send (Enter)" });
const stopButton = button("Stop", () => host.post({ type: "stop" }), { id: "stop", secondary: true, title: "Stop generation in the engine" });
const clearButton = button("Clear", () => host.post({ type: "clear" }), { id: "clear", secondary: true, title: "Clear the conversation (it can be undone)" });
const optionsToggle = button("Options ▾", () => setOptionsOpen(options.hidden), { id: "options-toggle", secondary: true, title: "Input field, template, sampling and Compare with base" });
optionsToggle.setAttribute("aria-controls", "options");
const status = h("div", "status");
status.id = "status";
status.setAttribute("role", "status");
const ring = progressRing();
const attach = attachButton(() => host.post({ type: "chooseImage" }));
const pending = pendingImageView(() => host.post({ type: "removeImage" }));
/** While no image waits to be sent, a line says which image the conversation's questions carry. */
const convImage = h("div", "conv-image muted");
convImage.id = "conv-image";

const undoBar = h("div", "undo-bar");
undoBar.id = "undo";
undoBar.append(h("span", undefined, "Conversation cleared."), button("Undo", () => host.post({ type: "undoClear" }), { id: "undo-clear", secondary: true, title: "Bring the conversation back" }));

/** While the options are folded, a line above the input says that an Input text goes with the question. */
const attached = h("button", "attached link");
attached.id = "attached";
attached.type = "button";
attached.title = "The Input field goes with your question; click to see it";
attached.addEventListener("click", () => setOptionsOpen(true));

const options = h("div", "options");
options.id = "options";
options.setAttribute("role", "group");
options.setAttribute("aria-label", "Options");
// Sampling is changed least: its values show in one line that opens to the fields.
const sampling = h("details", "sampling-box");
sampling.id = "sampling";
const samplingSummary = h("summary");
const samplingFields = h("div", "sampling");
samplingFields.append(temperature.el, topP.el, maxTokens.el);
sampling.append(samplingSummary, samplingFields);
for (const f of [temperature, topP, maxTokens]) f.el.addEventListener("input", () => showSampling());
options.append(context.el, row(template.el, compare.el), sampling);

const head = h("div", "chat-head");
head.append(adapterPick.el, row(h("span", "caption", "Model"), modelLabel, changeModel));
const composer = h("div", "composer");
composer.append(attached, pending.el, convImage, prompt.el, row(optionsToggle, clearButton, h("span", "spacer"), ring, attach, stopButton, sendButton));
app.append(head, messages, undoBar, options, composer, status);

prompt.el.addEventListener("input", () => save({ text: prompt.value }));
imageDrop(document.body, {
  takesImages: () => state?.takesImages ?? false,
  bytes: (name, data) => host.post({ type: "attachImage", name, data }),
  uri: (uri) => host.post({ type: "attachImageUri", uri }),
  problem: (message) => showProblem(message),
});
context.el.addEventListener("input", () => {
  save({ input: context.value });
  showAttached();
});
setOptionsOpen(draft.options);

function save(d: Partial<Draft>): void {
  Object.assign(draft, d);
  host.setState(draft);
}

function setOptionsOpen(open: boolean): void {
  options.hidden = !open;
  optionsToggle.setAttribute("aria-expanded", String(open));
  optionsToggle.textContent = open ? "Options ▴" : "Options ▾";
  save({ options: open });
  showAttached();
}

function showSampling(): void {
  samplingSummary.textContent = `Sampling: temperature ${temperature.value} · top-p ${topP.value} · ${maxTokens.value} tokens`;
  samplingSummary.title = samplingSummary.textContent;
}

function showInput(): void {
  context.el.hidden = template.value === "chat";
  showAttached();
}

function inputText(): string {
  return context.el.hidden ? "" : context.value.trim();
}

function showAttached(): void {
  const text = inputText();
  attached.hidden = !options.hidden || text === "";
  attached.textContent = `Input: ${text.replace(/\s+/g, " ")}`;
}

function params(): ChatParams | string {
  const t = Number(temperature.value);
  const p = Number(topP.value);
  const n = Number(maxTokens.value);
  if (!Number.isFinite(t) || t < 0 || t > 5) return "Temperature must be a number from 0 to 5";
  if (!Number.isFinite(p) || p <= 0 || p > 1) return "Top-p must be above 0 and at most 1";
  if (!Number.isInteger(n) || n < 1 || n > 8192) return "Max tokens must be a whole number from 1 to 8192";
  return { temperature: t, topP: p, maxTokens: n, template: template.value as ChatParams["template"] };
}

/** A problem the webview finds itself (an image that cannot be attached, a bad setting), in the status line. */
function showProblem(message: string): void {
  status.textContent = message;
  status.title = message;
  status.hidden = false;
  status.classList.add("error");
}

function send(): void {
  if (!state || state.busy) return;
  const text = prompt.value.trim();
  if (text === "") {
    prompt.el.focus();
    return;
  }
  const p = params();
  if (typeof p === "string") {
    setOptionsOpen(true);
    sampling.open = true;
    showProblem(p);
    return;
  }
  host.post({ type: "send", text, input: inputText(), compare: compare.checked, params: p });
  prompt.value = "";
  save({ text: "" });
}

const WHO = { tuned: "Tuned", base: "Base model", model: "Model" } as const;

function turnView(t: ChatTurn, i: number): HTMLElement {
  const el = h("div", `turn ${t.role} ${t.source ?? ""}`);
  el.dataset.turn = String(i);
  const top = h("div", "turn-head");
  top.append(h("span", "who", t.role === "user" ? "You" : WHO[t.source ?? "model"]));
  if (t.label) {
    const by = h("span", "by", t.label);
    by.title = t.label;
    top.append(by);
  }
  el.append(top);
  if (t.input) el.append(h("div", "context", t.input));
  if (t.image) el.append(thumbnail(t.image, "turn-image"));
  el.append(h("div", "text", t.text));
  if (t.role === "assistant") {
    const foot = h("div", "foot");
    if (t.finish) foot.append(h("span", "finish", t.finish));
    if (!t.streaming) {
      // One group: the two buttons wrap together, to the right, when the line is full.
      const actions = h("span", "actions");
      actions.append(
        button("Copy", () => host.post({ type: "copy", index: i }), { secondary: true, title: "Copy this answer" }),
        button("Attention", () => host.post({ type: "showAttention", index: i }), { secondary: true, title: "Show how this answer attends to the prompt" }),
      );
      foot.append(actions);
    }
    el.append(foot);
  }
  return el;
}

function thumbnail(image: ChatImage, cls: string): HTMLElement {
  const img = h("img", cls);
  if (image.src) img.src = image.src;
  img.alt = `Attached image: ${image.name}`;
  img.title = image.name;
  return img;
}

/** The attach button, the image waiting to be sent, and the line naming the conversation's image. */
function showImages(s: ChatState): void {
  attach.hidden = !s.takesImages;
  attach.title = `Attach image: PNG or JPEG; you can also drop or paste one here${s.imageNote ? ` (${s.imageNote})` : ""}`;
  pending.show(s.pendingImage);
  let current: ChatImage | undefined;
  for (const t of s.turns) if (t.image) current = t.image;
  convImage.hidden = s.pendingImage !== undefined || current === undefined;
  convImage.textContent = current ? `Image of this conversation: ${current.name}${s.takesImages ? " (goes with each question; Clear starts without it)" : " (this adapter does not take images)"}` : "";
}

function render(s: ChatState): void {
  const first = state === undefined;
  state = s;
  modelLabel.textContent = s.modelLabel;
  modelLabel.title = s.model;
  const entries: DropdownOption[] = s.adapters.map((a) => [a.path, a.label, { disabled: a.disabled !== undefined, title: a.title }]);
  adapterPick.setOptions([["", "none (base model only)", { title: "Chat with the base model alone" }], ...entries, ["browse", "Browse…", { title: "An adapter folder (adapter_config.json, adapter_model.safetensors)" }]], s.adapter);
  // Without an adapter there is nothing to compare the base model with.
  compare.el.toggleAttribute("disabled", s.adapter === "");
  compare.el.title = s.adapter === "" ? "Choose an adapter to compare its answers with the base model's" : "The base model answers too, with the same seed";
  const chosen = s.adapters.find((a) => a.path === s.adapter);
  adapterPick.el.title = chosen ? chosen.title : s.adapters.some((a) => a.disabled) ? "Greyed-out adapters were trained for another model; hover one to see why" : "";
  if (first) {
    temperature.value = String(s.params.temperature);
    topP.value = String(s.params.topP);
    maxTokens.value = String(s.params.maxTokens);
    template.value = s.params.template;
    showInput();
    showSampling();
  }
  messages.replaceChildren(...s.turns.map(turnView));
  showImages(s);
  if (s.turns.length === 0) messages.append(h("div", "empty", "Ask the model something. With an adapter chosen, “Compare with base” (under Options) shows the base model's answer too."));
  undoBar.hidden = !s.canUndo;
  // Send and Stop share a place: only one of them can do anything at a time.
  sendButton.disabled = s.busy;
  sendButton.hidden = s.busy;
  stopButton.disabled = !s.busy;
  stopButton.hidden = !s.busy;
  ring.hidden = !s.busy;
  status.textContent = s.status;
  status.title = s.status;
  status.hidden = s.status === "";
  status.classList.toggle("error", /^(error|could not)/.test(s.status));
  document.body.dataset.busy = String(s.busy);
  scrollToEnd();
}

function scrollToEnd(): void {
  messages.scrollTop = messages.scrollHeight;
}

host.post({ type: "ready" });
