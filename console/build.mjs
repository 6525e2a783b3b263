// Builds dist/ from src/: one minified ES module (esbuild), the page and the styles. The output is
// committed and embedded in the doorstep binary; CI runs this and fails when dist/ differs.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

mkdirSync("dist", { recursive: true });
await build({
  entryPoints: ["src/main.ts"],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  outfile: "dist/console.js",
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
});
copyFileSync("index.html", "dist/index.html");
copyFileSync("console.css", "dist/console.css");
