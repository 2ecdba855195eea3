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

/** 512 B, 3.4 KiB, 1.2 MiB, 7.81 GiB: binary units, three significant digits. */
export function fmtBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(v)} B` : `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ${units[i]}`;
}
