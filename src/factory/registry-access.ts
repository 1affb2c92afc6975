// How the factory and `boot-assets build` reach registries: one set of rules for both, so a registry that one
// reaches the other reaches too.

import type { RegistryClientOptions } from "../oci/client/client.ts";
import type { FactoryConfig } from "./config/model.ts";

/** localhost, 127.0.0.0/8 or ::1, with or without a port. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.startsWith("[") ? registry.slice(1, registry.indexOf("]")) : registry.replace(/:\d+$/, "");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** What the rules read: the image registry, any remote stores, and the TLS settings. */
export type RegistryAccessSettings = Pick<FactoryConfig, "images" | "registryTls"> & {
  stores?: FactoryConfig["stores"];
};

/**
 * Registries reached without verified TLS: those flagged insecure, and loopback ones, which upstream's
 * registry library (go-containerregistry) reaches over plain HTTP unasked, and which the seed deployment
 * relies on (`-cache-repository localhost:5000/cache` with no insecure flag).
 */
function insecureHosts(settings: RegistryAccessSettings): Set<string> {
  const hosts = new Set<string>();
  if (settings.images.insecure || isLoopbackRegistry(settings.images.registry)) hosts.add(settings.images.registry);
  const stores = settings.stores;
  for (const store of stores ? [stores.cache, stores.schematics, stores.installerInternal] : [])
    if (store.kind === "remote" && (store.insecure || isLoopbackRegistry(store.registry))) hosts.add(store.registry);
  return hosts;
}

/** The registry client's options: insecure hosts, and `-ca-file` / `-certs-dir`. */
export function registryClientOptionsFor(settings: RegistryAccessSettings): RegistryClientOptions {
  const options: RegistryClientOptions = { insecure: insecureHosts(settings) };
  if (settings.registryTls.caFile !== undefined) options.caFile = settings.registryTls.caFile;
  if (settings.registryTls.certsDirs !== undefined) options.certsDirs = settings.registryTls.certsDirs;
  return options;
}
