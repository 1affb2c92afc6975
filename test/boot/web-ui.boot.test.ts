// Issue 16's proof by boot: a person walks the factory's wizard in a real browser (Debian's Chromium driven by
// playwright-core) — bare metal, the test bed's v1.10.3, amd64, an extension, a kernel argument — clicks the
// result page's ISO link, the browser downloads the file, and that ISO boots (BIOS) with the schematic the page
// showed. The wizard itself (every step, no-JS, keyboard, axe) is test/factory/web-ui.test.ts.

import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type Browser, chromium } from "playwright-core";
import { TestbedExtension } from "../../src/testbed/extensions.ts";
import {
  type FactoryUnderTest,
  type PublishedTestbed,
  publishTestbed,
  seedArgv,
  startFactoryUnderTest,
  waitFor200,
} from "../factory/service-harness.ts";
import { freePort } from "../harness/ports.ts";
import { boot, bootUnavailable } from "./harness.ts";

const skip = bootUnavailable("bios");
const version = "v1.10.3";
const extension = `siderolabs/${TestbedExtension.module}`;

describe("the ISO the wizard links to boots", { skip }, () => {
  let testbed: PublishedTestbed;
  let factory: FactoryUnderTest | undefined;
  let browser: Browser | undefined;
  let work: string;
  let base: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "web-ui-boot-"));
    testbed = await publishTestbed();
    const port = await freePort();
    // -external-url is the factory's own address, so the page's links are followed as a user would.
    factory = await startFactoryUnderTest((keys, dataDir) => {
      const argv = seedArgv(testbed, keys, dataDir);
      argv[argv.indexOf("-external-url") + 1] = `http://127.0.0.1:${port}/`;
      argv[argv.indexOf("-http-port") + 1] = `127.0.0.1:${port}`;
      return argv;
    });
    base = factory.factory.url.replace(/\/$/, "");
    await waitFor200(`${base}/versions`);
    browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
  });
  after(async () => {
    await browser?.close();
    await factory?.stop();
    await testbed?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test("wizard → result page → the browser downloads metal-amd64.iso → it boots with that schematic", async () => {
    const context = await (browser as Browser).newContext({ acceptDownloads: true });
    const page = await context.newPage();
    const next = () => page.getByRole("button", { name: "Next" }).click();
    await page.goto(`${base}/`);
    await page.getByLabel("Bare-metal machine").check();
    await next();
    await page.selectOption("#version", version.slice(1));
    await next();
    await page.getByLabel("amd64").check();
    await next();
    await page.getByLabel(extension).check();
    await next();
    await page.getByLabel("Extra kernel arguments").fill("console=ttyS0 webui.boot=yes");
    await next();
    assert.equal(await page.locator("main h1").textContent(), "Your image");
    const id = ((await page.locator("#schematic-id code").textContent()) ?? "").trim();
    assert.match(id, /^[0-9a-f]{64}$/);

    const started = performance.now();
    // Assets build on first download: the browser waits for the answer as a user's would.
    const [download] = await Promise.all([
      page.waitForEvent("download", { timeout: 600_000 }),
      page.getByRole("link", { name: "metal-amd64.iso" }).first().click(),
    ]);
    const iso = join(work, download.suggestedFilename());
    await download.saveAs(iso);
    await context.close();
    assert.equal(download.suggestedFilename(), "metal-amd64.iso");
    console.log(
      `ISO downloaded by the browser: ${(await stat(iso)).size} bytes in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );

    const { report, seconds } = await boot({ iso, firmware: "bios" });
    console.log(`ISO boot: ${seconds} s`);
    assert.deepEqual(report.errors, []);
    assert.equal(report.schematicId, id, "the guest runs the schematic the page showed");
    assert.ok(report.cmdline.split(/\s+/).includes("webui.boot=yes"), report.cmdline);
    assert.ok(
      report.extensions.some((e) => e.name === TestbedExtension.module),
      JSON.stringify(report.extensions),
    );
    assert.ok(report.modules.includes("dummy"), `the extension's module: ${report.modules.join(" ")}`);
  });
});
