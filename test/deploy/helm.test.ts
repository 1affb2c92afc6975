// The Helm chart (deploy/helm/boot-assets-factory), rendered by Go's text/template with sprig (the engine
// and function library Helm uses; helm itself is neither in Debian 12 nor on npm: test/deploy/helm-render.ts)
// and every manifest validated against the Kubernetes 1.27 OpenAPI schemas compiled into the
// `kubernetes-models` npm package (ServiceMonitor: the prometheus-operator CRD's, @kubernetes-models/
// prometheus-operator). Those schemas check types, required fields and enums, not unknown keys (as
// `kubectl apply` without --validate=strict). Then the pod's files are laid out as the kubelet would mount
// them and the factory itself reads the rendered configuration (`factory --config … --check-config`).

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { parseAllDocuments, stringify } from "yaml";
import { envOf, parseDockerfile } from "./dockerfile.ts";
import { buildRenderer, chartDir, render } from "./helm-render.ts";

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");

// biome-ignore lint/suspicious/noExplicitAny: manifests are checked by the schemas, then read loosely
type Manifest = any;

const models: Record<string, new (data: Manifest) => { validate(): void }> = {
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "v1/PersistentVolumeClaim": PersistentVolumeClaim,
  "apps/v1/Deployment": Deployment,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
};

/** Parses the rendered stream and validates each manifest against its schema. */
function manifests(text: string): Manifest[] {
  const docs = parseAllDocuments(text);
  assert.ok(Array.isArray(docs), "a YAML stream");
  return docs.map((doc) => {
    assert.deepEqual(doc.errors, [], "valid YAML, no duplicate keys");
    const m = doc.toJS() as Manifest;
    const model = models[`${m.apiVersion}/${m.kind}`];
    assert.ok(model, `a schema for ${m.apiVersion} ${m.kind}`);
    new model(m).validate(); // throws naming the path and the rule
    assert.equal(m.metadata.namespace, "boot-assets");
    return m;
  });
}

function kinds(list: Manifest[]): string[] {
  return list.map((m) => m.kind).sort();
}

function one(list: Manifest[], kind: string): Manifest {
  const found = list.filter((m) => m.kind === kind);
  assert.equal(found.length, 1, kind);
  return found[0];
}

function pemKey(kind: "ec" | "rsa"): string {
  const { privateKey } =
    kind === "ec"
      ? generateKeyPairSync("ec", { namedCurve: "P-256" })
      : generateKeyPairSync("rsa", { modulusLength: 2048 });
  return privateKey.export({ type: "pkcs8", format: "pem" }).toString();
}

describe("Helm chart", () => {
  let renderer: string;
  let dir: string;
  let sbDir: string;
  const external = path.join(chartDir, "ci/secureboot-external-values.yaml");
  let inline: string;
  const cacheKey = pemKey("ec");
  before(async () => {
    renderer = buildRenderer();
    dir = await mkdtemp(path.join(tmpdir(), "helm-chart-"));
    sbDir = path.join(dir, "sb-keys");
    await run(process.execPath, [path.join(repoRoot, "bin/boot-assets.js"), "secureboot", "gen-keys", sbDir]);
    inline = path.join(dir, "inline.yaml");
    await writeFile(
      inline,
      stringify({
        cacheSigningKey: { pem: cacheKey },
        secureBoot: {
          enabled: true,
          signingKey: await readFile(path.join(sbDir, "uki-signing-key.pem"), "utf8"),
          signingCert: await readFile(path.join(sbDir, "uki-signing-cert.pem"), "utf8"),
          pcrKey: await readFile(path.join(sbDir, "pcr-signing-key.pem"), "utf8"),
        },
      }),
    );
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function rendered(files: string[]): Promise<Manifest[]> {
    const result = await render(renderer, files);
    assert.ok(result.ok, result.ok ? "" : result.error);
    return manifests(result.text);
  }

  test("defaults: one replica on its embedded store (PVC), probes, PDB; every manifest schema-valid", async () => {
    const list = await rendered([]);
    assert.deepEqual(kinds(list), [
      "ConfigMap",
      "Deployment",
      "PersistentVolumeClaim",
      "PodDisruptionBudget",
      "Service",
    ]);
    const deployment = one(list, "Deployment");
    assert.equal(deployment.spec.replicas, 1);
    assert.equal(deployment.spec.strategy.type, "Recreate", "one pod at a time on a ReadWriteOnce store");
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];
    assert.deepEqual(container.args, ["--config", "/etc/boot-assets/factory.yaml"]);
    assert.equal(container.livenessProbe.httpGet.path, "/healthz");
    assert.equal(container.startupProbe.httpGet.path, "/healthz");
    assert.equal(container.readinessProbe.httpGet.path, "/readyz");
    const data = pod.volumes.find((v: Manifest) => v.name === "data");
    assert.equal(data.persistentVolumeClaim.claimName, one(list, "PersistentVolumeClaim").metadata.name);
    const config = one(list, "ConfigMap").data["factory.yaml"] as string;
    assert.doesNotMatch(config, /oci:|secureBoot:|signingKeyPath/);
    assert.equal(one(list, "PodDisruptionBudget").spec.maxUnavailable, 1);
    const service = one(list, "Service");
    assert.deepEqual(
      service.spec.ports.map((p: Manifest) => [p.name, p.targetPort]),
      [
        ["http", "http"],
        ["metrics", "metrics"],
      ],
    );
    assert.deepEqual(service.spec.selector, deployment.spec.selector.matchLabels);
    assert.deepEqual(one(list, "PodDisruptionBudget").spec.selector.matchLabels, deployment.spec.selector.matchLabels);
  });

  test("the pod's security context matches the image: its user, read-only root, writable volume and /tmp", async () => {
    const dockerfile = parseDockerfile(await readFile(path.join(repoRoot, "Dockerfile"), "utf8"));
    const image = dockerfile.stages.at(-1);
    assert.ok(image);
    const [uid, gid] = (image.instructions.find((i) => i.keyword === "USER")?.text ?? "").split(":").map(Number);
    const volume = image.instructions.find((i) => i.keyword === "VOLUME")?.exec?.[0];
    const exposed = image.instructions
      .find((i) => i.keyword === "EXPOSE")
      ?.text.split(/\s+/)
      .map(Number);
    const pod = one(await rendered([]), "Deployment").spec.template.spec;
    assert.equal(pod.securityContext.runAsUser, uid);
    assert.equal(pod.securityContext.runAsGroup, gid);
    assert.equal(pod.securityContext.fsGroup, gid);
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.seccompProfile.type, "RuntimeDefault");
    const container = pod.containers[0];
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
    assert.equal(container.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(container.securityContext.capabilities.drop, ["ALL"]);
    const mounts = new Map(container.volumeMounts.map((m: Manifest) => [m.mountPath, m]));
    const tmp = envOf(image).get("TMPDIR");
    for (const writable of [volume, tmp]) {
      const mount = mounts.get(writable) as Manifest;
      assert.ok(mount, `${writable} is mounted`);
      assert.notEqual(mount.readOnly, true, `${writable} is writable`);
    }
    assert.deepEqual(
      container.ports.map((p: Manifest) => p.containerPort),
      exposed,
    );
  });

  test("secure boot + external registry (ci/ values): three replicas, ServiceMonitor, existing Secrets", async () => {
    const list = await rendered([external]);
    assert.deepEqual(kinds(list), ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceMonitor"]);
    const deployment = one(list, "Deployment");
    assert.equal(deployment.spec.replicas, 3);
    assert.equal(deployment.spec.strategy, undefined, "rolling updates: the store is the shared registry");
    const pod = deployment.spec.template.spec;
    const secrets = Object.fromEntries(
      pod.volumes.filter((v: Manifest) => v.secret).map((v: Manifest) => [v.name, v.secret.secretName]),
    );
    assert.deepEqual(secrets, {
      "cache-key": "factory-cache-key",
      secureboot: "factory-secureboot",
      "registry-auth": "factory-registry-auth",
    });
    assert.ok(pod.volumes.find((v: Manifest) => v.name === "data").emptyDir, "no PVC: persistence disabled");
    const monitor = one(list, "ServiceMonitor");
    assert.equal(monitor.metadata.labels.release, "prometheus");
    assert.deepEqual(monitor.spec.endpoints, [{ port: "metrics", path: "/metrics", interval: "30s" }]);
  });

  test("inline keys become Secrets with the names the mounts expect", async () => {
    const list = await rendered([inline]);
    const secrets = list.filter((m) => m.kind === "Secret");
    assert.deepEqual(secrets.map((s) => Object.keys(s.data).sort()).sort(), [
      ["cache-signing-key.pem"],
      ["pcr-signing-key.pem", "uki-signing-cert.pem", "uki-signing-key.pem"],
    ]);
    const cache = secrets.find((s) => s.data["cache-signing-key.pem"]);
    assert.equal(Buffer.from(cache.data["cache-signing-key.pem"], "base64").toString(), cacheKey);
  });

  test("combinations that cannot work are refused by name before anything is applied", async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ replicaCount: 2 }, /replicaCount > 1 needs storage\.mode external/],
      [
        { replicaCount: 2, storage: { mode: "external", external: { registry: "r.example:5000" } } },
        /replicaCount > 1 needs cacheSigningKey/,
      ],
      [{ storage: { mode: "external" } }, /storage\.mode external needs storage\.external\.registry/],
      [{ storage: { mode: "s3" } }, /storage\.mode must be embedded or external/],
      [{ secureBoot: { enabled: true, signingKey: "x" } }, /secureBoot\.enabled needs/],
    ];
    for (const [values, message] of cases) {
      const file = path.join(dir, "refused.yaml");
      await writeFile(file, stringify(values));
      const result = await render(renderer, [file]);
      assert.equal(result.ok, false, JSON.stringify(values));
      assert.match(result.ok ? "" : result.error, message);
    }
  });

  /** Lays the pod's files out under `root` as the kubelet mounts them; returns the container's view rewritten. */
  async function layOut(list: Manifest[], root: string, existing: Record<string, Record<string, string>>) {
    const pod = one(list, "Deployment").spec.template.spec;
    const container = pod.containers[0];
    const prefix = (p: string) => path.join(root, p);
    const paths: string[] = container.volumeMounts.map((m: Manifest) => m.mountPath);
    const rewrite = (text: string) =>
      text.replace(new RegExp(paths.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "g"), (p) =>
        prefix(p),
      );
    for (const mount of container.volumeMounts) {
      const volume = pod.volumes.find((v: Manifest) => v.name === mount.name);
      if (volume.configMap) {
        const map = list.find((m) => m.kind === "ConfigMap" && m.metadata.name === volume.configMap.name);
        await mkdir(path.dirname(prefix(mount.mountPath)), { recursive: true });
        await writeFile(prefix(mount.mountPath), rewrite(map.data[mount.subPath]));
      } else if (volume.secret) {
        const secret = list.find((m) => m.kind === "Secret" && m.metadata.name === volume.secret.secretName);
        const data: Record<string, string> =
          secret !== undefined
            ? Object.fromEntries(
                Object.entries(secret.data as Record<string, string>).map(([k, v]) => [
                  k,
                  Buffer.from(v, "base64").toString(),
                ]),
              )
            : (existing[volume.secret.secretName] ?? {});
        await mkdir(prefix(mount.mountPath), { recursive: true });
        for (const item of volume.secret.items) {
          assert.ok(data[item.key] !== undefined, `Secret ${volume.secret.secretName} has ${item.key}`);
          await writeFile(path.join(prefix(mount.mountPath), item.path), data[item.key] as string);
        }
      } else {
        await mkdir(prefix(mount.mountPath), { recursive: true });
      }
    }
    const env: Record<string, string> = {};
    for (const e of container.env) env[e.name] = rewrite(e.value);
    return { args: container.args.map(rewrite) as string[], env };
  }

  for (const [name, files] of [
    ["defaults", () => []],
    ["inline keys", () => [inline]],
    ["secure boot + external registry", () => [external]],
  ] as const)
    test(`the factory accepts the rendered configuration and mounted files (${name})`, async () => {
      const list = await rendered([...files()]);
      const root = await mkdtemp(path.join(dir, "pod-"));
      const sb = async (file: string) => readFile(path.join(sbDir, file), "utf8");
      const pod = await layOut(list, root, {
        "factory-cache-key": { "cache-signing-key.pem": cacheKey },
        "factory-secureboot": {
          "uki-signing-key.pem": await sb("uki-signing-key.pem"),
          "uki-signing-cert.pem": await sb("uki-signing-cert.pem"),
          "pcr-signing-key.pem": await sb("pcr-signing-key.pem"),
        },
        "factory-registry-auth": { ".dockerconfigjson": JSON.stringify({ auths: {} }) },
      });
      const { stdout } = await run(
        process.execPath,
        [path.join(repoRoot, "bin/boot-assets.js"), "factory", ...pod.args, "--check-config"],
        { env: { PATH: process.env.PATH ?? "", HOME: root, ...pod.env } },
      );
      assert.match(stdout, /^configuration is valid/m);
      assert.match(stdout, /^would listen on http:\/\/:8080 /m);
      assert.match(stdout, new RegExp(`^data directory ${path.join(root, "var/lib/boot-assets")}$`, "m"));
      if (name === "secure boot + external registry") {
        assert.match(stdout, /^cache: registry\.example\.com:5000\/image-factory\/cache/m);
        assert.match(stdout, /^schematics: registry\.example\.com:5000\/image-factory\/schematics/m);
        assert.match(stdout, /^Secure Boot enabled/m);
      } else if (name === "inline keys") {
        assert.match(stdout, /^Secure Boot enabled/m);
        assert.match(stdout, new RegExp(`^cache signing key ${path.join(root, "etc/boot-assets/cache-key")}`, "m"));
      } else {
        assert.match(stdout, /^cache: embedded store/m);
        assert.match(stdout, /^Secure Boot disabled$/m);
      }
    });
});
