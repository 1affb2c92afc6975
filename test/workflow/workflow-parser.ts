// GitHub's workflow parser (@actions/workflow-parser) imports its JSON schemas without the `type: "json"`
// import attribute Node's ESM loader requires (it is written for bundlers). This hook adds the attribute for
// that package's JSON files only, then loads the parser.

import { registerHooks } from "node:module";

registerHooks({
  load(url, context, nextLoad) {
    if (url.endsWith(".json") && url.includes("/@actions/workflow-parser/"))
      return nextLoad(url, { ...context, importAttributes: { ...context.importAttributes, type: "json" } });
    return nextLoad(url, context);
  },
});

export const { convertWorkflowTemplate, NoOperationTraceWriter, parseWorkflow } = await import(
  "@actions/workflow-parser"
);
