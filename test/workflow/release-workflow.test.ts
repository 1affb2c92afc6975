// The release workflow (.github/workflows/boot-assets.yaml, docs/release-workflow.md) cannot run here — it needs
// GitHub's runners, the vendor's builds and an OIDC token — so it is checked by what can read it:
// - GitHub's own workflow parser (@actions/workflow-parser, from actions/languageservices) finds no error in it;
// - every `run:` script passes shellcheck (bash, as GitHub runs them), with `${{ … }}` stood in by a word;
// - every `boot-assets` command it runs exists, with every option it passes (read from the CLI's own program);
// - the dispatch inputs and permissions are those the release process needs (keyless signing needs id-token).

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { parse } from "yaml";
import { convertWorkflowTemplate, NoOperationTraceWriter, parseWorkflow } from "./workflow-parser.ts";

const run = promisify(execFile);
const main = new URL("../../src/cli/main.ts", import.meta.url).pathname;
const path = new URL("../../.github/workflows/boot-assets.yaml", import.meta.url);

interface Step {
  name?: string;
  run?: string;
  uses?: string;
}
interface Workflow {
  on: { workflow_dispatch: { inputs: Record<string, { type?: string; required?: boolean }> } };
  permissions: Record<string, string>;
  jobs: Record<string, { steps: Step[]; needs?: string | string[] }>;
}

async function load(): Promise<{ text: string; workflow: Workflow }> {
  const text = await readFile(path, "utf8");
  return { text, workflow: parse(text) as Workflow };
}

function scripts(workflow: Workflow): { where: string; script: string }[] {
  return Object.entries(workflow.jobs).flatMap(([job, { steps }]) =>
    steps
      .filter((s) => s.run !== undefined)
      .map((s) => ({ where: `${job}: ${s.name ?? "run"}`, script: s.run as string })),
  );
}

/** The `boot-assets …` invocations of a script, continuation lines joined, split into words (quotes removed). */
function invocations(script: string): string[][] {
  const joined = script.replace(/\\\n\s*/g, " ");
  const found: string[][] = [];
  for (const line of joined.split("\n")) {
    const at = line.indexOf("npx --prefix boot-assets boot-assets ");
    if (at < 0) continue;
    const rest = line.slice(at + "npx --prefix boot-assets boot-assets ".length).replace(/[;>|].*$/, "");
    found.push((rest.match(/"[^"]*"|'[^']*'|\S+/g) ?? []).map((w) => w.replace(/^["']|["']$/g, "")));
  }
  return found;
}

describe("the release workflow", () => {
  it("has no error for GitHub's workflow parser", async () => {
    const { text } = await load();
    const parsed = parseWorkflow({ name: "boot-assets.yaml", content: text }, new NoOperationTraceWriter());
    assert.deepEqual(
      parsed.context.errors.getErrors().map((e) => e.message),
      [],
    );
    assert.ok(parsed.value, "a workflow template");
    const template = await convertWorkflowTemplate(parsed.context, parsed.value);
    assert.deepEqual(
      (template.errors ?? []).map((e) => e.Message),
      [],
    );
    assert.deepEqual(
      template.jobs.map((j) => j.id.value),
      ["prepare", "pkgs", "extensions", "talos"],
    );
  });

  it("the parser does find errors (a misspelt key, a bad expression)", () => {
    const broken =
      "on: workflow_dispatch\njobs:\n  a:\n    runs-onn: ubuntu-24.04\n    steps:\n      - run: echo $" +
      "{{ inputs. }}\n";
    const parsed = parseWorkflow({ name: "broken.yaml", content: broken }, new NoOperationTraceWriter());
    assert.ok(
      parsed.context.errors.getErrors().length >= 2,
      parsed.context.errors
        .getErrors()
        .map((e) => e.message)
        .join("; "),
    );
  });

  it("every run script passes shellcheck", async () => {
    const { workflow } = await load();
    const all = scripts(workflow);
    assert.ok(all.length >= 8, `${all.length} scripts`);
    for (const { where, script } of all) {
      const body = `#!/usr/bin/env bash\nset -e\n${script.replace(/\$\{\{[^}]*\}\}/g, "GHA_EXPRESSION")}`;
      const checked = await new Promise<string>((resolve) => {
        const child = execFile("shellcheck", ["-s", "bash", "-f", "gcc", "-"], { encoding: "utf8" }, (_e, out) =>
          resolve(out),
        );
        child.stdin?.end(body);
      });
      assert.equal(checked, "", `${where}:\n${checked}`);
    }
  });

  it("every boot-assets command it runs exists with the options given", async () => {
    const { workflow } = await load();
    const used = new Map<string, Set<string>>();
    for (const { script } of scripts(workflow))
      for (const words of invocations(script)) {
        const first = words.findIndex((w) => w.startsWith("-") || w.includes("/") || w.includes("$"));
        // Commands are one or two words (`sign`, `extension build`); the rest are arguments and options.
        const command = words.slice(0, first < 0 ? words.length : Math.min(first, 2)).join(" ");
        const flags = used.get(command) ?? new Set<string>();
        for (const w of words) if (w.startsWith("--")) flags.add(w.replace(/=.*$/, ""));
        used.set(command, flags);
      }
    assert.deepEqual([...used.keys()].sort(), ["catalog merge", "extension build", "kernel-config merge", "sign"]);
    for (const [command, flags] of used) {
      // Commander's help lists every option of the command: an unknown command or option fails here.
      const { stdout } = await run(process.execPath, [main, ...command.split(" "), "--help"], { encoding: "utf8" });
      assert.match(stdout, new RegExp(`^Usage: boot-assets ${command} `, "m"), command);
      for (const flag of flags) assert.match(stdout, new RegExp(`${flag}\\b`), `boot-assets ${command} has no ${flag}`);
    }
  });

  it("takes the dispatch inputs of the release process and may sign keylessly", async () => {
    const { workflow } = await load();
    const inputs = workflow.on.workflow_dispatch.inputs;
    assert.deepEqual(Object.keys(inputs), [
      "release_tag",
      "siderolabs_tag",
      "build_pkgs",
      "build_extensions",
      "build_talos",
    ]);
    assert.deepEqual(
      ["build_pkgs", "build_extensions", "build_talos"].map((k) => inputs[k]?.type),
      ["boolean", "boolean", "boolean"],
    );
    assert.deepEqual(workflow.permissions, { contents: "read", packages: "write", "id-token": "write" });
  });
});
