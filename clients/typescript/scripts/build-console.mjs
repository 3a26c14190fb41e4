// Bundles the browser console (console/) with esbuild into dist/console/.
//
// The script and stylesheet get content-hashed names (console-<hash>.js),
// written into index.html: public-rest serves assets with max-age=3600 and
// index.html with no-cache, so a rebuilt console is picked up on the next
// load instead of an hour later.
import { createHash } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { basename } from "node:path";

import { build } from "esbuild";

const out = "dist/console";
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
const result = await build({
  entryPoints: ["console/main.ts"],
  outdir: out,
  entryNames: "console-[hash]",
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022"],
  minify: true,
  sourcemap: true,
  legalComments: "external",
  metafile: true,
  logLevel: "warning",
});
const script = Object.keys(result.metafile.outputs).find((f) => f.endsWith(".js"));
const css = await readFile("console/console.css");
const cssName = `console-${createHash("sha256").update(css).digest("hex").slice(0, 8)}.css`;
await writeFile(`${out}/${cssName}`, css);
const html = (await readFile("console/index.html", "utf-8"))
  .replace('href="console.css"', `href="${cssName}"`)
  .replace('src="console.js"', `src="${basename(script)}"`);
if (!html.includes(cssName) || !html.includes(basename(script))) {
  throw new Error("console/index.html must reference console.css and console.js");
}
await writeFile(`${out}/index.html`, html);
console.log(`console: built ${out}/ (${basename(script)}, ${cssName})`);
