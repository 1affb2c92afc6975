import { startDistribution } from "../harness/distribution.ts";
import { signSuite } from "./sign-suite.ts";

signSuite(() => startDistribution());
