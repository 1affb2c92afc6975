// The web UI (src/factory/http/ui-routes.ts) in a real browser: Debian's Chromium driven by playwright-core,
// against the factory on the test bed release. Upstream's wizard (image-factory internal/frontend/http/ui.go,
// templates/wizard-*.html) is the reference for its steps, field names and the `?schematic-id=` reopen.
//   - mouse, JavaScript on: bare metal, v1.10.3, amd64, two extensions (found with the live filter), a kernel
//     arg → the result page; its ID is what POST /schematics answers for the same schematic, its ISO link
//     answers 200 with an ISO 9660 image; a screenshot of every step; an axe-core scan of every page;
//   - JavaScript off, a phone's viewport: a single-board computer with the test bed overlay, the server-side extension filter,
//     overlay options; then `?schematic-id=` reopens the wizard and lands on the same schematic;
//   - keyboard only, dark colour scheme: Tab, Space, Enter through every step, the copy button, axe again;
//   - served under the -external-url's path; cloud platforms; extensions a version lacks explained;
//   - errors as pages with the API's statuses: an unknown version 404, a malformed one 400, an extension the
//     version does not offer 400, the registry gone 502.
// Screenshots go to test-artifacts/web-ui/ (README.md, "The web UI").

import assert from "node:assert/strict";
import { mkdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";
import { TestbedExtension } from "../../src/testbed/extensions.ts";
import { testbedOverlay, testbedOverlayRepository } from "../../src/testbed/release-overlay.ts";
import { freePort } from "../harness/ports.ts";
import {
  createSchematic,
  type FactoryUnderTest,
  type PublishedTestbed,
  publishTestbed,
  seedArgv,
  startFactoryUnderTest,
  waitFor200,
} from "./service-harness.ts";

const chromiumPath = "/usr/bin/chromium";
const artifacts = join(process.cwd(), "test-artifacts", "web-ui");
const version = "v1.10.3";
const dummy = `siderolabs/${TestbedExtension.module}`;
const hello = `siderolabs/${TestbedExtension.service}`;

let testbed: PublishedTestbed | undefined;
let factory: FactoryUnderTest;
let base: string;
let browser: Browser;
let axeSource: string;

/** The seed command line with the factory on a known port and -external-url pointing at it, so links work. */
function argvOn(published: PublishedTestbed, port: number) {
  return (keys: Parameters<typeof seedArgv>[1], dataDir: string) => {
    const argv = seedArgv(published, keys, dataDir);
    argv[argv.indexOf("-external-url") + 1] = `http://127.0.0.1:${port}/`;
    argv[argv.indexOf("-http-port") + 1] = `127.0.0.1:${port}`;
    return argv;
  };
}

before(async () => {
  await mkdir(artifacts, { recursive: true });
  testbed = await publishTestbed();
  factory = await startFactoryUnderTest(argvOn(testbed, await freePort()));
  base = factory.factory.url.replace(/\/$/, "");
  await waitFor200(`${base}/versions`);
  axeSource = await readFile(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ["--no-sandbox"] });
});
after(async () => {
  await browser?.close();
  await factory?.stop();
  await testbed?.stop();
});

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

/** axe-core's WCAG 2 A/AA rules on the page: no serious or critical violation. */
async function axeScan(page: Page, what: string): Promise<void> {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(o: unknown): Promise<{ violations: AxeViolation[] }> } }).axe;
    const result = await axe.run({
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21aa", "best-practice"] },
    });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target) }));
  });
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad, [], `${what}: ${JSON.stringify(bad)}`);
}
interface AxeViolation {
  id: string;
  impact: string;
  nodes: Array<{ target: unknown }>;
}

/** What the page's clipboard holds (the browser's DOM types are not in this project's lib). */
function clipboardText(page: Page): Promise<string> {
  return page.evaluate("navigator.clipboard.readText()") as Promise<string>;
}

function focusedMatches(page: Page, selector: string): Promise<boolean> {
  return page.evaluate(`document.activeElement?.matches(${JSON.stringify(selector)}) ?? false`) as Promise<boolean>;
}

async function heading(page: Page): Promise<string> {
  return (await page.locator("main h1").textContent()) ?? "";
}

async function resultId(page: Page): Promise<string> {
  return ((await page.locator("#schematic-id code").textContent()) ?? "").trim();
}

describe("web UI", () => {
  let firstId = "";
  let isoDownload: Promise<{ status: number; type: string; bytes: Buffer }> | undefined;

  it("walks the wizard with the mouse: version, two extensions, a kernel arg; the ID is the API's", async () => {
    const context = await browser.newContext({ bypassCSP: true, viewport: { width: 1100, height: 900 } });
    const page = await context.newPage();
    const response = await page.goto(`${base}/`);
    assert.equal(response?.status(), 200);
    assert.equal(await heading(page), "Hardware type");
    assert.match(response?.headers()["content-security-policy"] ?? "", /script-src 'self'/);
    await shot(page, "01-target");
    await axeScan(page, "target step");
    await page.getByLabel("Bare-metal machine").check();
    await page.getByRole("button", { name: "Next" }).click();

    assert.equal(await heading(page), "Talos version");
    assert.equal(await page.locator("#version").inputValue(), "1.13.9", "the newest stable release is the default");
    await page.selectOption("#version", version.slice(1));
    await shot(page, "02-version");
    await axeScan(page, "version step");
    await page.getByRole("button", { name: "Next" }).click();

    assert.equal(await heading(page), "Architecture");
    await page.getByLabel("amd64").check();
    await shot(page, "03-arch");
    await axeScan(page, "architecture step");
    await page.getByRole("button", { name: "Next" }).click();

    assert.equal(await heading(page), "System extensions");
    const all = await page.locator(".extension").count();
    await page.getByLabel("Search extensions").fill("hello");
    assert.equal(await page.locator(".extension:visible").count(), 1, "the live filter leaves one");
    await page.getByLabel(hello).check();
    await page.getByLabel("Search extensions").fill("");
    assert.equal(await page.locator(".extension:visible").count(), all);
    await page.getByLabel(dummy).check();
    assert.match((await page.locator(".extension").first().textContent()) ?? "", /boot-assets test bed/, "the author");
    await shot(page, "04-extensions");
    await axeScan(page, "extensions step");
    await page.getByRole("button", { name: "Next" }).click();

    assert.equal(await heading(page), "Customization");
    await page.getByLabel("Extra kernel arguments").fill("console=ttyS0 talos.dashboard.disabled=1");
    await shot(page, "05-customization");
    await axeScan(page, "customization step");
    await page.getByRole("button", { name: "Next" }).click();

    assert.equal(await heading(page), "Your image");
    await shot(page, "06-result");
    await axeScan(page, "result page");
    const id = await resultId(page);
    firstId = id;
    const apiId = await createSchematic(
      base,
      `customization:\n  extraKernelArgs: [console=ttyS0, talos.dashboard.disabled=1]\n  systemExtensions:\n    officialExtensions: [${dummy}, ${hello}]\n`,
    );
    assert.equal(id, apiId, "the page's schematic ID is the API's for the same schematic");
    assert.equal(
      await page.locator("#schematic-yaml").textContent(),
      await (await fetch(`${base}/schematics/${id}`)).text(),
    );
    const url = new URL(page.url());
    assert.equal(url.searchParams.get("schematic-id"), id, "the result page has its own URL");
    assert.match(
      (await page.locator("main").textContent()) ?? "",
      new RegExp(`talosctl upgrade --image 127\\.0\\.0\\.1:\\d+/metal-installer/${id}:${version}`),
    );
    const pxe = `${base}/pxe/${id}/${version}/metal-amd64`;
    assert.ok((await page.locator(`code:text-is("${pxe}")`).count()) === 1, "the PXE script URL");
    for (const name of ["kernel-amd64", "initramfs-amd64.xz", "metal-amd64-uki.efi", "metal-amd64.raw.zst"])
      assert.ok((await page.locator(`a[href="${base}/image/${id}/${version}/${name}"]`).count()) > 0, name);

    // The copy button (JavaScript on) puts the ID on the clipboard.
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
    await page.locator("#schematic-id button.copy").click();
    assert.equal(await clipboardText(page), id);

    const iso = page.getByRole("link", { name: "metal-amd64.iso" }).first();
    const href = (await iso.getAttribute("href")) ?? "";
    assert.equal(href, `${base}/image/${id}/${version}/metal-amd64.iso`);
    await context.close();
    // Built on first download: fetched while the other passes run, checked before the registry is stopped.
    isoDownload = fetch(href).then(async (res) => ({
      status: res.status,
      type: res.headers.get("content-type") ?? "",
      bytes: Buffer.from(await res.arrayBuffer()),
    }));
    isoDownload.catch(() => {}); // awaited (and reported) by its own test
  });

  it("works without JavaScript: a board with its overlay, the server-side filter; ?schematic-id= reopens it", async () => {
    // A phone's viewport: the layout reflows.
    const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } });
    const page = await context.newPage();
    await page.goto(`${base}/`);
    await page.getByLabel("Single-board computer").check();
    await page.getByRole("button", { name: "Next" }).click();
    assert.equal(await heading(page), "Talos version");
    await page.selectOption("#version", version.slice(1));
    await page.getByRole("button", { name: "Next" }).click();
    assert.equal(await heading(page), "Single-board computer");
    await page.getByLabel(testbedOverlay, { exact: true }).check();
    await shot(page, "nojs-01-board");
    await page.getByRole("button", { name: "Next" }).click();
    assert.equal(await heading(page), "Architecture");
    assert.equal(await page.locator("input[name=arch]:checked").inputValue(), "arm64", "boards default to arm64");
    await page.getByLabel("amd64").check();
    await page.getByRole("button", { name: "Next" }).click();

    assert.equal(await heading(page), "System extensions");
    await page.getByLabel("Search extensions").fill("hello");
    await page.getByRole("button", { name: "Filter" }).click();
    assert.equal(await heading(page), "System extensions", "the filter stays on the step");
    assert.equal(await page.locator(".extension").count(), 1);
    await page.getByLabel(hello).check();
    await shot(page, "nojs-02-extensions");
    await page.getByRole("button", { name: "Next" }).click();

    assert.equal(await heading(page), "Customization");
    await page.getByLabel("Overlay options").fill("kernelArg: overlay.option=yes");
    await page.getByLabel("Extra kernel arguments").fill("nomodeset");
    await page.getByRole("button", { name: "Next" }).click();
    assert.equal(await heading(page), "Your image");
    await shot(page, "nojs-03-result");
    assert.equal(await page.locator("button.copy:visible").count(), 0, "copy buttons need JavaScript: hidden");
    const id = await resultId(page);
    const apiId = await createSchematic(
      base,
      `overlay:\n  image: ${testbedOverlayRepository}\n  name: ${testbedOverlay}\n  options:\n    kernelArg: overlay.option=yes\ncustomization:\n  extraKernelArgs: [nomodeset]\n  systemExtensions:\n    officialExtensions: [${hello}]\n`,
    );
    assert.equal(id, apiId);
    assert.equal(
      (await page.locator(`a[href="${base}/image/${id}/${version}/metal-amd64.raw.xz"]`).count()) > 0,
      true,
      "the board's disk image",
    );

    // Reopen the first schematic: its choices ride along; pick target, version and arch, land on it again.
    await page.goto(`${base}/?schematic-id=${firstId}`);
    assert.equal(await heading(page), "Hardware type");
    await page.getByRole("button", { name: "Next" }).click();
    await page.selectOption("#version", version.slice(1));
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByRole("button", { name: "Next" }).click();
    assert.equal(await heading(page), "Your image");
    assert.equal(await resultId(page), firstId);
    // "Change kernel arguments" opens the step filled in; changing them makes a new schematic.
    await page.getByRole("link", { name: "Change kernel arguments" }).click();
    assert.equal(await heading(page), "Customization");
    assert.equal(
      await page.getByLabel("Extra kernel arguments").inputValue(),
      "console=ttyS0 talos.dashboard.disabled=1",
    );
    await page.getByLabel("Extra kernel arguments").fill("console=ttyS0");
    await page.getByRole("button", { name: "Next" }).click();
    const edited = await resultId(page);
    assert.notEqual(edited, firstId);
    assert.match(await (await fetch(`${base}/schematics/${edited}`)).text(), /testbed-dummy[\s\S]*testbed-hello/);
    await context.close();
  });

  it("can be used with the keyboard alone (in the dark colour scheme)", async () => {
    const context = await browser.newContext({ colorScheme: "dark", bypassCSP: true });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
    const page = await context.newPage();
    /** Tabs until the focused element matches `selector` (at most 60 presses). */
    const tabTo = async (selector: string) => {
      for (let i = 0; i < 60; i++) {
        await page.keyboard.press("Tab");
        if (await focusedMatches(page, selector)) return;
      }
      assert.fail(`Tab never reached ${selector} on "${await heading(page)}"`);
    };
    await page.goto(`${base}/`);
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate("document.activeElement?.textContent"), "Skip to content");
    await tabTo("input[name=target]");
    await page.keyboard.press("ArrowDown"); // cloud
    await page.keyboard.press("ArrowUp"); // back to bare metal
    await tabTo("button.primary");
    await page.keyboard.press("Enter");
    await page.waitForURL(/version=|target=metal/);
    assert.equal(await heading(page), "Talos version");
    await tabTo("button.primary");
    await page.keyboard.press("Enter");
    await page.waitForURL(/version=/);
    assert.equal(await heading(page), "Architecture");
    await tabTo("button.primary");
    await page.keyboard.press("Enter");
    await page.waitForURL(/arch=/);
    assert.equal(await heading(page), "System extensions");
    await tabTo("#search");
    await page.keyboard.type("dummy");
    await tabTo(`input[value="${dummy}"]`);
    await page.keyboard.press("Space");
    await tabTo("button.primary");
    await page.keyboard.press("Enter");
    await page.waitForURL(/extensions=/);
    assert.equal(await heading(page), "Customization");
    await tabTo("#cmdline");
    await page.keyboard.type("nomodeset");
    await page.keyboard.press("Enter");
    await page.waitForURL(/schematic-id=/);
    assert.equal(await heading(page), "Your image");
    assert.match((await page.locator("#schematic-yaml").textContent()) ?? "", /nomodeset[\s\S]*testbed-dummy/);
    await tabTo("#schematic-id button.copy");
    await page.keyboard.press("Enter");
    assert.equal(await clipboardText(page), await resultId(page));
    await shot(page, "keyboard-result-dark");
    await axeScan(page, "result page, dark");
    await context.close();
  });

  it("is served under the external URL's path too, with links relative to where it was served", async () => {
    assert.ok(testbed !== undefined);
    const port = await freePort();
    const prefixed = await startFactoryUnderTest((keys, dataDir) => {
      const argv = argvOn(testbed as PublishedTestbed, port)(keys, dataDir);
      argv[argv.indexOf("-external-url") + 1] = `http://127.0.0.1:${port}/factory/`;
      return argv;
    });
    try {
      const root = prefixed.factory.url.replace(/\/$/, "");
      await waitFor200(`${root}/versions`);
      const start = await fetch(`${root}/factory/`);
      assert.equal(start.status, 200);
      const text = await start.text();
      assert.match(text, /<form method="get" action="\/factory\/"/);
      assert.match(text, /href="\/factory\/ui\/style\.css"/);
      assert.equal((await fetch(`${root}/factory/ui/style.css`)).status, 200);
      assert.equal((await fetch(`${root}/`)).status, 200, "and at /");
      const done = await fetch(
        `${root}/factory/?target=metal&version=1.10.3&arch=amd64&extensions=-&cmdline-set=1&cmdline=quiet`,
        { redirect: "manual" },
      );
      assert.equal(done.status, 303);
      const location = done.headers.get("location") ?? "";
      assert.match(location, /^\/factory\/\?target=metal&version=1\.10\.3&arch=amd64&schematic-id=[0-9a-f]{64}$/);
      const result = await (await fetch(`${root}${location}`)).text();
      const id = location.slice(-64);
      assert.equal(id, await createSchematic(root, "customization:\n  extraKernelArgs: [quiet]\n"));
      assert.ok(result.includes(`href="http://127.0.0.1:${port}/factory/image/${id}/v1.10.3/metal-amd64.iso"`));
    } finally {
      await prefixed.stop();
    }
  });

  it("offers cloud platforms, and links the platform's disk image and installer", async () => {
    const step = await (await fetch(`${base}/?target=cloud&version=1.10.3`)).text();
    assert.match(step, /<input type="radio" id="platform-aws" name="platform" value="aws" checked/);
    assert.match(step, /id="platform-vmware"/);
    assert.doesNotMatch(step, /id="platform-alibabacloud"/, "upstream offers it from 1.14.0-beta.2");
    const done = await fetch(
      `${base}/?target=cloud&version=1.10.3&platform=aws&arch=arm64&extensions=-&cmdline-set=1`,
      { redirect: "manual" },
    );
    assert.equal(done.status, 303);
    const location = done.headers.get("location") ?? "";
    const id = location.slice(-64);
    assert.equal(id, await createSchematic(base, "customization: {}\n"));
    const result = await (await fetch(`${base}${location}`)).text();
    assert.ok(result.includes(`href="${base}/image/${id}/v1.10.3/aws-arm64.raw.xz"`));
    assert.ok(
      result.includes(`talosctl upgrade --image 127.0.0.1:`) && result.includes(`/aws-installer/${id}:v1.10.3`),
    );
  });

  it("offers what the version and the factory allow: Secure Boot, the boot loader, an embedded configuration", async () => {
    const arch = await (await fetch(`${base}/?target=metal&version=1.10.3`)).text();
    assert.match(
      arch,
      /<input type="checkbox" id="secureboot" name="secureboot" value="true"/,
      "the factory has -secureboot",
    );
    const old = await (await fetch(`${base}/?target=metal&version=1.10.3&arch=amd64&extensions=-`)).text();
    assert.doesNotMatch(old, /name="bootloader"|name="embedded-config"/, "1.10 has neither");
    const v112 = await (await fetch(`${base}/?target=metal&version=1.12.11&arch=amd64&extensions=-`)).text();
    assert.match(v112, /<form method="post"/);
    assert.match(v112, /name="bootloader" value="grub"/);
    assert.match(v112, /<textarea id="embedded-config" name="embedded-config"/);
    const sb = await (
      await fetch(`${base}/?target=metal&version=1.12.11&arch=amd64&secureboot=true&extensions=-`)
    ).text();
    assert.doesNotMatch(sb, /value="grub"/, "no GRUB with Secure Boot");

    const form = new URLSearchParams({
      target: "metal",
      version: "1.12.11",
      arch: "amd64",
      secureboot: "true",
      extensions: "-",
      "cmdline-set": "1",
      cmdline: "",
      bootloader: "sd-boot",
      "embedded-config": "apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: web-ui\nauto: off\n",
    });
    const done = await fetch(`${base}/`, { method: "POST", body: form, redirect: "manual" });
    assert.equal(done.status, 303);
    const location = done.headers.get("location") ?? "";
    assert.doesNotMatch(location, /embedded|hostname/, "the embedded configuration stays out of URLs");
    assert.match(location, /secureboot=true/);
    const id = location.slice(-64);
    const yaml = await (await fetch(`${base}/schematics/${id}`)).text();
    assert.match(yaml, /bootloader: sd-boot/);
    assert.match(yaml, /hostname: web-ui/);
    const result = await (await fetch(`${base}${location}`)).text();
    assert.ok(result.includes(`/image/${id}/v1.12.11/metal-amd64-secureboot.iso"`));
    assert.ok(result.includes(`/metal-installer-secureboot/${id}:v1.12.11`));
    assert.doesNotMatch(result, /kernel-amd64"/, "no bare kernel for Secure Boot");
  });

  it("explains extensions a reopened schematic has that the version does not offer", async () => {
    const stray = await createSchematic(
      base,
      `customization:\n  systemExtensions:\n    officialExtensions: [${dummy}, siderolabs/gone]\n`,
    );
    const res = await fetch(`${base}/?target=metal&version=1.10.3&arch=amd64&schematic-id=${stray}&edit=1`);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /Not available for Talos v1\.10\.3, so left out:<\/p><ul><li><code>siderolabs\/gone<\/code>/);
    assert.match(text, new RegExp(`value="${dummy}" aria-describedby="extension-\\d+-text" checked`));
  });

  it("the result page's ISO link answers 200 with an ISO 9660 image", async () => {
    assert.ok(isoDownload !== undefined, "the first pass reached the result page");
    const { status, type, bytes } = await isoDownload;
    assert.equal(status, 200, bytes.subarray(0, 500).toString("utf8"));
    assert.equal(type, "application/x-iso9660-image");
    assert.equal(bytes.subarray(0x8001, 0x8006).toString("latin1"), "CD001");
  });

  it("shows errors as pages with the API's statuses", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    let res = await page.goto(`${base}/?target=metal&version=9.9.9`);
    assert.equal(res?.status(), 404);
    assert.match((await page.locator("[role=alert]").textContent()) ?? "", /v9\.9\.9 is not available/);
    await shot(page, "error-404-version");
    await axeScan(page, "error page");
    res = await page.goto(`${base}/?target=metal&version=${encodeURIComponent("<b>1.x</b>")}`);
    assert.equal(res?.status(), 400);
    assert.equal(await page.locator("main b").count(), 0, "input is escaped");
    assert.match((await page.locator("[role=alert]").textContent()) ?? "", /<b>1\.x<\/b>/);

    const stray = await createSchematic(
      base,
      "customization:\n  systemExtensions:\n    officialExtensions: [siderolabs/not-in-any-catalog]\n",
    );
    res = await page.goto(`${base}/?target=metal&version=${version.slice(1)}&arch=amd64&schematic-id=${stray}`);
    assert.equal(res?.status(), 400);
    assert.match(
      (await page.locator("[role=alert]").textContent()) ?? "",
      /siderolabs\/not-in-any-catalog is not available for Talos v1\.10\.3/,
    );
    assert.doesNotMatch(await page.content(), /\.ts:\d+/, "no stack trace");

    // The registry gone: a version whose catalog was never read cannot be offered extensions for.
    await testbed?.stop();
    testbed = undefined;
    // An unreachable registry is an outage: 503 with Retry-After, as the API answers (src/errors.ts).
    res = await page.goto(`${base}/?target=metal&version=1.8.2&arch=amd64`); // 1.8.2: no other pass reads its catalog
    assert.equal(res?.status(), 503);
    assert.match((await page.locator("[role=alert]").textContent()) ?? "", /503/);
    await shot(page, "error-503-registry");
    await context.close();
  });
});
