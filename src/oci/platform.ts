// Platform selection in an image index, following containerd's platform matching: os and architecture
// must be equal; the variant must be equal when asked for, where an omitted variant stands for the
// architecture's default (arm64 → v8, arm → v7), as `docker pull --platform` treats them.

import { badRequest } from "../errors.ts";
import type { Descriptor, ImageIndex, Platform } from "./manifest.ts";

export interface PlatformSpec {
  os: string;
  architecture: string;
  variant?: string;
}

const defaultVariant: Record<string, string> = { arm64: "v8", arm: "v7" };

function normalizedVariant(architecture: string, variant: string | undefined): string | undefined {
  return variant ?? defaultVariant[architecture];
}

/** Parses "os/arch[/variant]", e.g. "linux/arm64" or "linux/arm/v7". */
export function parsePlatform(text: string): PlatformSpec {
  const parts = text.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p)))
    throw badRequest(`invalid platform "${text}": expected os/architecture[/variant], e.g. linux/amd64`);
  const [os, architecture, variant] = parts as [string, string, string?];
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

export function formatPlatform(platform: PlatformSpec | Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter((p) => p).join("/");
}

export function platformMatches(candidate: Platform | undefined, wanted: PlatformSpec): boolean {
  if (!candidate || candidate.os !== wanted.os || candidate.architecture !== wanted.architecture) return false;
  if (wanted.variant === undefined) return true;
  return (
    normalizedVariant(candidate.architecture, candidate.variant) ===
    normalizedVariant(wanted.architecture, wanted.variant)
  );
}

/**
 * The index entry for a platform, or undefined. When no variant is asked for and several match, the one
 * with the architecture's default variant (or none) is preferred over other variants.
 */
export function selectPlatform(index: ImageIndex, wanted: PlatformSpec): Descriptor | undefined {
  const matches = index.manifests.filter((d) => platformMatches(d.platform, wanted));
  if (wanted.variant !== undefined || matches.length <= 1) return matches[0];
  const preferred = defaultVariant[wanted.architecture];
  return matches.find((d) => d.platform?.variant === undefined || d.platform.variant === preferred) ?? matches[0];
}
