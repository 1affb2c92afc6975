import { startDistribution } from "../harness/distribution.ts";
import { clientSuite } from "./client-suite.ts";

clientSuite(() => startDistribution());
