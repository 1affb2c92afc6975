// The web UI's pieces without a browser: the HTML template helper escapes what it is given, the wizard picks
// its steps in upstream's order (image-factory internal/frontend/http/ui.go wizard()), and the choices make
// the schematic upstream's ToSchematic makes (extensions sorted, "auto" boot loader left out).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import YAML from "yaml";
import { isAppError } from "../../src/errors.ts";
import { html, raw } from "../../src/factory/ui/html.ts";
import { applySchematic, nextStep, schematicYaml, wizardParamsFrom } from "../../src/factory/ui/wizard-state.ts";
import { parseSchematic } from "../../src/talos/schematic.ts";

const params = (query: string) => wizardParamsFrom(new URLSearchParams(query));

describe("web UI: html", () => {
  it("escapes interpolations, keeps markup made by html or raw, joins arrays, drops null and false", () => {
    const name = `<script>alert("x")</script> & 'y'`;
    assert.equal(
      html`<p title="${name}">${name}</p>`.text,
      `<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;</p>`,
    );
    assert.equal(
      html`<ul>${["a<", "b"].map((i) => html`<li>${i}</li>`)}</ul>`.text,
      "<ul><li>a&lt;</li><li>b</li></ul>",
    );
    assert.equal(html`${raw("<br>")}${null}${undefined}${false}${0}`.text, "<br>0");
  });
});

describe("web UI: wizard state", () => {
  it("takes the steps in upstream's order", () => {
    assert.equal(nextStep(params("")), "target");
    assert.equal(nextStep(params("target=moon")), "target");
    assert.equal(nextStep(params("target=metal")), "version");
    assert.equal(nextStep(params("target=cloud&version=1.10.3")), "platform");
    assert.equal(nextStep(params("target=sbc&version=1.10.3")), "board");
    assert.equal(nextStep(params("target=metal&version=1.10.3")), "arch");
    assert.equal(nextStep(params("target=metal&version=1.10.3&arch=amd64")), "extensions");
    assert.equal(nextStep(params("target=metal&version=1.10.3&arch=amd64&extensions=-")), "customization");
    assert.equal(nextStep(params("target=metal&version=1.10.3&arch=amd64&extensions=-&filter=1")), "extensions");
    assert.equal(nextStep(params("target=metal&version=1.10.3&arch=amd64&extensions=-&cmdline-set=1")), "result");
  });

  it("makes upstream's schematic: extensions sorted, args split, no bootloader for auto, the overlay", () => {
    const p = params(
      "target=sbc&extensions=-&extensions=siderolabs/z&extensions=siderolabs/a&cmdline=%20a=1%20%20b%20&bootloader=auto&overlay-options=k:%20v",
    );
    const doc = YAML.parse(schematicYaml(p, { name: "rpi_generic", image: "siderolabs/sbc-raspberrypi" }));
    assert.deepEqual(doc, {
      customization: {
        extraKernelArgs: ["a=1", "b"],
        systemExtensions: { officialExtensions: ["siderolabs/a", "siderolabs/z"] },
      },
      overlay: { image: "siderolabs/sbc-raspberrypi", name: "rpi_generic", options: { k: "v" } },
    });
    assert.deepEqual(YAML.parse(schematicYaml(params("extensions=-&bootloader=sd-boot"), undefined)), {
      customization: { bootloader: "sd-boot" },
    });
  });

  it("refuses overlay options that are not a mapping (400) and keeps a reopened schematic's META", () => {
    assert.throws(
      () => schematicYaml(params("overlay-options=-%20a"), { name: "b", image: "i" }),
      (err) => isAppError(err, "BadRequest"),
    );
    const base = "customization:\n  extraKernelArgs: [old]\n  meta:\n    - key: 12\n      value: x\n";
    const p = params("edit=1&extensions=-&cmdline=new");
    applySchematic(p, parseSchematic(base), base);
    assert.deepEqual(YAML.parse(schematicYaml(p, undefined, base)), {
      customization: { extraKernelArgs: ["new"], meta: [{ key: 12, value: "x" }] },
    });
  });

  it("reopens a schematic as upstream: its values as the choices, or as defaults when editing", () => {
    const yaml =
      "customization:\n  extraKernelArgs: [a, b]\n  systemExtensions:\n    officialExtensions: [siderolabs/x]\n";
    const chosen = params("target=metal");
    applySchematic(chosen, parseSchematic(yaml), yaml);
    assert.deepEqual([chosen.extensions, chosen.cmdline, chosen.cmdlineSet], [["siderolabs/x"], "a b", true]);
    const edited = params("target=metal&edit=1");
    applySchematic(edited, parseSchematic(yaml), yaml);
    assert.deepEqual([edited.extensions, edited.cmdlineSet], [[], false]);
    assert.deepEqual([edited.selected.extensions, edited.selected.cmdline], [["siderolabs/x"], "a b"]);
  });
});
