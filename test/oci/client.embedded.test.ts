import { startEmbeddedRegistry } from "../harness/embedded.ts";
import { clientSuite } from "./client-suite.ts";

clientSuite(() => startEmbeddedRegistry());
