// Builds the plugin (main.js, CommonJS as Obsidian loads it; `obsidian` is the host's) or,
// with `test`, the tests: each test file bundled with the plugin's code and `obsidian`
// replaced by the stand-in of test/obsidian.ts, for node's test runner.
import esbuild from "esbuild";
import { readdirSync } from "node:fs";

const mode = process.argv[2] ?? "production";
// the SDK from its source: the plugin ships one file
const alias = { "@owp/protocol": "../typescript/src/index.ts" };

if (mode === "test") {
  const entries = readdirSync("test").filter((f) => f.endsWith(".test.ts")).map((f) => `test/${f}`);
  await esbuild.build({
    entryPoints: entries,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outdir: "dist-test",
    sourcemap: "inline",
    alias: { ...alias, obsidian: "./test/obsidian.ts" },
    logLevel: "warning",
  });
} else {
  await esbuild.build({
    entryPoints: ["src/main.ts"],
    bundle: true,
    format: "cjs",
    platform: "browser",
    target: "es2022",
    outfile: "main.js",
    external: ["obsidian", "electron", "@codemirror/*", "@lezer/*"],
    alias,
    minify: mode === "production",
    sourcemap: mode === "production" ? false : "inline",
    logLevel: "warning",
  });
}
