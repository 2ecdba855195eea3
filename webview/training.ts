/** The training panel: redraws from the run's event list (a snapshot, then live events). */
import type { TrainEvent } from "../engine/train/events";
import type { TrainingSnapshot, TrainingToHost, TrainingToWebview } from "../extension/messages";
import { fmtDuration, fmtInt } from "../cli/format";
import { fmtKl, pplText, retentionSource, runRetention } from "../extension/retention";
import { METHOD_LABELS } from "../extension/run-labels";
import { runProgress } from "../extension/train-history";
import { lineChart, fmt, type Series } from "./line-chart";
import { button, h, row } from "./ui";
import { connect } from "./vscode-api";

let run: TrainingSnapshot | undefined;
const host = connect<TrainingToHost, TrainingToWebview, { runId: string }>((m) => {
  if (m.type === "snapshot") {
    run = m.run;
    host.setState({ runId: m.run.runId }); // lets VS Code restore this panel after a reload
  } else if (!run || m.runId !== run.runId) return;
  else if (m.type === "event") run.events.push(m.event);
  else if (m.type === "status") Object.assign(run, { status: m.status, error: m.error, canResume: m.canResume });
  schedule();
});

const app = document.getElementById("app")!;
const title = h("h2", "title");
const badge = h("span", "badge");
badge.id = "run-status";
const stop = button("Stop", () => host.post({ type: "stop" }), { secondary: true, id: "stop-run", title: "Stop after this step, keeping a checkpoint" });
const resume = button("Resume", () => host.post({ type: "resume" }), { secondary: true, id: "resume-run", title: "Continue from the last checkpoint" });
const folder = button("Open Folder", () => host.post({ type: "openFolder" }), { secondary: true });
const stats = h("dl", "stats");
stats.id = "stats";
/** At the end of a run: did the loss fall, in words (a flat curve alone says nothing to a newcomer). */
const verdict = h("p", "verdict");
verdict.id = "verdict";
verdict.setAttribute("role", "status");
const charts = h("div", "charts");
/**
 * Kept knowledge beside the validation loss: the KL from the base model's next-token
 * predictions on the retention set, charted at each validation, with the latest perplexity ratio.
 */
const retention = h("figure", "retention");
retention.id = "retention";
const retentionNote = h("figcaption", "muted");
retentionNote.id = "retention-note";
const gates = h("div", "gates");
const logs = h("ul", "logs");
const head = row(title, badge, stop, resume, folder);
const gatesHead = h("h3", undefined, "Gate values (latest step)");
app.append(head, verdict, stats, charts, gatesHead, gates, h("h3", undefined, "Log"), logs);

let pending = false;
/** Many events can arrive at once; draw at most once per frame. */
function schedule(): void {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    draw();
  });
}

function of<T extends TrainEvent["type"]>(events: TrainEvent[], type: T): Extract<TrainEvent, { type: T }>[] {
  return events.filter((e): e is Extract<TrainEvent, { type: T }> => e.type === type);
}

function draw(): void {
  if (!run) return;
  const ev = run.events;
  const start = of(ev, "start").at(-1);
  // Across Resumes: each step once, and the time of every segment.
  const { steps, validations: vals, elapsed } = runProgress(ev);
  const last = steps.at(-1);
  const done = of(ev, "done").at(-1);
  title.textContent = run.name;
  badge.textContent = run.status;
  badge.className = `badge ${run.status}`;
  document.body.dataset.status = run.status;
  stop.disabled = run.status !== "running";
  resume.style.display = run.canResume ? "" : "none"; // offered only with a checkpoint to continue from

  const rows: [string, string][] = [
    ["step", last ? `${last.step} / ${last.totalSteps}` : start ? `0 / ${start.totalSteps}` : "–"],
    ["epoch", last ? last.epoch.toFixed(2) : "–"],
    ["loss", last ? last.loss.toFixed(4) : "–"],
    ["validation loss", vals.length ? vals[vals.length - 1].loss.toFixed(4) : "–"],
    ["learning rate", last ? fmt(last.learningRate) : "–"],
    ["tokens/s", last ? last.tokensPerSecond.toFixed(0) : "–"],
    ["elapsed", elapsed !== undefined ? fmtDuration(elapsed) : "–"],
    ["ETA", run.status === "running" && last ? fmtDuration(last.etaSeconds) : run.status === "done" ? "finished" : "–"],
    ["recipe", start ? `${start.totalSteps} steps of ${start.effectiveBatch} (${start.epochs} epoch${start.epochs === 1 ? "" : "s"}), peak learning rate ${fmt(start.learningRate)}` : "–"],
    [
      "trainable parameters",
      // An adapter's parameters come on top of the base's; full fine-tuning trains the base's own.
      start ? `${fmtInt(start.trainableParams)} (${start.method === "full" ? "every weight of the model" : `${((100 * start.trainableParams) / (start.baseParams + start.trainableParams)).toFixed(2)} %`})` : "–",
    ],
    ["examples", start ? `${start.trainExamples} train, ${start.validationExamples} validation${start.truncatedExamples ? `, ${start.truncatedExamples} cut to max length` : ""}` : "–"],
    ["backend", start?.backend ?? "–"],
  ];
  // Runs from before methods existed trained Excitor adapters.
  if (start) rows.splice(1, 0, ["method", METHOD_LABELS[start.method ?? "excitor"]]);
  stats.replaceChildren(
    ...rows.flatMap(([k, v]) => {
      const dd = h("dd", undefined, v);
      dd.dataset.stat = k;
      if (k === "backend" && start?.backendNote) dd.title = start.backendNote; // why this one and not a faster one
      if (k === "recipe" && run?.recipe) dd.title = run.recipe; // why these numbers
      return [h("dt", undefined, k), dd];
    }),
  );
  if (run.error) stats.append(h("dt", "error", "error"), h("dd", "error", run.error));
  verdict.textContent = done?.verdict?.message ?? "";
  verdict.className = `verdict ${done?.verdict ? (done.verdict.learned ? "learned" : "flat") : ""}`;
  verdict.hidden = !done?.verdict;

  const method = start?.method ?? "excitor";
  // Only Excitor has gates; LoRA and full fine-tuning report none.
  const gated = method === "excitor";
  const layers = start?.layers ?? [];
  const gateSeries: Series[] = layers.map((layer, i) => ({
    name: `layer ${layer}`,
    cls: `s${i % 8}`,
    points: steps.map((s) => [s.step, s.gates[i] ? s.gates[i].reduce((a, g) => a + Math.abs(g), 0) / s.gates[i].length : 0] as [number, number]),
  }));
  const kept = runRetention(ev);
  if (kept.set) {
    retention.replaceChildren(lineChart("kept knowledge: KL to base", [{ name: "KL(base ‖ tuned), nats/token", cls: "s3", points: kept.kl }], "step", { legend: false, empty: "waiting for the first validation…", nonNegative: true }), retentionNote);
    retentionNote.textContent = kept.last
      ? `${pplText(kept.last)} · KL ${fmtKl(kept.last.kl)} nats/token (0: the base model's own predictions) · retention set: ${retentionSource(kept.set)}`
      : `Measured at each validation on ${retentionSource(kept.set)}: 0 means the tuned model still predicts what the base model knows.`;
  } else {
    // Nothing to chart: say why, once the run has said it measures nothing.
    retentionNote.textContent = kept.started ? "Kept knowledge is not measured in this run: it has no retention set (--retain none, or a run from before it was measured)." : "";
    retention.replaceChildren(retentionNote);
  }
  retention.hidden = !kept.started;
  charts.replaceChildren(
    lineChart("Loss", [{ name: "training", cls: "s0", points: steps.map((s) => [s.step, s.loss]) }, { name: "validation", cls: "s1", dashed: true, points: vals.map((v) => [v.step, v.loss]) }], "step"),
    retention,
    lineChart("Learning rate", [{ name: "learning rate", cls: "s2", points: steps.map((s) => [s.step, s.learningRate]) }], "step", { legend: false }),
    ...(gated ? [lineChart("Mean |gate| per layer", gateSeries, "step")] : []),
  );

  gates.replaceChildren();
  gatesHead.hidden = !gated;
  if (!gated) gates.append(h("p", "muted", `${METHOD_LABELS[method]} has no gates: it changes the model's weights${method === "lora" ? " through low-rank updates" : ""}, not its attention through a gate.`));
  else if (last && last.gates.length > 0) {
    const table = h("table", "gate-table");
    const hr = h("tr");
    hr.append(h("th", undefined, "layer"), ...last.gates[0].map((_, i) => h("th", undefined, `head ${i}`)));
    table.append(hr);
    last.gates.forEach((g, i) => {
      const tr = h("tr");
      tr.append(h("th", undefined, String(layers[i] ?? i)), ...g.map((v) => h("td", undefined, v.toFixed(4))));
      table.append(tr);
    });
    gates.append(table);
  } else gates.append(h("p", "muted", "Gates start at zero: the tuned model begins exactly as the base model."));

  const notes = ev.filter((e) => e.type === "log" || e.type === "checkpoint" || e.type === "cancelled" || e.type === "done");
  logs.replaceChildren(
    ...notes.slice(-50).map((e) =>
      h(
        "li",
        e.type === "log" ? e.level : "",
        e.type === "log" ? e.message : e.type === "checkpoint" ? `checkpoint at step ${e.step}` : e.type === "cancelled" ? `stopped at step ${e.step}; adapter in ${e.adapterDir}` : `finished at step ${e.step}; adapter in ${e.adapterDir}`,
      ),
    ),
  );
}

host.post({ type: "ready" });
