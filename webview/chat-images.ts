/**
 * The chat's image controls: the attach button, the image waiting to be sent (thumbnail, name, ×),
 * and what a drop or a paste of an image does. A picture from the clipboard or the desktop has no
 * path the host could use, so its bytes go to the host (base64), after the same checks the host
 * makes (image-rules.ts), so that a wrong file is answered at once, before megabytes travel. A file
 * dragged from the Explorer or an editor tab arrives as a URI, which the host reads itself.
 */
import type { ChatImage } from "../extension/messages";
import { imageFormat, imageName, imageSizeProblem } from "../extension/image-rules";
import { button, h } from "./ui";

const SVG = "http://www.w3.org/2000/svg";

/** The attach button: an icon button whose accessible name is "Attach image". */
export function attachButton(onClick: () => void): HTMLElement & { disabled: boolean } {
  const el = button("", onClick, { icon: true, title: "Attach image", id: "attach-image" });
  // A picture frame with a mountain and a sun, drawn in the button's own colour.
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("width", "16");
  svg.setAttribute("height", "16");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("fill", "currentColor");
  path.setAttribute(
    "d",
    "M2 2h12a1 1 0 0 1 1 1v10a1 1 0 0 1-1 1H2a1 1 0 0 1-1-1V3a1 1 0 0 1 1-1zm0 1v7.3l3.2-3.2a.5.5 0 0 1 .7 0L9 10.2l1.6-1.6a.5.5 0 0 1 .7 0L14 11.3V3H2zm0 8.7V13h12v-.3l-3-3-1.6 1.6a.5.5 0 0 1-.7 0L5.5 8.2 2 11.7zM11 5a1 1 0 1 1 0 2 1 1 0 0 1 0-2z",
  );
  svg.append(path);
  el.append(svg);
  return el;
}

/** The image attached for the next question: thumbnail, name and a × that removes it. */
export function pendingImageView(onRemove: () => void): { el: HTMLElement; show(image: ChatImage | undefined): void } {
  const el = h("div", "pending-image");
  el.id = "pending-image";
  const img = h("img", "pending-thumb");
  const name = h("span", "pending-name");
  const remove = h("button", "remove-image", "×");
  remove.type = "button";
  remove.id = "remove-image";
  remove.title = "Remove the image";
  remove.setAttribute("aria-label", "Remove the image");
  remove.addEventListener("click", onRemove);
  el.append(img, name, remove);
  el.hidden = true;
  let shown = "";
  return {
    el,
    show(image) {
      el.hidden = image === undefined;
      if (!image) return;
      name.textContent = image.name;
      name.title = `${image.name}: goes with your next question and stays the conversation's image`;
      img.alt = `Image to send: ${image.name}`;
      // Set src only when it changes: the image would be fetched again at every state.
      if (image.src && image.src !== shown) img.src = shown = image.src;
    },
  };
}

export interface DropHandlers {
  takesImages(): boolean;
  /** A picture's bytes (base64) and its file name. */
  bytes(name: string, data: string): void;
  /** A file the editor knows by URI. */
  uri(uri: string): void;
  /** Why nothing was attached, for the chat's status line. */
  problem(message: string): void;
}

const NOT_MULTIMODAL = "this adapter does not take images: choose a multimodal adapter (one trained with a vision encoder) to ask about a picture";
const URI_TYPES = ["application/vnd.code.uri-list", "text/uri-list"];

/** Drops onto `target` and pastes anywhere in the view. */
export function imageDrop(target: HTMLElement, on: DropHandlers): void {
  const carriesFiles = (d: DataTransfer | null) => !!d && (d.types.includes("Files") || URI_TYPES.some((t) => d.types.includes(t)));
  // Taken on dragenter too: a drag the view leaves unclaimed there is reported to VS Code, which lays
  // its editor-drop overlay over the view and keeps it until the drag ends in the workbench.
  target.addEventListener("dragenter", (e) => {
    if (carriesFiles(e.dataTransfer)) e.preventDefault();
  });
  target.addEventListener("dragover", (e) => {
    if (!carriesFiles(e.dataTransfer)) return;
    e.preventDefault();
    e.dataTransfer!.dropEffect = "copy";
    target.classList.add("dropping");
  });
  target.addEventListener("dragleave", (e) => {
    if (e.relatedTarget === null || !target.contains(e.relatedTarget as Node)) target.classList.remove("dropping");
  });
  target.addEventListener("drop", (e) => {
    target.classList.remove("dropping");
    const d = e.dataTransfer;
    if (!carriesFiles(d)) return;
    e.preventDefault();
    if (!on.takesImages()) return on.problem(NOT_MULTIMODAL);
    const file = d!.files[0];
    if (file) return void sendFile(file, on);
    const uri = URI_TYPES.map((t) => d!.getData(t)).find((v) => v.trim() !== "");
    const first = uri
      ?.split(/\r?\n/)
      .map((l) => l.trim())
      .find((l) => l !== "" && !l.startsWith("#"));
    if (first) on.uri(first);
  });
  document.addEventListener("paste", (e) => {
    const items = Array.from(e.clipboardData?.items ?? []);
    const image = items.find((i) => i.kind === "file" && i.type.startsWith("image/"))?.getAsFile();
    if (!image) return; // text pastes as text
    const text = items.some((i) => i.kind === "string" && i.type === "text/plain");
    if (!on.takesImages()) {
      if (!text) on.problem(NOT_MULTIMODAL);
      return;
    }
    e.preventDefault();
    void sendFile(image, on);
  });
}

/** Checks a file as the host would, then sends its bytes. */
async function sendFile(file: File, on: DropHandlers): Promise<void> {
  const name = imageName(file.name || `pasted.${file.type.split("/")[1] ?? "png"}`);
  const tooBig = imageSizeProblem(name, file.size);
  if (tooBig) return on.problem(`could not attach the image: ${tooBig}`);
  const head = new Uint8Array(await file.slice(0, 8).arrayBuffer());
  if (!imageFormat(head)) return on.problem(`could not attach the image: ${name} is not a PNG or JPEG image`);
  const url = await new Promise<string>((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error ?? new Error("cannot read the file"));
    reader.readAsDataURL(file);
  }).catch((e: Error) => e);
  if (url instanceof Error) return on.problem(`could not attach the image: ${name}: ${url.message}`);
  on.bytes(name, url.slice(url.indexOf(",") + 1));
}
