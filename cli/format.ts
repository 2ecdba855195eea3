/** Numbers and durations as the terminal and the editor show them (no dependencies: the webviews bundle this too). */

/** 42s, 3m05s, 1h02m; "?" while unknown. */
export function fmtDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** 1,234,567 */
export function fmtInt(n: number): string {
  return n.toLocaleString("en-US");
}
