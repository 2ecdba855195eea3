/**
 * `excitor attention`: how the adapter moved the model's attention for one prompt → response:
 * per layer, the mean attention mass that response tokens put on the instruction (the prompt
 * after BOS) and on the user's instruction and input alone (template words not counted), base
 * model vs tuned, and the gates. Without --response the tuned model answers first (greedy, 64 tokens).
 * --json prints the full AttentionReport (what the editor's heatmap draws).
 */
import type { Command } from "commander";
import { attentionReport, type AttentionReport } from "../../engine/analysis/attention";
import { ExcitorInputError } from "../../engine/errors";
import { generate } from "../../engine/generate/generate";
import type { HeldPrecision } from "../../engine/model/memory";
import { openModel, type BackendChoice } from "../../engine/load";
import { EXIT } from "../errors";
import { templateOption, type Runner, type TemplateName } from "../options";
import { adapterTemplate, promptIds, responseIds } from "../prompt";
import { promptPieces } from "../prompt-pieces";
import { attachAdapter, checkIds, imageOptions, modelOptions, openPicture, openTokenizer } from "../session";

interface Opts {
  model: string;
  adapter?: string;
  image?: string;
  vision?: string;
  backend: BackendChoice;
  weights: HeldPrecision;
  prompt: string;
  response?: string;
  template?: TemplateName;
  json?: boolean;
}

const ANSWER_TOKENS = 64;

export function registerAttention(program: Command, run: Runner): void {
  imageOptions(modelOptions(program.command("attention").description("compare attention on the instruction, base model vs tuned")))
    .requiredOption("--prompt <text>", "the instruction")
    .option("--response <text>", `the response (default: the tuned model's greedy answer, ${ANSWER_TOKENS} tokens at most)`)
    .addOption(templateOption("prompt format (default: the adapter's training template, else none)"))
    .option("--json", "print the full attention report as JSON")
    .action(run(async (c) => attentionCommand(c.optsWithGlobals<Opts>())));
}

async function attentionCommand(o: Opts): Promise<number> {
  const tok = openTokenizer(o.model);
  const rt = await openModel(o.model, { backend: o.backend, weights: o.weights });
  try {
    const adapter = attachAdapter(rt, o.adapter);
    const picture = await openPicture(rt, adapter, o);
    picture.encoder?.dispose();
    const template = o.template ?? adapterTemplate(adapter) ?? "none";
    const prompt = promptIds(tok, o.prompt, template);
    if (prompt.length === 0) throw new ExcitorInputError("--prompt: the prompt is empty");
    checkIds(prompt, rt.config.vocabSize, "--prompt", tok);
    const response =
      o.response !== undefined
        ? responseIds(tok, prompt, o.prompt, template, o.response)
        : (await generate(rt, tok, prompt, { maxTokens: ANSWER_TOKENS, temperature: 0, repetitionPenalty: 1, useAdapter: adapter !== null, image: picture.features })).ids;
    checkIds(response, rt.config.vocabSize, "--response", tok);
    if (prompt.length + response.length > rt.config.maxPositions)
      throw new ExcitorInputError(`prompt and response are ${prompt.length + response.length} tokens; the model's context holds ${rt.config.maxPositions}`);
    const shown = picture.features && picture.view ? { features: picture.features, view: picture.view } : undefined;
    const report = await attentionReport(rt, tok, adapter, prompt, response, promptPieces(tok, o.prompt, template), shown);
    process.stdout.write(o.json ? JSON.stringify(report) + "\n" : table(report, tok.decode(response, { skipSpecial: true })));
    return EXIT.ok;
  } finally {
    rt.dispose();
  }
}

function table(r: AttentionReport, responseText: string): string {
  const lines = [
    `instruction: tokens ${r.instruction[0]}..${r.instruction[1] - 1}; response: ${r.response[1] - r.response[0]} tokens: ${JSON.stringify(responseText)}`,
    `parts: ${r.spans.map((s) => `${s.kind} ${s.start}..${s.end - 1}`).join(", ")}`,
    "mean attention mass of response tokens on the instruction (over heads and response tokens):",
    `${"layer".padEnd(7)}${"base".padStart(9)}${"tuned".padStart(9)}${"change".padStart(9)}  gates`,
  ];
  for (const m of r.instructionMass) {
    const { gates, adapted } = r.layers[m.layer];
    // A LoRA adapter's layers are adapted but have no gates.
    const g = gates ? gates.map((x) => x.toFixed(3)).join(" ") : adapted ? "(LoRA: no gates)" : "(not adapted)";
    const change = m.tuned - m.base;
    lines.push(`${String(m.layer).padEnd(7)}${m.base.toFixed(4).padStart(9)}${m.tuned.toFixed(4).padStart(9)}${((change >= 0 ? "+" : "") + change.toFixed(4)).padStart(9)}  ${g}`);
  }
  lines.push("share of the response's attention on the instruction and input (template words not counted):");
  lines.push(`${"layer".padEnd(7)}${"base".padStart(9)}${"tuned".padStart(9)}`);
  const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
  for (const m of r.instructionAndInputMass) lines.push(`${String(m.layer).padEnd(7)}${pct(m.base).padStart(9)}${pct(m.tuned).padStart(9)}`);
  if (r.image) {
    lines.push("share of the response's attention that reaches the picture (through the Excitor's keys; mean over heads and response tokens):");
    lines.push(`${"layer".padEnd(7)}${"picture".padStart(9)}  strongest patch (row, col of ${r.image.grid}×${r.image.grid})`);
    for (const l of r.image.layers) {
      const G = r.image.grid;
      const perPatch = new Array<number>(G * G).fill(0);
      let total = 0;
      let n = 0;
      l.mass.forEach((head, h) =>
        head.forEach((tokenMass, i) => {
          tokenMass.forEach((m, p) => (perPatch[p] += m));
          total += tokenMass.reduce((a, b) => a + b, 0) + l.cls[h][i];
          n++;
        }),
      );
      const best = perPatch.indexOf(Math.max(...perPatch));
      lines.push(`${String(l.layer).padEnd(7)}${pct(n ? total / n : 0).padStart(9)}  (${Math.floor(best / G)}, ${best % G})`);
    }
  }
  if (r.response[0] === r.response[1]) lines.push("(the response is empty, so there is no attention to compare)");
  return lines.join("\n") + "\n";
}
