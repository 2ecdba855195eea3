/**
 * A run's history read across its segments: a run stopped and resumed twice has three "start"
 * events in its metrics.jsonl, and each segment's engine counts its elapsed time from zero. The
 * training panel (webview) and the progress notification both read progress through here, so
 * elapsed time goes on after a Resume and the curves show each step once, the last logged. No vscode, no DOM.
 */
import type { TrainEvent } from "../engine/train/events";

type Step = Extract<TrainEvent, { type: "step" }>;
type Validation = Extract<TrainEvent, { type: "validation" }>;

export interface RunProgress {
  /** The steps as they stand: a segment resumed from an older checkpoint redoes steps, and its steps replace the ones it redid. */
  steps: Step[];
  validations: Validation[];
  /** Seconds the earlier segments ran. */
  elapsedBefore: number;
  /** Seconds the whole run has run, the current segment included; undefined before the first step. */
  elapsed: number | undefined;
}

export function runProgress(events: readonly TrainEvent[]): RunProgress {
  let steps: Step[] = [];
  let validations: Validation[] = [];
  let before = 0;
  let segment: number | undefined;
  let starts = 0;
  for (const e of events) {
    if (e.type === "start") {
      if (starts++ > 0) before += segment ?? 0;
      segment = undefined;
      steps = steps.filter((s) => s.step <= e.resumedFromStep);
      validations = validations.filter((v) => v.step <= e.resumedFromStep);
    } else if (e.type === "step") {
      // A step logged again without a start between (older files, or a start line lost to a kill
      // mid-write): the later one wins, and what followed the earlier one was of a discarded run.
      dropFrom(steps, e.step);
      dropFrom(validations, e.step);
      steps.push(e);
      segment = Math.max(segment ?? 0, e.elapsedSeconds);
    } else if (e.type === "validation") {
      dropFrom(validations, e.step);
      validations.push(e);
    } else if (e.type === "done") segment = Math.max(segment ?? 0, e.elapsedSeconds);
  }
  const elapsed = segment === undefined ? (before > 0 ? before : undefined) : before + segment;
  return { steps, validations, elapsedBefore: before, elapsed };
}

/** Drops the trailing entries at `step` or later (kept in step order, so only the tail can be). */
function dropFrom(list: { step: number }[], step: number): void {
  while (list.length && list[list.length - 1].step >= step) list.pop();
}
