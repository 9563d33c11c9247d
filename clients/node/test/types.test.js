// index.d.ts against a gateway's use of it (types-usage.ts), with `tsc --strict`: the
// declarations compile, and the misuses marked @ts-expect-error are refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const TSC = join(HERE, "..", "node_modules", "typescript", "bin", "tsc");
const missing = existsSync(TSC)
  ? false
  : "typescript is not installed in clients/node (python3 tools/dev.py test runs npm ci there)";

test("index.d.ts compiles under --strict and refuses the misuses", { skip: missing, timeout: 120_000 }, () => {
  const done = spawnSync(process.execPath, [TSC, "-p", join(HERE, "tsconfig.json")], { encoding: "utf8" });
  assert.equal(done.status, 0, done.stdout + done.stderr);
});
