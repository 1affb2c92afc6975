// The registry client's public surface; the modules behind it are internal to src/oci/client.

export type { Challenge } from "./auth.ts";
export { parseWwwAuthenticate, repositoryScope } from "./auth.ts";
export type { PingResult, RegistryClientOptions } from "./client.ts";
export { RegistryClient } from "./client.ts";
export type { Credential, CredentialLookup, CredentialSourceOptions } from "./credentials.ts";
export { credentialsFromAuthFiles, staticCredentials } from "./credentials.ts";
export type { ManifestInfo, PutManifestResult } from "./remote-repository.ts";
export { RemoteRepository, referrersTagFor } from "./remote-repository.ts";
export type { InsecurePolicy } from "./tls.ts";
