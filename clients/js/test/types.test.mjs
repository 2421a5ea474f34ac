// The types reject what the server would: test/types/consumer.ts type-checks, and each of its
// `@ts-expect-error` lines is an error (tsc fails on a directive with nothing to expect).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const tsc = fileURLToPath(new URL("../node_modules/typescript/bin/tsc", import.meta.url));

test("a consumer's typed use of events and commands compiles; wrong payloads do not", () => {
  const result = spawnSync(process.execPath, [tsc, "-p", "tsconfig.json"], {
    cwd: here,
    encoding: "utf8",
  });
  assert.equal(result.status, 0, result.stdout + result.stderr);
});
