import { startEmbeddedRegistry } from "../harness/embedded.ts";
import { signSuite } from "./sign-suite.ts";

signSuite(() => startEmbeddedRegistry());
