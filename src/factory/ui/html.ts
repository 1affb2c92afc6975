// A minimal HTML template helper for the web UI: `html` is a tagged template whose interpolations are escaped
// unless they are already `Html` (the result of another `html` or `raw`). Arrays are joined, and null,
// undefined and false render as nothing, so conditionals and lists read naturally:
//   html`<li>${name}</li>`    html`${items.map((i) => html`<li>${i}</li>`)}`    html`${cond && html`<b>x</b>`}`

/** Markup that is safe to emit as is. */
export class Html {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
  toString(): string {
    return this.text;
  }
}

const replacements: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escapes text for an HTML text node or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => replacements[c] as string);
}

export type HtmlValue = Html | string | number | boolean | null | undefined | readonly HtmlValue[];

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false) return "";
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(render).join("");
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): Html {
  let out = strings[0] as string;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + (strings[i + 1] as string);
  return new Html(out);
}

/** Trusted markup (constants written in this code base only, never input). */
export function raw(text: string): Html {
  return new Html(text);
}
