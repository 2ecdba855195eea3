/** The sidebar chat: draws the host's ChatState, streams deltas into the open answer, sends user actions. */
import type { ChatParams, ChatState, ChatToHost, ChatToWebview } from "../extension/messages";
import { button, checkbox, dropdown, h, progressRing, row, textArea, textField } from "./ui";
import { connect } from "./vscode-api";

interface Draft {
  text: string;
  input: string;
  compare: boolean;
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
const draft: Draft = host.getState() ?? { text: "", input: "", compare: false };

// ---- controls (built once; render() only updates them)

const modelLabel = h("span", "model-label");
const changeModel = button("Change…", () => host.post({ type: "chooseModel" }), { secondary: true, title: "Choose the base model folder" });
const adapterPick = dropdown("Adapter", [["", "none"]], { id: "adapter", onChange: (v) => host.post({ type: "chooseAdapter", adapter: v }) });
const temperature = textField("Temperature", { id: "temperature", size: 4 });
const topP = textField("Top-p", { id: "top-p", size: 4 });
const maxTokens = textField("Max tokens", { id: "max-tokens", size: 5 });
const template = dropdown("Template", [["auto", "auto (as trained)"], ["chat", "chat template"], ["alpaca", "Alpaca"]], { id: "template", onChange: () => showInput() });
const compare = checkbox("Compare with base", { id: "compare", checked: draft.compare, onChange: (v) => save({ compare: v }) });
const messages = h("div", "messages");
messages.setAttribute("role", "log");
messages.setAttribute("aria-live", "polite");
messages.id = "messages";
const prompt = textArea("Message", {
  id: "prompt",
  rows: 2,
  value: draft.text,
  placeholder: "Ask something (Enter sends, Shift+Enter for a new line)",
  onKeydown: (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      send();
    }
  },
});
const context = textArea("Input (Alpaca context, optional)", { id: "context", rows: 2, value: draft.input, placeholder: "Text the instruction is about" });
const sendButton = button("Send", () => send(), { id: "send" });
const stopButton = button("Stop", () => host.post({ type: "stop" }), { id: "stop", secondary: true, title: "Stop generation in the engine" });
const clearButton = button("Clear", () => host.post({ type: "clear" }), { id: "clear", secondary: true, title: "Clear the conversation" });
const status = h("div", "status");
status.id = "status";
status.setAttribute("role", "status");
const ring = progressRing();

const settings = h("details", "settings");
settings.append(h("summary", undefined, "Generation settings"), row(temperature.el, topP.el, maxTokens.el), row(template.el), row(compare.el));
// The conversation takes the room the view has; the composer and the settings stay below it.
app.append(row(h("span", "caption", "Model:"), modelLabel, changeModel), row(adapterPick.el), messages, prompt.el, context.el, row(sendButton, stopButton, clearButton, ring), status, settings);
prompt.el.addEventListener("input", () => save({ text: prompt.value }));
context.el.addEventListener("input", () => save({ input: context.value }));

function save(d: Partial<Draft>): void {
  Object.assign(draft, d);
  host.setState(draft);
}

function showInput(): void {
  const t = template.value;
  context.el.hidden = t === "chat";
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

function send(): void {
  if (!state || state.busy) return;
  const text = prompt.value.trim();
  if (text === "") return;
  const p = params();
  if (typeof p === "string") {
    status.textContent = p;
    return;
  }
  host.post({ type: "send", text, input: context.el.hidden ? "" : context.value.trim(), compare: compare.checked, params: p });
  prompt.value = "";
  save({ text: "" });
}

const WHO = { tuned: "Excitor (tuned)", base: "Base model", model: "Model" } as const;

function render(s: ChatState): void {
  const first = state === undefined;
  state = s;
  modelLabel.textContent = s.modelLabel;
  modelLabel.title = s.model;
  adapterPick.setOptions([["", "none (base model)"], ...s.adapters.map((a) => [a.path, a.label] as [string, string]), ["browse", "Browse…"]], s.adapter);
  if (first) {
    temperature.value = String(s.params.temperature);
    topP.value = String(s.params.topP);
    maxTokens.value = String(s.params.maxTokens);
    template.value = s.params.template;
    showInput();
  }
  messages.replaceChildren(
    ...s.turns.map((t, i) => {
      const el = h("div", `turn ${t.role} ${t.source ?? ""}`);
      el.dataset.turn = String(i);
      const head = h("div", "who", t.role === "user" ? "You" : WHO[t.source ?? "model"]);
      const body = h("div", "text", t.text);
      el.append(head);
      if (t.input) el.append(h("div", "context", t.input));
      el.append(body);
      if (t.role === "assistant") {
        const foot = h("div", "foot");
        if (t.finish) foot.append(h("span", "finish", t.finish));
        if (!t.streaming) {
          foot.append(
            button("Copy", () => host.post({ type: "copy", index: i }), { secondary: true, title: "Copy this answer" }),
            button("Attention", () => host.post({ type: "showAttention", index: i }), { secondary: true, title: "Show how this answer attends to the prompt" }),
          );
        }
        el.append(foot);
      }
      return el;
    }),
  );
  if (s.turns.length === 0) messages.append(h("div", "empty", "Ask the model something. With an adapter chosen, “Compare with base” shows the base model's answer too."));
  sendButton.disabled = s.busy;
  stopButton.disabled = !s.busy;
  ring.hidden = !s.busy;
  status.textContent = s.status;
  document.body.dataset.busy = String(s.busy);
  scrollToEnd();
}

function scrollToEnd(): void {
  messages.scrollTop = messages.scrollHeight;
}

host.post({ type: "ready" });
