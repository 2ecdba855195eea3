/**
 * What "Excitor: Show Attention" from the palette offers to look at: the chat's adapter, each
 * run that has one, or the base model alone. No vscode import, so the list is tested in plain
 * Node; AttentionPanel's askAttentionTarget shows it as a quick pick.
 */
import * as path from "node:path";
import { adapterKind } from "./chat-adapters";
import type { ChatImage } from "./messages";
import type { RunInfo } from "./run-manager";
import { runTime } from "./run-labels";

export interface AttentionChoice {
  label: string;
  description: string;
  model: string;
  /** null: the base model alone. */
  adapter: string | null;
  /** The chat's image, with the chat's adapter: the heatmap is then about the same question the chat asked. */
  image?: ChatImage;
}

export const NO_ADAPTER_LABEL = "No adapter (base model only)";

/**
 * The chat's adapter first (what the user is talking to), then every run with an adapter that is
 * not still training, newest first, then the base model alone (the chat's model). `modelLabel`
 * names a model folder for the descriptions. The chat's entry carries the chat's image, if any.
 */
export function attentionChoices(chat: { model: string; adapter: string | null; image?: ChatImage }, runs: RunInfo[], modelLabel: (dir: string) => string): AttentionChoice[] {
  const choices: AttentionChoice[] = [];
  const kind = (dir: string) => (adapterKind(dir) === "LoRA" ? "LoRA · " : "");
  if (chat.adapter) {
    const image = chat.image ? ` · with the chat's image ${chat.image.name}` : "";
    choices.push({ label: `The chat's adapter: ${path.basename(chat.adapter)}`, description: `${kind(chat.adapter)}${modelLabel(chat.model)}${image}`, model: chat.model, adapter: chat.adapter, ...(chat.image ? { image: chat.image } : {}) });
  }
  const withAdapter = runs.filter((r) => r.hasAdapter && r.status !== "running" && r.dir !== chat.adapter).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  for (const r of withAdapter) choices.push({ label: r.name, description: `${kind(r.dir)}${r.status} · ${modelLabel(r.spec.model)} · ${runTime(r.createdAt)}`, model: r.spec.model, adapter: r.dir });
  choices.push({ label: NO_ADAPTER_LABEL, description: modelLabel(chat.model), model: chat.model, adapter: null });
  return choices;
}
