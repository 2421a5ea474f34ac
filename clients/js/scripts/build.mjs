// The second half of a build, after tsc has written DIST:
//
//     node scripts/build.mjs DIST [SERVED]
//
// formats the output for people who read it (prettier), and copies DIST/bugstream.js to
// SERVED: `npm run build` gives src/bugstream/web/bugstream.js, the file the server serves at
// /static/bugstream.js (the Python package ships it without a build step).
// tests/client/test_js_package.py fails when that copy differs from a fresh build.
import { readdir, readFile, writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import * as prettier from "prettier";

const [distArg, servedArg] = process.argv.slice(2);
if (!distArg) throw new Error("usage: node scripts/build.mjs DIST [SERVED]");
const dist = pathToFileURL(resolve(distArg) + "/");

for (const name of await readdir(dist)) {
  if (!name.endsWith(".js") && !name.endsWith(".d.ts")) continue;
  const file = new URL(name, dist);
  const source = await readFile(file, "utf8");
  const parser = name.endsWith(".d.ts") ? "typescript" : "babel";
  await writeFile(file, await prettier.format(source, { parser, printWidth: 100 }));
}
if (servedArg) await writeFile(servedArg, await readFile(new URL("bugstream.js", dist), "utf8"));
