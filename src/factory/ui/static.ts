// The web UI's stylesheet and script, served as files (the pages' Content-Security-Policy allows no inline
// code). The stylesheet follows prefers-color-scheme; colours keep WCAG AA contrast in both schemes. The script
// is progressive enhancement only: copy buttons and the live extension filter; every form works without it.

export const stylesheet = `:root {
  color-scheme: light dark;
  --bg: #ffffff; --fg: #1a1d23; --muted: #4a5160; --line: #c9ced8; --panel: #f3f5f8;
  --accent: #0b5cad; --accent-fg: #ffffff; --accent-hover: #084a8c; --focus: #b35900;
  --note-bg: #fff6db; --note-line: #c99a00; --error-bg: #fdecec; --error-line: #b3261e; --badge: #6b3fa0;
  --done: #1f7a3a;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #14171c; --fg: #e8eaee; --muted: #b4bac5; --line: #3d4450; --panel: #1e232b;
    --accent: #6cb3ff; --accent-fg: #0b1220; --accent-hover: #9ccbff; --focus: #ffb45c;
    --note-bg: #3a3015; --note-line: #d8b23a; --error-bg: #3d1a1a; --error-line: #ff8a80; --badge: #c9a7ff;
    --done: #7ddc98;
  }
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0 auto; max-width: 60rem; padding: 0 1rem 2rem; background: var(--bg); color: var(--fg);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
a { color: var(--accent); }
a:hover { color: var(--accent-hover); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
code, .mono, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
code { overflow-wrap: anywhere; }
.skip { position: absolute; left: -999px; top: 0; }
.skip:focus { left: 1rem; background: var(--bg); padding: .5rem; z-index: 1; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
header.site { border-bottom: 1px solid var(--line); padding: 1rem 0 .5rem; }
.brand { font-size: 1.3rem; font-weight: 700; margin: 0; }
.brand a { color: var(--fg); text-decoration: none; }
.tagline { margin: .25rem 0 0; color: var(--muted); }
.progress { display: flex; flex-wrap: wrap; gap: .25rem .5rem; list-style: none; padding: 0; margin: 1rem 0; font-size: .85rem; }
.progress li { padding: .15rem .6rem; border: 1px solid var(--line); border-radius: 1rem; color: var(--muted); }
.progress li.done { color: var(--done); border-color: var(--done); }
.progress li.current { color: var(--accent-fg); background: var(--accent); border-color: var(--accent); font-weight: 600; }
h1 { font-size: 1.6rem; margin: 1rem 0; }
h2 { font-size: 1.25rem; margin: 1.5rem 0 .5rem; }
fieldset { border: 0; padding: 0; margin: 0 0 1rem; min-width: 0; }
legend { font-weight: 600; margin-bottom: .5rem; padding: 0; }
.choice { display: grid; grid-template-columns: auto 1fr; gap: 0 .6rem; align-items: start; padding: .5rem 0; }
.choice input { margin-top: .3rem; width: 1.1rem; height: 1.1rem; accent-color: var(--accent); }
.choice label { font-weight: 600; cursor: pointer; }
.choice .hint { grid-column: 2; margin: 0; }
.hint { color: var(--muted); font-size: .9rem; }
.field { margin: 0 0 1.25rem; }
.field label { display: block; font-weight: 600; margin-bottom: .3rem; }
input[type=search], input:not([type]), select, textarea { width: 100%; max-width: 40rem; padding: .5rem .6rem; font: inherit;
  color: var(--fg); background: var(--panel); border: 1px solid var(--muted); border-radius: .4rem; }
select { width: auto; min-width: 16rem; }
textarea { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .9rem; }
.search { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin-bottom: .5rem; }
.search label { width: 100%; font-weight: 600; }
.search input { flex: 1 1 16rem; }
.extensions { max-height: 32rem; overflow-y: auto; border: 1px solid var(--line); border-radius: .4rem; padding: .5rem .75rem; }
.tag { color: var(--muted); font-weight: 400; font-size: .9rem; }
.badge { font-size: .75rem; font-weight: 600; color: var(--badge); border: 1px solid var(--badge); border-radius: .3rem; padding: 0 .3rem; }
.author { font-style: italic; }
.buttons { display: flex; flex-wrap: wrap; gap: .75rem; margin-top: 1.5rem; }
button, .button { font: inherit; font-weight: 600; padding: .55rem 1.1rem; border-radius: .4rem; cursor: pointer;
  text-decoration: none; display: inline-block; border: 1px solid var(--accent); }
button.primary { background: var(--accent); color: var(--accent-fg); }
button.primary:hover { background: var(--accent-hover); }
button.secondary, .button.secondary, button.copy { background: transparent; color: var(--accent); }
button.copy { padding: .15rem .6rem; font-size: .85rem; }
button.copy[data-copied] { color: var(--done); border-color: var(--done); }
.note { background: var(--note-bg); border-left: 4px solid var(--note-line); padding: .6rem .9rem; border-radius: .3rem; }
.error { background: var(--error-bg); border-left: 4px solid var(--error-line); padding: .6rem .9rem; border-radius: .3rem; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: .5rem; padding: .25rem 1rem 1rem; }
.copyable { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: .25rem 0 .75rem; }
.copyable code { background: var(--panel); border: 1px solid var(--line); padding: .2rem .45rem; border-radius: .3rem; }
pre.yaml { background: var(--bg); border: 1px solid var(--line); padding: .75rem; border-radius: .4rem; overflow-x: auto; }
table.assets { border-collapse: collapse; width: 100%; }
table.assets th, table.assets td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
table.assets td a { overflow-wrap: anywhere; }
footer { margin-top: 3rem; border-top: 1px solid var(--line); color: var(--muted); font-size: .85rem; }
@media (max-width: 40rem) {
  body { font-size: 15px; }
  table.assets th { display: block; border: 0; padding-bottom: 0; }
  table.assets td { display: inline-block; }
}
`;

export const script = `"use strict";
(function () {
  function copy(button, text) {
    var done = function () {
      button.setAttribute("data-copied", "");
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.removeAttribute("data-copied"); button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, function () {});
    else {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy"); done(); } catch (e) {}
      document.body.removeChild(area);
    }
  }
  document.querySelectorAll("button[data-copy], button[data-copy-from]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var from = button.getAttribute("data-copy-from");
      var source = from ? document.querySelector(from) : null;
      copy(button, source ? source.textContent : button.getAttribute("data-copy"));
    });
  });
  document.querySelectorAll("input[data-filter]").forEach(function (input) {
    var items = document.querySelectorAll(input.getAttribute("data-filter"));
    var status = document.createElement("p");
    status.className = "hint";
    status.setAttribute("role", "status");
    input.parentNode.appendChild(status);
    var apply = function () {
      var query = input.value.trim().toLowerCase();
      var shown = 0;
      items.forEach(function (item) {
        var box = item.querySelector("input");
        var match = query === "" || (box && box.checked) || item.textContent.toLowerCase().indexOf(query) >= 0;
        item.hidden = !match;
        if (match) shown++;
      });
      status.textContent = query === "" ? "" : shown + " of " + items.length + " extensions shown";
    };
    input.addEventListener("input", apply);
    input.addEventListener("keydown", function (event) { if (event.key === "Enter") { event.preventDefault(); apply(); } });
    apply();
  });
})();
`;
