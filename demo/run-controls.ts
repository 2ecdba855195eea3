/**
 * How a demo run is watched and stopped, shared by the text and the multimodal demo: a progress
 * bar in a terminal, or (--json, an editor driving it) events on stdout and a "stop" line on
 * stdin; Ctrl-C in both cases stops at the next step with a checkpoint.
 */
import { trainReporter } from "../cli/progress";
import { stdinStopSignal } from "../cli/session";
import type { TrainEvent } from "../engine/train/events";

export interface DemoControls {
  signal: AbortSignal;
  /** Shows a training event: on the progress bar, or as one JSON line on stdout. */
  onEvent(e: TrainEvent): void;
  /** Ends the progress bar and stops reading stdin. */
  done(): void;
}

export function demoControls(jsonEvents: boolean): DemoControls {
  const reporter = jsonEvents ? undefined : trainReporter();
  const interrupt = new AbortController();
  process.once("SIGINT", () => interrupt.abort());
  const control = jsonEvents ? stdinStopSignal() : undefined;
  control?.signal.addEventListener("abort", () => interrupt.abort());
  return {
    signal: interrupt.signal,
    onEvent: (e) => (jsonEvents ? process.stdout.write(JSON.stringify(e) + "\n") : reporter?.onEvent(e)),
    done: () => {
      reporter?.stop();
      control?.dispose();
    },
  };
}
