/**
 * The Runs view's tooltip for one run, as Markdown: where it is, what it trained on, with which
 * method, and how much of the base model's knowledge it kept (the last KL to the base and
 * perplexity ratio on the retention set, from its events). No vscode import, so it is tested in plain Node.
 */
import type { TrainEvent } from "../engine/train/events";
import { keptKnowledgeLine, runRetention } from "./retention";
import { METHOD_LABELS } from "./run-labels";
import type { RunInfo } from "./run-manager";
import { methodSummary } from "./run-spec";

export function runTooltip(run: RunInfo, events: readonly TrainEvent[]): string {
  const where = run.status === "running" && !run.live ? " in another window" : "";
  // The engine's start event says what it trains; a run that has not started yet, its spec.
  const started = events.filter((e): e is Extract<TrainEvent, { type: "start" }> => e.type === "start").at(-1);
  const method = started?.method ? METHOD_LABELS[started.method] : methodSummary(run.spec);
  return [
    `**${run.name}** (${run.status}${where})`,
    `method: ${method}`,
    keptKnowledgeLine(runRetention(events)) ?? "",
    `folder: \`${run.dir}\``,
    `model: \`${run.spec.model}\``,
    `data: \`${run.spec.data}\``,
    run.spec.vision ? `vision encoder: \`${run.spec.vision}\`` : "",
    run.error ? `error: ${run.error.message}` : "",
    run.status === "interrupted" ? (run.canResume ? "The window it ran in went away; Resume continues it from its last checkpoint." : "The window it ran in went away before its first checkpoint.") : "",
  ]
    .filter(Boolean)
    .join("\n\n");
}
