/**
 * The attention panel's "Where the answer looks in the picture" (multimodal adapters, with an
 * image): the picture as the encoder saw it with a G×G heatmap over it, for one adapted layer,
 * one head or the mean of the heads, one response token or the whole response; the base model's
 * picture beside it, which stays clear (it cannot see the image); and the share of the attention
 * that goes through the image. The numbers come from heatmap-image.ts.
 */
import type { ImageAttention } from "../engine/analysis/image-attention-types";
import { themeColors } from "./heatmap";
import { css, percent, tokenLabel } from "./heatmap-layout";
import { cellAlpha, cellRect, imageMass, imageShare, imageTokenCount, patchAt, patchCell, peakPatch, type ImageMass } from "./heatmap-image";
import { dropdown, h, row } from "./ui";

interface Choice {
  /** Index into the report's image layers. */
  layer: number;
  head: number;
  token: number;
}

export function imageAttentionSection(): { el: HTMLElement; show(img: ImageAttention | undefined, responseTokens: string[], tuned: string): void; redraw(): void } {
  const el = h("section", "image-attention");
  el.id = "image-attention";
  el.setAttribute("aria-labelledby", "image-attention-title");
  const title = h("h3", undefined, "Where the answer looks in the picture");
  title.id = "image-attention-title";
  const explain = h("p", "muted");
  const layerPick = dropdown("Layer", [], { id: "image-layer", onChange: (v) => set({ layer: Number(v) }) });
  const headPick = dropdown("Head", [], { id: "image-head", onChange: (v) => set({ head: Number(v) }) });
  const tokenPick = dropdown("Response token", [], { id: "image-token", onChange: (v) => set({ token: Number(v) }) });
  const share = h("p", "image-share");
  share.id = "image-share";
  share.setAttribute("role", "status");
  const tuned = figure("image-tuned");
  const base = figure("image-base");
  base.caption.textContent = "Base model: 0 % through the image everywhere. The base model cannot see the image; only the adapter's prompts attend to its features.";
  const readout = h("p", "muted image-readout");
  readout.id = "image-readout";
  readout.setAttribute("aria-live", "polite");
  const pair = h("div", "image-pair");
  pair.append(tuned.el, base.el);
  el.append(title, explain, row(layerPick.el, headPick.el, tokenPick.el), share, pair, readout);
  el.hidden = true;

  let img: ImageAttention | undefined;
  let tunedName = "Excitor";
  let mass: ImageMass | undefined;
  const choice: Choice = { layer: 0, head: -1, token: -1 };

  function set(c: Partial<Choice>): void {
    Object.assign(choice, c);
    redraw();
  }

  function redraw(): void {
    if (!img) return;
    mass = imageMass(img, choice.layer, choice.head, choice.token);
    const { grid } = img;
    const through = imageShare(mass);
    const cls = mass.cls;
    const what = `${choice.head < 0 ? "mean of the heads" : `head ${choice.head}`}, ${choice.token < 0 ? "whole response (mean over its tokens)" : `response token ${choice.token}`}`;
    share.textContent = `Through the image: ${percent(through, 2)} of the attention (patches ${percent(through - cls, 2)}, class token ${percent(cls, 2)}) with the ${tunedName} adapter; base model 0 %.`;
    const peak = peakPatch(mass.patches);
    const max = peak === undefined ? 0 : mass.patches[peak];
    const at = peak === undefined ? undefined : patchCell(peak, grid);
    tuned.caption.textContent = `${tunedName}, layer ${img.layers[choice.layer].layer}, ${what}. ${at ? `Brightest patch: row ${at.row}, column ${at.col}, ${percent(max, 2)}.` : "No attention goes through the patches."}`;
    tuned.canvas.setAttribute("aria-label", `The picture with a ${grid} by ${grid} heatmap: ${tuned.caption.textContent}`);
    paintOverlay(tuned.canvas, img, mass.patches, max);
    paintOverlay(base.canvas, img, new Array<number>(grid * grid).fill(0), 0);
    readout.textContent = "Point at the picture to read a patch's share.";
  }

  tuned.canvas.addEventListener("mousemove", (e) => {
    if (!img || !mass) return;
    const box = tuned.canvas.getBoundingClientRect();
    const p = patchAt(((e.clientX - box.left) * img.size) / box.width, ((e.clientY - box.top) * img.size) / box.height, img.grid, img.size);
    if (p === undefined) return;
    const { row: r, col: c } = patchCell(p, img.grid);
    readout.textContent = `Patch ${p} (row ${r}, column ${c}): ${percent(mass.patches[p], 3)} of the attention with the ${tunedName} adapter; base model 0 %.`;
  });

  return {
    el,
    redraw,
    show(next, responseTokens, name) {
      img = next;
      tunedName = name;
      el.hidden = !next;
      if (!next) return;
      const count = imageTokenCount(next);
      if (choice.layer >= next.layers.length) choice.layer = next.layers.length - 1;
      if (choice.layer < 0 || !Number.isInteger(choice.layer)) choice.layer = next.layers.length - 1;
      if (choice.head >= (next.layers[0]?.mass.length ?? 0)) choice.head = -1;
      if (choice.token >= count) choice.token = -1;
      explain.textContent = `The picture as the encoder saw it (${next.size} × ${next.size} pixels, ${next.grid} × ${next.grid} patches). Each cell is brighter the more of the response's attention goes through that patch of the image, by way of the ${tunedName} adapter's prompts (the brightest cell at full colour).`;
      layerPick.setOptions(next.layers.map((l, i) => [String(i), `${l.layer} (adapted)`]), String(choice.layer));
      const heads = next.layers[0]?.mass.length ?? 0;
      headPick.setOptions([["-1", "mean of heads"], ...Array.from({ length: heads }, (_, i): [string, string] => [String(i), `head ${i}`])], String(choice.head));
      tokenPick.setOptions([["-1", "whole response"], ...Array.from({ length: count }, (_, i): [string, string] => [String(i), `${i}: ${tokenLabel(responseTokens[i] ?? "", 16)}`])], String(choice.token));
      for (const f of [tuned, base]) {
        if (f.picture.src !== next.png) f.picture.src = next.png;
        // A picture far smaller than its box (a test encoder's 32 px) shows its pixels rather than a blur.
        f.picture.style.imageRendering = next.size < 160 ? "pixelated" : "auto";
      }
      redraw();
    },
  };
}

function figure(id: string): { el: HTMLElement; picture: HTMLImageElement; canvas: HTMLCanvasElement; caption: HTMLElement } {
  const el = h("figure", "image-figure");
  el.id = id;
  const frame = h("div", "image-frame");
  const picture = h("img", "image-picture");
  picture.alt = "";
  const canvas = h("canvas", "image-overlay");
  canvas.setAttribute("role", "img");
  frame.append(picture, canvas);
  const caption = h("figcaption", "muted");
  el.append(frame, caption);
  return { el, picture, canvas, caption };
}

/** The overlay's resolution: the picture's, or more for a small one, so that the grid lines stay thin (CSS scales it to the picture's box). */
const overlaySide = (img: ImageAttention) => Math.max(img.size, 448);

/** The heatmap cells over the picture; `data-painted` says how many cells have heat (0 for the base model). */
function paintOverlay(canvas: HTMLCanvasElement, img: ImageAttention, patches: number[], max: number): void {
  const side = overlaySide(img);
  canvas.width = side;
  canvas.height = side;
  const g = canvas.getContext("2d");
  if (!g) return;
  g.clearRect(0, 0, side, side);
  const colour = themeColors().positive;
  let painted = 0;
  for (let n = 0; n < patches.length; n++) {
    const a = cellAlpha(patches[n], max);
    if (a === 0) continue;
    const r = cellRect(n, img.grid, side);
    g.fillStyle = css(colour, a);
    g.fillRect(r.x, r.y, r.w, r.h);
    painted++;
  }
  canvas.dataset.painted = String(painted);
  // The grid, faintly, so that the cells read as the encoder's patches.
  g.strokeStyle = "rgba(128,128,128,0.35)";
  g.lineWidth = 1;
  for (let i = 1; i < img.grid; i++) {
    const p = Math.round((i * side) / img.grid) + 0.5;
    g.beginPath();
    g.moveTo(p, 0);
    g.lineTo(p, side);
    g.moveTo(0, p);
    g.lineTo(side, p);
    g.stroke();
  }
}
