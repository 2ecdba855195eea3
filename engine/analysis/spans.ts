/**
 * Which tokens of an attention report are the prompt format's boilerplate, the user's
 * instruction, the input, and the response. Token spans come from character spans by encoding
 * prefixes of the prompt text: the prefix ending at a piece's end, tokenized alone, shares its
 * first n tokens with the whole prompt, and those n tokens lie inside the prefix. A token that a
 * merge carries across a boundary goes to the later piece.
 */
import type { PromptPiece, PromptPieceKind } from "../data/templates";
import type { TextTokenizer } from "../tokenizer/tokenizer";

export type SpanKind = PromptPieceKind | "response";

/** Tokens [start, end) of one kind. */
export interface TokenSpan {
  kind: SpanKind;
  start: number;
  end: number;
}

/**
 * The spans of `promptIds` (the prompt as the model saw it) and of the response after it, in
 * order and covering every token. BOS counts as template text. Without `pieces`, or when the
 * pieces joined do not tokenize to `promptIds` (the prompt was built some other way), the prompt
 * after BOS is one instruction span: nothing is claimed that the ids do not show.
 */
export function tokenSpans(tok: TextTokenizer, promptIds: number[], responseLength: number, pieces?: PromptPiece[]): TokenSpan[] {
  const spans: TokenSpan[] = [];
  const push = (kind: SpanKind, start: number, end: number) => {
    if (end <= start) return;
    const last = spans[spans.length - 1];
    if (last && last.kind === kind && last.end === start) last.end = end;
    else spans.push({ kind, start, end });
  };
  const lead = promptIds[0] !== undefined && promptIds[0] === tok.bosId ? 1 : 0;
  push("template", 0, lead);
  const bounds = pieces ? pieceBounds(tok, promptIds, pieces, lead === 1) : undefined;
  if (pieces && bounds) {
    let start = lead;
    pieces.forEach((p, i) => {
      push(p.kind, start, bounds[i]);
      start = Math.max(start, bounds[i]);
    });
  } else push("instruction", lead, promptIds.length);
  push("response", promptIds.length, promptIds.length + responseLength);
  return spans;
}

/** The token index where each piece ends, or undefined when the pieces are not what `promptIds` encodes. */
function pieceBounds(tok: TextTokenizer, promptIds: number[], pieces: PromptPiece[], bos: boolean): number[] | undefined {
  const text = pieces.map((p) => p.text).join("");
  // A chat template may write BOS into its text; then the tokenizer was not asked to add one.
  const textHasBos = tok.bosToken !== undefined && text.startsWith(tok.bosToken);
  const addBos = bos && !textHasBos;
  if (!sameIds(tok.encode(text, { bos: addBos, eos: false }), promptIds)) return undefined;
  const bounds: number[] = [];
  let end = 0;
  let prev = bos ? 1 : 0;
  for (const [i, p] of pieces.entries()) {
    end += p.text.length;
    const b = i === pieces.length - 1 ? promptIds.length : Math.max(prev, commonPrefixLength(tok.encode(text.slice(0, end), { bos: addBos, eos: false }), promptIds));
    bounds.push(b);
    prev = b;
  }
  return bounds;
}

function sameIds(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function commonPrefixLength(a: number[], b: number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}
