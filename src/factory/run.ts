// Starting the factory service from a validated configuration. The HTTP service is built in its own work
// item; until it lands this refuses honestly instead of pretending to serve.

import { unsupported } from "../errors.ts";
import type { FactoryConfig } from "./config/config.ts";

export async function runFactory(_config: FactoryConfig): Promise<void> {
  throw unsupported(
    "serving is not built yet: the configuration is valid (boot-assets factory --check-config prints it and exits)",
    "NOT_BUILT_YET",
  );
}
