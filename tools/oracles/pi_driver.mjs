// The real pi session code as an oracle: reads requests (one JSON object per line) on stdin
// and answers each with one JSON line on stdout, so one Node process serves a whole test run.
//
//   node pi_driver.mjs <install dir printed by tools/oracles/pi>
//
// Transcripts travel as base64 of the file's bytes (`data`): pi reads files as UTF-8 itself.
// Requests:
//   {"op": "read", "data": <file bytes>, "leafId"?: id}
//       pi's view of a transcript, two ways:
//       - parseSessionEntries -> migrateSessionEntries -> buildSessionContext (the entries
//         without the header): `context`, a JSON.stringify text;
//       - SessionManager.open on a copy of the file (pi migrates and rewrites the copy):
//         `sessionId` (another id than the header's: pi rejected the file and started a
//         new session), `migrated` (the rewritten copy, or null when no migration ran),
//         `ids` (every entry in file order), `leaf`, `branch` (root -> leaf ids), `tree`
//         (`treeRows`), `labels` ([targetId, label] in pi's map order), `name`,
//         `managerContext` (SessionManager.buildSessionContext).
//   {"op": "append", "data": <file bytes>, "calls": [[method, ...args], ...]}
//       Opens the file with SessionManager and makes the calls; `lines` holds the bytes pi
//       appended to the file for each call, with `ids` and `timestamps` the entries got.
//       An argument {"$undefined": true} is passed as `undefined` (an optional argument
//       left out before one that is given).
//   {"op": "time_context", "path": <file>, "rounds": n}
//       Fastest of n rounds of reading the file and building its context as pi does on
//       load (read, parse, migrate, buildSessionContext), in milliseconds.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const installDir = process.argv[2];
const entry = join(installDir, "node_modules/@mariozechner/pi-coding-agent/dist/index.js");
const pi = await import(pathToFileURL(entry).href);
const { SessionManager, buildSessionContext, migrateSessionEntries, parseSessionEntries } = pi;

const scratch = mkdtempSync(join(tmpdir(), "pi-oracle-"));
process.on("exit", () => rmSync(scratch, { recursive: true, force: true }));
let fileCount = 0;

function writeCopy(data) {
  const path = join(scratch, `s${fileCount++}.jsonl`);
  writeFileSync(path, data);
  return path;
}

function contextByFunctions(text, leafId) {
  const entries = parseSessionEntries(text);
  migrateSessionEntries(entries);
  const body = entries.filter((e) => e.type !== "session");
  return JSON.stringify(buildSessionContext(body, leafId));
}

// The tree flattened depth first, children in pi's order: [id, tree parent id, label] rows
// (a nested answer would be as deep as the transcript is long).
function treeRows(roots) {
  const rows = [];
  const stack = roots.map((node) => [node, null]).reverse();
  while (stack.length > 0) {
    const [node, parent] = stack.pop();
    rows.push([node.entry.id, parent, node.label ?? null]);
    for (let i = node.children.length - 1; i >= 0; i--) stack.push([node.children[i], node.entry.id]);
  }
  return rows;
}

function read(request) {
  const data = Buffer.from(request.data, "base64");
  const path = writeCopy(data);
  const context = contextByFunctions(readFileSync(path, "utf8"), request.leafId);
  const manager = SessionManager.open(path, scratch);
  const rewritten = readFileSync(path);
  const entries = manager.getEntries();
  const answer = {
    context,
    sessionId: manager.getSessionId(),
    migrated: rewritten.equals(data) ? null : rewritten.toString("base64"),
    ids: entries.map((e) => e.id),
    leaf: manager.getLeafId(),
    branch: manager.getBranch().map((e) => e.id),
    tree: treeRows(manager.getTree()),
    labels: [...manager.labelsById.entries()],
    name: manager.getSessionName() ?? null,
    managerContext: JSON.stringify(manager.buildSessionContext()),
  };
  rmSync(path, { force: true });
  return answer;
}

const isUndefinedMark = (value) =>
  value !== null && typeof value === "object" && !Array.isArray(value) &&
  Object.keys(value).length === 1 && value.$undefined === true;

function append(request) {
  const path = writeCopy(Buffer.from(request.data, "base64"));
  const manager = SessionManager.open(path, scratch);
  const lines = [];
  const ids = [];
  const timestamps = [];
  let size = readFileSync(path).length;
  for (const [method, ...args] of request.calls) {
    const id = manager[method](...args.map((a) => (isUndefinedMark(a) ? undefined : a)));
    const after = readFileSync(path);
    lines.push(after.subarray(size).toString("base64"));
    size = after.length;
    ids.push(id);
    timestamps.push(manager.getEntry(id).timestamp);
  }
  rmSync(path, { force: true });
  return { lines, ids, timestamps };
}

function timeContext(request) {
  let best = Infinity;
  let messages = 0;
  for (let round = 0; round < request.rounds; round++) {
    const start = process.hrtime.bigint();
    const entries = parseSessionEntries(readFileSync(request.path, "utf8"));
    migrateSessionEntries(entries);
    const context = buildSessionContext(entries.filter((e) => e.type !== "session"));
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    messages = context.messages.length;
    best = Math.min(best, ms);
  }
  return { ms: best, messages };
}

const ops = { read, append, time_context: timeContext };
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  let answer;
  try {
    const request = JSON.parse(line);
    answer = ops[request.op](request);
  } catch (error) {
    answer = { error: String(error && error.stack ? error.stack : error) };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
