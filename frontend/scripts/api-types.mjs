// The API types the pages are compiled against, made by openapi-typescript from the schemas in
// src/api (the server's OpenAPI schema, and the job websocket's events). `node
// scripts/api-types.mjs` writes them; `--check` writes nothing and fails when a committed .d.ts
// is not what its .yaml makes now, so a schema change that was not carried into the types fails
// `make frontend-test` instead of the page.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

const SCHEMAS = [
  ["src/api/openapi.yaml", "src/api/schema.d.ts"],
  ["src/api/job-events.yaml", "src/api/job-events.d.ts"],
];
const cli = join("node_modules", "openapi-typescript", "bin", "cli.js");
const check = process.argv.includes("--check");
const scratch = check ? mkdtempSync(join(tmpdir(), "api-types-")) : null;
const stale = [];
try {
  for (const [yaml, types] of SCHEMAS) {
    const out = scratch ? join(scratch, basename(types)) : types;
    execFileSync(process.execPath, [cli, yaml, "-o", out], { stdio: ["ignore", "ignore", "inherit"] });
    if (scratch && (!existsSync(types) || readFileSync(out, "utf8") !== readFileSync(types, "utf8"))) stale.push(`${types} (from ${yaml})`);
  }
} finally {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}
if (stale.length) {
  console.error(`stale API types: ${stale.join(", ")}. Run \`npm run api-types\` in frontend/ and commit the result.`);
  process.exit(1);
}
