/**
 * The one module that knows the component library. Every view builds its controls through these
 * functions, so replacing @vscode/webview-ui-toolkit (archived in January 2025) with its
 * maintained successor @vscode-elements/elements means rewriting this file only.
 */
import {
  provideVSCodeDesignSystem,
  vsCodeButton,
  vsCodeCheckbox,
  vsCodeDivider,
  vsCodeDropdown,
  vsCodeOption,
  vsCodeProgressRing,
  vsCodeRadio,
  vsCodeRadioGroup,
  vsCodeTextArea,
  vsCodeTextField,
} from "@vscode/webview-ui-toolkit";

provideVSCodeDesignSystem().register(
  vsCodeButton(),
  vsCodeCheckbox(),
  vsCodeDivider(),
  vsCodeDropdown(),
  vsCodeOption(),
  vsCodeProgressRing(),
  vsCodeRadio(),
  vsCodeRadioGroup(),
  vsCodeTextArea(),
  vsCodeTextField(),
);

/** A form control as the views use it: its element, and its value read and written as text. */
export interface Control {
  el: HTMLElement;
  value: string;
}

function attrs(el: HTMLElement, a: Record<string, string | undefined>): void {
  for (const [k, v] of Object.entries(a)) if (v !== undefined) el.setAttribute(k, v);
}

export function button(label: string, onClick: () => void, opts: { secondary?: boolean; icon?: boolean; title?: string; id?: string } = {}): HTMLElement & { disabled: boolean } {
  const el = document.createElement("vscode-button") as HTMLElement & { disabled: boolean };
  attrs(el, { appearance: opts.icon ? "icon" : opts.secondary ? "secondary" : "primary", title: opts.title, "aria-label": opts.title ?? label, id: opts.id });
  el.textContent = label;
  el.addEventListener("click", () => {
    if (!el.disabled) onClick();
  });
  return el;
}

/** `afterSet`: what a programmatic change must also do (a growing text area refits its box). */
function valueControl(el: HTMLElement & { value: string }, afterSet?: () => void): Control {
  return {
    el,
    get value() {
      return el.value;
    },
    set value(v: string) {
      el.value = v;
      afterSet?.();
    },
  };
}

export function textField(label: string, opts: { value?: string; placeholder?: string; id?: string; size?: number; onChange?: () => void } = {}): Control {
  const el = document.createElement("vscode-text-field") as HTMLElement & { value: string };
  attrs(el, { placeholder: opts.placeholder, id: opts.id, size: opts.size?.toString() });
  el.textContent = label;
  el.value = opts.value ?? "";
  if (opts.onChange) el.addEventListener("change", opts.onChange);
  return valueControl(el);
}

/**
 * A multi-line text field. `grow`: the box starts one line high and grows with its text (up to
 * the CSS max-height of its `control` part), as chat inputs do. `hideLabel`: the label is only
 * read out, not shown (a placeholder says what to type).
 */
export function textArea(label: string, opts: { value?: string; placeholder?: string; id?: string; rows?: number; grow?: boolean; hideLabel?: boolean; onKeydown?: (e: KeyboardEvent) => void } = {}): Control {
  const el = document.createElement("vscode-text-area") as HTMLElement & { value: string; control?: HTMLTextAreaElement };
  attrs(el, { placeholder: opts.placeholder, id: opts.id, rows: String(opts.rows ?? 3), resize: opts.grow ? "none" : "vertical", "aria-label": opts.hideLabel ? label : undefined });
  if (!opts.hideLabel) el.textContent = label;
  el.value = opts.value ?? "";
  if (opts.onKeydown) el.addEventListener("keydown", opts.onKeydown as EventListener);
  const fit = () => {
    const box = el.control;
    if (!box) return;
    box.style.height = "auto";
    box.style.height = `${box.scrollHeight + box.offsetHeight - box.clientHeight}px`;
  };
  if (opts.grow) {
    el.addEventListener("input", fit);
    // The inner textarea exists once the component has rendered; its width changes with the view's.
    requestAnimationFrame(fit);
    new ResizeObserver(() => fit()).observe(el);
  }
  return valueControl(el, opts.grow ? () => requestAnimationFrame(fit) : undefined);
}

export type DropdownOption = [value: string, label: string, extra?: OptionExtra];

/** An option that cannot be chosen (`disabled`) or explains itself on hover (`title`). */
export interface OptionExtra {
  disabled?: boolean;
  title?: string;
}

/** A labelled dropdown; `options` are [value, label] pairs, with an OptionExtra where needed. */
export function dropdown(label: string, options: DropdownOption[], opts: { value?: string; id?: string; onChange?: (v: string) => void } = {}): Control & { setOptions(o: DropdownOption[], value: string): void } {
  const wrap = document.createElement("div");
  wrap.className = "field";
  const lab = document.createElement("label");
  lab.textContent = label;
  const el = document.createElement("vscode-dropdown") as HTMLElement & { value: string };
  const id = opts.id ?? `dd-${Math.random().toString(36).slice(2)}`;
  el.id = id;
  lab.htmlFor = id;
  el.setAttribute("aria-label", label);
  let current = "";
  const fill = (o: DropdownOption[], value: string) => {
    // Rebuilding the options resets the component's selection while it re-reads them, so rebuild only on change.
    const key = JSON.stringify(o);
    if (key === current) {
      if (el.value !== value) el.value = value;
      return;
    }
    current = key;
    el.replaceChildren(
      ...o.map(([v, l, extra]) => {
        const opt = document.createElement("vscode-option") as HTMLElement & { value: string };
        opt.setAttribute("value", v);
        opt.textContent = l;
        if (extra?.disabled) opt.setAttribute("disabled", "");
        if (extra?.title) opt.title = extra.title;
        if (v === value) opt.setAttribute("selected", "");
        return opt;
      }),
    );
    el.value = value;
    requestAnimationFrame(() => {
      if (el.value !== value) el.value = value;
    });
  };
  fill(options, opts.value ?? options[0]?.[0] ?? "");
  if (opts.onChange) el.addEventListener("change", () => opts.onChange!(el.value));
  wrap.append(lab, el);
  return {
    el: wrap,
    get value() {
      return el.value;
    },
    set value(v: string) {
      el.value = v;
    },
    setOptions: fill,
  };
}

export function checkbox(label: string, opts: { checked?: boolean; id?: string; onChange?: (v: boolean) => void } = {}): { el: HTMLElement; checked: boolean } {
  const el = document.createElement("vscode-checkbox") as HTMLElement & { checked: boolean };
  if (opts.id) el.id = opts.id;
  el.textContent = label;
  el.checked = opts.checked ?? false;
  if (opts.onChange) el.addEventListener("change", () => opts.onChange!(el.checked));
  return {
    el,
    get checked() {
      return el.checked;
    },
    set checked(v: boolean) {
      el.checked = v;
    },
  };
}

/** Radio buttons; `options` are [value, label] pairs. */
export function radioGroup(label: string, options: [string, string][], value: string, onChange: (v: string) => void, id?: string): Control {
  const el = document.createElement("vscode-radio-group") as HTMLElement & { value: string };
  if (id) el.id = id;
  const lab = document.createElement("label");
  lab.slot = "label";
  lab.textContent = label;
  el.append(
    lab,
    ...options.map(([v, l]) => {
      const r = document.createElement("vscode-radio");
      r.setAttribute("value", v);
      r.textContent = l;
      if (v === value) r.setAttribute("checked", "");
      return r;
    }),
  );
  el.addEventListener("change", () => onChange(el.value));
  return valueControl(el);
}

export function progressRing(): HTMLElement {
  const el = document.createElement("vscode-progress-ring");
  el.setAttribute("aria-label", "working");
  return el;
}

export function divider(): HTMLElement {
  return document.createElement("vscode-divider");
}

/** A plain element with a class and text: the views' layout is ordinary HTML. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A wrapping row of controls (the views' one layout helper). */
export function row(...children: HTMLElement[]): HTMLElement {
  const r = h("div", "row");
  r.append(...children);
  return r;
}
