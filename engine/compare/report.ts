/**
 * The comparison as files: report.json (numbers for programs), report.md (tables for people) and
 * accuracy-vs-retention.svg (each run as a point: held-out exact match against retention KL).
 */
import * as path from "node:path";
import { writeFileAtomic } from "../fs-atomic";
import type { CompareResult, MethodResult } from "./run";
import { escapeXml } from "./svg";

export const REPORT_FILES = { json: "report.json", markdown: "report.md", scatter: "accuracy-vs-retention.svg" } as const;

const NAMES: Record<string, string> = { excitor: "Excitor", lora: "LoRA (PEFT default)", "lora-matched": "LoRA (Excitor's size)", full: "Full fine-tuning" };
const COLORS: Record<string, string> = { excitor: "#1b9e77", lora: "#d95f02", "lora-matched": "#7570b3", full: "#e7298a" };

/** Writes the three files into `dir` (each atomically); returns report.md's path. */
export function writeCompareReport(dir: string, r: CompareResult, context: { model: string; data: string }): string {
  const json = {
    ...context,
    heldout: r.heldoutSource,
    domain: r.domainSource,
    seed: r.seed,
    steps: r.steps,
    retainWeight: r.retainWeight,
    base: r.base,
    methods: r.methods.map((m) => ({
      method: m.method,
      family: m.family,
      config: m.config,
      learningRate: m.learningRate,
      selected: m.selected,
      exactMatch: m.exactMatch,
      answerPerplexity: m.answerPerplexity,
      storyPerplexity: m.storyPerplexity,
      retentionKL: m.retentionKL,
      retentionPplRatio: m.retentionPplRatio,
      validationLoss: m.validationLoss,
      trainableParameters: m.trainableParameters,
      trainSeconds: m.trainSeconds,
      instructionAttention: m.instructionAttention,
    })),
  };
  writeFileAtomic(path.join(dir, REPORT_FILES.json), JSON.stringify(json, null, 2) + "\n");
  writeFileAtomic(path.join(dir, REPORT_FILES.scatter), scatterSvg(r.methods));
  const md = path.join(dir, REPORT_FILES.markdown);
  writeFileAtomic(md, compareMarkdown(r, context));
  return md;
}

const pct = (x: number) => `${(100 * x).toFixed(0)} %`;
const num = (x: number, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : "–");

export function compareMarkdown(r: CompareResult, c: { model: string; data: string }): string {
  const selected = r.methods.filter((m) => m.selected);
  const row = (m: MethodResult) =>
    `| ${NAMES[m.family] ?? m.family} | ${m.config} | ${pct(m.exactMatch)} | ${num(m.answerPerplexity, 2)} | ${num(m.storyPerplexity.tuned / m.storyPerplexity.base)} | ${num(m.retentionKL, 4)} | ${m.trainableParameters.toLocaleString("en-US")} | ${m.trainSeconds.toFixed(0)} s |`;
  const header = [
    "| method | config | exact match | answer perplexity | story perplexity ×base | retention KL (nats/token) | trainable parameters | train time |",
    "|---|---|---|---|---|---|---|---|",
  ];
  const layers = selected[0]?.instructionAttention.map((a) => a.layer) ?? [];
  return [
    "# Excitor against LoRA and full fine-tuning",
    "",
    `Model \`${c.model}\`, training data \`${c.data}\` (${r.steps} steps, seed ${r.seed}, ${r.retainWeight > 0 ? `--retain-weight ${r.retainWeight}` : "no regulariser"}: the same for every run), held-out answers from ${r.heldoutSource} (${r.heldout} prompts), domain text from ${r.domainSource} (${r.domainTexts} texts).`,
    `The base model: exact match ${pct(r.base.exactMatch)}, answer perplexity ${num(r.base.answerPerplexity, 2)}, story perplexity ${num(r.base.storyPerplexity)}.`,
    "",
    "## Each method at its best learning rate",
    "",
    "The rate of each method is the one of its three with the lowest validation loss on the training data's own validation split (chosen before the held-out answers, the stories or the retention set are looked at).",
    "",
    ...header,
    ...selected.map(row),
    "",
    "- *exact match*: greedy answer to the held-out instruction, up to the first line break, equal to the expected output (case and surrounding spaces ignored).",
    "- *story perplexity ×base*: perplexity on the domain text with the tuned model over the base model's (1.00 = nothing lost).",
    "- *retention KL*: mean per-token KL(base ‖ tuned) on the retention set, the base model's own samples (0 = the tuned model predicts exactly as the base did).",
    "",
    "![accuracy against retention](accuracy-vs-retention.svg)",
    "",
    "## The learning-rate sweep",
    "",
    ...header,
    ...r.methods.map(row),
    "",
    "## Attention the answers put on the instruction",
    "",
    "Per layer: the share of the response tokens' attention that goes to the user's instruction and input (template words not counted), mean over heads, response tokens and held-out prompts; the base model, then each method at its selected rate. The paper's mechanism is \"self-adaptive allocation of additional attention to input instructions\"; this is it as measured.",
    "",
    `| layer | base | ${selected.map((m) => NAMES[m.family] ?? m.family).join(" | ")} |`,
    `|---|---|${selected.map(() => "---|").join("")}`,
    ...layers.map((l, i) => `| ${l} | ${pct(selected[0].instructionAttention[i].base)} | ${selected.map((m) => pct(m.instructionAttention[i].tuned)).join(" | ")} |`),
    "",
  ].join("\n");
}

/** Exact match (y) against retention KL (x) for every run; selected runs drawn filled. */
export function scatterSvg(methods: MethodResult[]): string {
  const W = 640, H = 360, L = 56, R = 200, T = 36, B = 48;
  const points = methods.filter((m) => Number.isFinite(m.retentionKL) && m.retentionKL > 0);
  // KL spans decades across a sweep (0.006 to 9 on the demo): a log axis, whole decades.
  const lo = Math.floor(Math.log10(Math.min(1, ...points.map((m) => m.retentionKL))));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(1e-6, ...points.map((m) => m.retentionKL)))));
  const x = (v: number) => L + ((Math.log10(v) - lo) / (hi - lo)) * (W - L - R);
  const y = (v: number) => T + (1 - v) * (H - T - B);
  const f = (n: number) => n.toFixed(1);
  const ticks = (n: number, top: number) => Array.from({ length: n + 1 }, (_, i) => (top * i) / n);
  const grid =
    ticks(4, 1).map((v) => `<line x1="${L}" x2="${W - R}" y1="${f(y(v))}" y2="${f(y(v))}" stroke="#ddd"/><text x="${L - 6}" y="${f(y(v) + 4)}" text-anchor="end">${pct(v)}</text>`).join("") +
    Array.from({ length: hi - lo + 1 }, (_, i) => 10 ** (lo + i))
      .map((v) => `<line x1="${f(x(v))}" x2="${f(x(v))}" y1="${T}" y2="${H - B}" stroke="#eee"/><text x="${f(x(v))}" y="${H - B + 18}" text-anchor="middle">${v >= 1 ? v.toFixed(0) : v.toPrecision(1)}</text>`)
      .join("");
  const dots = points
    .map((m) => {
      const color = COLORS[m.family] ?? "#666";
      return `<circle cx="${f(x(m.retentionKL))}" cy="${f(y(m.exactMatch))}" r="${m.selected ? 6 : 4}" fill="${m.selected ? color : "white"}" stroke="${color}" stroke-width="2"><title>${escapeXml(`${NAMES[m.family] ?? m.family}: ${m.config}`)}</title></circle>`;
    })
    .join("");
  const families = [...new Set(methods.map((m) => m.family))];
  const legend = families
    .map((fam, i) => `<circle cx="10" cy="${i * 20}" r="5" fill="${COLORS[fam] ?? "#666"}"/><text x="22" y="${i * 20 + 4}">${escapeXml(NAMES[fam] ?? fam)}</text>`)
    .join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${(L + W - R) / 2}" y="20" text-anchor="middle" font-size="14">Held-out exact match against forgetting</text>
${grid}
<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle">retention KL to the base model (nats/token, log scale; left is better)</text>
${dots}
<g transform="translate(${W - R + 16},${T + 10})">${legend}<text x="0" y="${families.length * 20 + 10}">filled: best rate (validation loss)</text></g>
</svg>
`;
}
