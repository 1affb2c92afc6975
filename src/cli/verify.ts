// `boot-assets verify IMAGE`: checks an image's cosign signatures (legacy `.sig` or v3 bundles) with cosign's
// flags, printing one line per verified signature, or failing with why each signature was refused. A digest
// reference makes no request for the image itself, so a signature can be checked before anything is pulled.

import type { Command } from "commander";
import { parseReference } from "../oci/reference.ts";
import { describeVerifiedSignature, SignatureVerifier } from "../signing/verify.ts";
import {
  addVerificationOptions,
  loadVerification,
  type VerificationCliOptions,
  verificationOptionsFrom,
} from "../signing/verify-options.ts";
import {
  addRegistryClientOptions,
  type RegistryClientCliOptions,
  registryClientFromOptions,
} from "./registry-options.ts";

type VerifyCliOptions = VerificationCliOptions & RegistryClientCliOptions;

async function verify(imageText: string, options: VerifyCliOptions): Promise<void> {
  const name = imageText.startsWith("docker://") ? imageText.slice("docker://".length) : imageText;
  const ref = parseReference(name);
  // Files are read and regexps compiled before any request: a typo fails fast.
  const verification = await loadVerification(verificationOptionsFrom(options));
  const client = registryClientFromOptions(options, [ref.registry]);
  try {
    const image = await new SignatureVerifier(client, verification).verify(ref);
    for (const signature of image.signatures) process.stdout.write(`${describeVerifiedSignature(image, signature)}\n`);
    // Candidates that did not verify beside the one that did: reported, never fatal (as cosign).
    for (const reason of image.rejected) process.stderr.write(`rejected candidate: ${reason}\n`);
  } finally {
    await client.close();
  }
}

export function registerVerifyCommand(program: Command): void {
  const command = program
    .command("verify")
    .description(
      "Verify an image's cosign signatures (bundles first, else the legacy .sig); prints one line per verified signature",
    )
    .argument("<image>", "HOST/REPO[:TAG|@DIGEST] (a digest reference reads only the signature artifacts)");
  addRegistryClientOptions(addVerificationOptions(command)).action((image: string, options: VerifyCliOptions) =>
    verify(image, options),
  );
}
