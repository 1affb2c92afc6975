// The source-folder reader of `extension build` (src/toolkit/extension-source.ts): the manifest template,
// the per-platform rootfs convention, and the one-source-per-file rule, on real folders.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";
import { isAppError } from "../../src/errors.ts";
import {
  parseExtensionPlatforms,
  readExtensionSource,
  renderManifestTemplate,
} from "../../src/toolkit/extension-source.ts";

const temps: string[] = [];
after(async () => {
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
});

async function folder(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "ext-source-"));
  temps.push(dir);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  return dir;
}

describe("manifest templates", () => {
  test("{{ .VERSION }} and --var keys are substituted, spacing as Go templates allow", () => {
    const { text, problems } = renderManifestTemplate(
      'version: "{{ .VERSION }}"\ndescription: "[{{.TIER}}] x"\n',
      { VERSION: "1.2.3", TIER: "contrib" },
      "manifest.yaml.tmpl",
    );
    assert.deepEqual(problems, []);
    assert.equal(text, 'version: "1.2.3"\ndescription: "[contrib] x"\n');
  });

  test("an unknown key or a non-placeholder expression is a template problem naming the file", () => {
    const { problems } = renderManifestTemplate("a: {{ .NOPE }}\nb: {{ range . }}\n", {}, "manifest.yaml.tmpl");
    assert.deepEqual(
      problems.map((p) => [p.path, p.rule]),
      [
        ["manifest.yaml.tmpl", "template"],
        ["manifest.yaml.tmpl", "template"],
      ],
    );
    assert.match(problems[0]?.message ?? "", /no value for \{\{ \.NOPE \}\} \(give --var NOPE=VALUE\)/);
  });
});

describe("platforms and rootfs folders", () => {
  test("--platform accepts linux/amd64,linux/arm64 (or bare arches) and refuses others and duplicates", () => {
    assert.deepEqual(parseExtensionPlatforms("linux/amd64,linux/arm64"), ["amd64", "arm64"]);
    assert.deepEqual(parseExtensionPlatforms("arm64"), ["arm64"]);
    for (const bad of ["linux/riscv64", "windows/amd64", "linux/amd64,amd64"])
      assert.throws(
        () => parseExtensionPlatforms(bad),
        (err) => isAppError(err, "BadRequest"),
      );
  });

  test("rootfs/ is shared, rootfs-<arch>/ and --tree add to one platform; a file given twice is a layout problem", async () => {
    const dir = await folder({
      "manifest.yaml": "version: v1alpha1\n",
      "rootfs/usr/local/share/common": "c",
      "rootfs-amd64/usr/local/share/amd64-only": "a",
      "rootfs-arm64/usr/local/share/arm64-only": "b",
      "README.md": "not part of the image",
    });
    const tree = await folder({ "usr/lib/modules/6.1/extras/x.ko": "ko", "usr/local/share/common": "again" });
    const source = await readExtensionSource(dir, {
      arches: ["amd64", "arm64"],
      vars: {},
      trees: [{ arch: "amd64", dir: tree }],
    });
    const files = (arch: string) =>
      source.platforms
        .find((p) => p.arch === arch)
        ?.entries.filter((e) => e.kind === "file")
        .map((e) => e.path);
    assert.deepEqual(files("amd64"), [
      "/usr/local/share/common",
      "/usr/local/share/amd64-only",
      "/usr/lib/modules/6.1/extras/x.ko",
    ]);
    assert.deepEqual(files("arm64"), ["/usr/local/share/common", "/usr/local/share/arm64-only"]);
    assert.equal(source.problems.length, 1);
    assert.equal(source.problems[0]?.rule, "layout");
    assert.equal(source.problems[0]?.path, join(tree, "usr/local/share/common"));
    assert.match(source.problems[0]?.message ?? "", /also given by rootfs\/usr\/local\/share\/common/);
  });

  test("a platform without any rootfs, or both manifest forms, are layout problems", async () => {
    const dir = await folder({
      "manifest.yaml": "x",
      "manifest.yaml.tmpl": "x",
      "rootfs-amd64/usr/local/x": "x",
    });
    const source = await readExtensionSource(dir, { arches: ["amd64", "arm64"], vars: {} });
    assert.deepEqual(
      source.problems.map((p) => [p.path, p.rule]),
      [
        ["manifest.yaml", "layout"],
        ["rootfs-arm64/", "layout"],
      ],
    );
  });
});
