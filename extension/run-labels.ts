/** How a run is named on screen: two runs on the same data with the same preset differ by their start time. No runtime imports: the webviews use it too. */
import type { TuningMethod } from "../engine/adapters";

/** What each tuning method is called on screen. */
export const METHOD_LABELS: Record<TuningMethod, string> = { excitor: "Excitor", lora: "LoRA", full: "full fine-tuning" };

/** "2025-03-07 14:05": the run's start in local time, minutes precise. */
export function runTime(createdAt: string): string {
  const d = new Date(createdAt);
  if (Number.isNaN(d.getTime())) return createdAt;
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** The training panel's tab title. */
export function panelTitle(name: string, createdAt: string): string {
  return `Training: ${name} (${runTime(createdAt)})`;
}
