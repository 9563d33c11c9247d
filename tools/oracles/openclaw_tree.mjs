// Reads transcripts the way OpenClaw's own tree code reads them, for the tests.
//
//   node openclaw_tree.mjs DIST < cases.json > results.json
//
// DIST is the installed package's dist/ folder (tools/oracles/openclaw --install prints the
// install; node_modules/openclaw/dist inside it). The bundle names its files by content
// hash and its exports by single letters, so the module is found by the function it
// defines and each function by the name its export clause gives it. Input: a JSON array of
// transcripts, each an array of entries (parsed JSON values, file order). Output: for each,
// what OpenClaw's scan and selectors say.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const dist = process.argv[2];
const file = fs
  .readdirSync(dist)
  .filter((name) => name.endsWith(".mjs"))
  .find((name) =>
    fs.readFileSync(path.join(dist, name), "utf8").includes("function scanSessionTranscriptTree("),
  );
if (!file) throw new Error(`no module defining scanSessionTranscriptTree in ${dist}`);
const source = fs.readFileSync(path.join(dist, file), "utf8");
const clause = source.match(/export \{([^}]*)\}/)[1];
const exported = Object.fromEntries(
  clause.split(",").map((part) => {
    const [name, alias] = part.trim().split(/\s+as\s+/);
    return [name, alias ?? name];
  }),
);
const mod = await import(pathToFileURL(path.join(dist, file)).href);
const pick = (name) => {
  const fn = mod[exported[name]];
  if (typeof fn !== "function") throw new Error(`${file} does not export ${name}`);
  return fn;
};
const scan = pick("scanSessionTranscriptTree");
const pathNodes = pick("selectSessionTranscriptTreePathNodes");
const activeEntries = pick("selectSessionTranscriptActiveEntries");

const cases = JSON.parse(fs.readFileSync(0, "utf8"));
const results = cases.map((entries) => {
  const tree = scan(entries);
  const indexOf = new Map(entries.map((entry, index) => [entry, index]));
  return {
    leafId: tree.leafId ?? null,
    appendParentId: tree.appendParentId ?? null,
    hasLeafControl: tree.hasLeafControl,
    hasExplicitLeafUpdate: tree.hasExplicitLeafUpdate,
    hasInvalidLeafControl: tree.hasInvalidLeafControl,
    parents: tree.nodes.map((node) => [node.index, node.id, node.parentId ?? null]),
    activePath: pathNodes(tree, tree.leafId).map((node) => node.index),
    context: activeEntries({ entries, recordOf: (entry) => entry, tree }).map((entry) =>
      indexOf.get(entry),
    ),
  };
});
process.stdout.write(JSON.stringify(results));
