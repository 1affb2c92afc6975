// META values (the schematic's `meta`: small key/value pairs Talos reads at boot, e.g. 0xa = network
// config for metal). Disk images carry them in the META partition (src/formats/meta-partition.ts); every
// other asset passes them on the kernel command line as
// `talos.environment=INSTALLER_META_BASE64=<encoded>`, encoded as upstream's meta.Values.Encode
// (pkg/machinery/meta): pairs `0x<key hex>=<value>` joined by `;`, gzip'd (best) when longer than 256
// bytes and the Talos version reads gzip (version rules), then standard base64.

import { gunzipSync, gzipSync, constants as zlibConstants } from "node:zlib";
import { badRequest } from "../errors.ts";
import type { VersionRules } from "./version-rules.ts";

export interface MetaValue {
  /** The META tag, 1–255 (upstream stores a byte). */
  readonly key: number;
  readonly value: string;
}

/** The talos.environment variable that carries META values to the installer. */
export const metaEnvironmentVariable = "INSTALLER_META_BASE64";

/** Longest raw (uncompressed) encoding upstream leaves uncompressed. */
const gzipThreshold = 256;
/** Bound on what the decoder inflates: META is at most a 256 KiB block. */
const maxDecodedBytes = 256 * 1024;

export function validateMetaKey(key: number): void {
  if (!Number.isInteger(key) || key < 1 || key > 255)
    throw badRequest(`invalid META key ${key}: must be an integer from 1 to 255 (0x1–0xff)`, "META_KEY_INVALID");
}

/** `0x<hex>=<value>` pairs joined by `;`, exactly as upstream's Value.String/Values.Encode (before gzip). */
export function metaPairs(values: readonly MetaValue[]): string {
  return values
    .map(({ key, value }) => {
      validateMetaKey(key);
      // `;` separates pairs: a value holding one would be split apart by Talos's decoder at boot.
      if (value.includes(";"))
        throw badRequest(
          `META value for key 0x${key.toString(16)} contains ";", which cannot be passed on the kernel command line`,
          "META_VALUE_INVALID",
        );
      return `0x${key.toString(16)}=${value}`;
    })
    .join(";");
}

/** The base64 encoding of the values; gzip only when allowed and the pairs are longer than 256 bytes. */
export function encodeMetaValues(values: readonly MetaValue[], options: { allowGzip: boolean }): string {
  let raw: Buffer = Buffer.from(metaPairs(values), "utf8");
  if (options.allowGzip && raw.length > gzipThreshold) raw = gzipSync(raw, { level: zlibConstants.Z_BEST_COMPRESSION });
  return raw.toString("base64");
}

/** `INSTALLER_META_BASE64=<encoded>`: the value of the talos.environment kernel arg. */
export function metaEnvironment(values: readonly MetaValue[], rules: VersionRules): string {
  return `${metaEnvironmentVariable}=${encodeMetaValues(values, { allowGzip: rules.compressedMeta })}`;
}

/** Decodes what encodeMetaValues produced (gzip detected by its magic, as upstream's DecodeValues). */
export function decodeMetaValues(encoded: string): MetaValue[] {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded) || encoded.length % 4 !== 0)
    throw badRequest("invalid META encoding: not standard base64", "META_ENCODING_INVALID");
  let raw = Buffer.from(encoded, "base64");
  if (raw.length === 0) return [];
  if (raw.length >= 10 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      raw = gunzipSync(raw, { maxOutputLength: maxDecodedBytes });
    } catch (err) {
      throw badRequest(`invalid META encoding: ${(err as Error).message}`, "META_ENCODING_INVALID");
    }
  }
  return raw
    .toString("utf8")
    .split(";")
    .map((pair) => {
      const at = pair.indexOf("=");
      const keyText = at < 0 ? pair : pair.slice(0, at);
      if (at < 0 || !/^0x[0-9a-fA-F]{1,2}$/.test(keyText))
        throw badRequest(`invalid META pair "${pair.slice(0, 40)}"`, "META_ENCODING_INVALID");
      const key = Number.parseInt(keyText.slice(2), 16);
      validateMetaKey(key);
      return { key, value: pair.slice(at + 1) };
    });
}
