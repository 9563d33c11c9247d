// Checkpoints, reset and delete, maintenance, search, statistics, export and import through
// a real `store-sql serve`.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StoreClient, ConflictError } from "../src/index.js";
import { ServerUnderTest } from "./harness.js";

const say = (role, text) => ({ type: "message", message: { role, content: [{ type: "text", text }] } });

/** Every key of a service answer, at any depth, except inside `skip` members (stored data). */
function keysOf(value, skip = new Set()) {
  if (Array.isArray(value)) return value.flatMap((item) => keysOf(item, skip));
  if (value === null || typeof value !== "object") return [];
  return Object.entries(value).flatMap(([name, item]) => [name, ...(skip.has(name) ? [] : keysOf(item, skip))]);
}

const snakeKeys = (value, skip) => keysOf(value, skip).filter((name) => /[a-z0-9]_[a-z0-9]/.test(name));

describe("checkpoints, reset and delete", () => {
  let server;
  let client;
  before(async () => {
    server = await ServerUnderTest.start();
    client = new StoreClient(server.clientOptions());
  });
  after(async () => {
    client?.close();
    await server?.close();
  });

  async function newSession(agent = "main") {
    const key = `agent:${agent}:${randomUUID()}`;
    const sessionId = randomUUID();
    await client.createTranscript(agent, sessionId, { cwd: "/work" });
    await client.patchSessionEntry(agent, key, { sessionId, updatedAt: Date.now() });
    return { key, sessionId };
  }

  test("a compaction checkpoint: capture, persist, list, get, its snapshot file", async () => {
    const { key, sessionId } = await newSession();
    const [u1] = await client.append("main", sessionId, [say("user", "one"), say("assistant", "two")]);
    const snapshot = await client.captureCheckpoint("main", sessionId);
    assert.equal(snapshot.sessionId, sessionId);
    assert.equal(snapshot.uptoPos, 2);
    const before = await client.transcriptJsonl("main", sessionId);
    await client.append("main", sessionId, [{ type: "compaction", summary: "so far", firstKeptEntryId: u1.id, tokensBefore: 900 }]);

    const done = await client.persistCheckpoint("main", key, {
      reason: "manual",
      summary: "so far",
      firstKeptEntryId: u1.id,
      tokensBefore: 900,
      snapshot,
    });
    const id = done.checkpoint.checkpointId;
    assert.equal(done.checkpoint.sessionKey, key);
    assert.deepEqual(done.removed, []);
    assert.deepEqual(done.entry.compactionCheckpoints, [done.checkpoint]);
    assert.deepEqual(await client.listCheckpoints("main", key), [done.checkpoint]);
    assert.deepEqual(await client.getCheckpoint("main", key, id), done.checkpoint);
    assert.equal(await client.getCheckpoint("main", key, "no-such-checkpoint"), undefined);
    assert.deepEqual(await client.checkpointSnapshot("main", key, id), before);
  });

  test("branch and restore from a checkpoint", async () => {
    const { key, sessionId } = await newSession();
    await client.append("main", sessionId, [say("user", "kept"), say("assistant", "also kept")]);
    const snapshot = await client.captureCheckpoint("main", sessionId);
    await client.append("main", sessionId, [say("user", "after the checkpoint")]);
    const { checkpoint } = await client.persistCheckpoint("main", key, { reason: "manual", snapshot });

    const newKey = `${key}:branch`;
    const branched = await client.branchFromCheckpoint("main", key, checkpoint.checkpointId, { newKey });
    assert.equal(branched.key, newKey);
    assert.notEqual(branched.sessionId, sessionId);
    assert.equal((await client.getSessionEntry("main", newKey)).sessionId, branched.sessionId);
    const texts = (await client.activePath("main", branched.sessionId)).map((e) => e.message.content[0].text);
    assert.deepEqual(texts, ["kept", "also kept"]);

    const restored = await client.restoreCheckpoint("main", key, checkpoint.checkpointId);
    assert.equal(restored.key, key);
    assert.notEqual(restored.sessionId, sessionId);
    assert.equal((await client.getSessionEntry("main", key)).sessionId, restored.sessionId);
    assert.equal((await client.transcriptInfo("main", restored.sessionId)).entryCount, 2);
  });

  test("reset is compare-and-swap on the session id; delete archives and says whether it deleted", async () => {
    const { key, sessionId } = await newSession();
    await client.append("main", sessionId, [say("user", "before the reset")]);
    await assert.rejects(client.resetSession("main", key, { expect: { sessionId: "someone-else" } }), ConflictError);
    const reset = await client.resetSession("main", key, { expect: { sessionId }, keepFields: ["label"] });
    assert.equal(reset.previousSessionId, sessionId);
    assert.notEqual(reset.sessionId, sessionId);
    assert.equal(reset.archived.length, 1);
    assert.match(reset.archived[0], /\.reset\./);
    assert.equal(await client.transcriptInfo("main", sessionId), undefined);

    assert.equal(await client.deleteSessionEntry("main", key, { archiveTranscript: true }), true);
    assert.equal(await client.getSessionEntry("main", key), undefined);
    assert.equal(await client.deleteSessionEntry("main", key), false);
    const kinds = (await client.listTranscripts("main", { sessionId: reset.sessionId })).map((t) => t.kind);
    assert.deepEqual(kinds, ["deleted"]);
  });

  test("children, counts and the transcript list", async () => {
    const { sessionId } = await newSession();
    const [root] = await client.append("main", sessionId, [say("user", "root")]);
    await client.append("main", sessionId, [say("assistant", "left")]);
    await client.append("main", sessionId, [say("assistant", "right")], { parentId: root.id });
    const children = await client.children("main", sessionId, root.id);
    assert.deepEqual(
      children.map((e) => e.message.content[0].text),
      ["left", "right"],
    );
    const counts = await client.transcriptCounts("main", sessionId);
    assert.equal(counts.entries, 3);
    const listed = await client.listTranscripts("main", { sessionId });
    assert.deepEqual(
      listed.map((t) => [t.sessionId, t.kind]),
      [[sessionId, "live"]],
    );
  });
});

describe("maintenance, search, statistics, export and import", () => {
  const AGENT = "upkeep";
  let server;
  let client;
  let dir;
  const keys = [];
  before(async () => {
    server = await ServerUnderTest.start({ transport: "tcp" });
    client = new StoreClient(server.clientOptions());
    dir = mkdtempSync(join(tmpdir(), "store-sql-upkeep-"));
    const now = Date.now();
    for (let i = 0; i < 5; i++) {
      const key = `agent:${AGENT}:s${i}`;
      const sessionId = randomUUID();
      await client.createTranscript(AGENT, sessionId, { cwd: "/work" });
      await client.append(AGENT, sessionId, [say("user", `question ${i}`), say("assistant", `answer ${i}`)]);
      await client.patchSessionEntry(AGENT, key, { sessionId, updatedAt: now - i * 1000 });
      keys.push({ key, sessionId });
    }
  });
  after(async () => {
    client?.close();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const policy = { mode: "enforce", maxEntries: 3, pruneAfter: "3650d" };

  test("plan and dry runs report the cleanup and change nothing", async () => {
    const plan = await client.planMaintenance(AGENT, { policy });
    assert.equal(plan.agentId, AGENT);
    assert.equal(plan.beforeCount, 5);
    assert.equal(plan.afterCount, 3);
    assert.equal(plan.capped, 2);
    assert.equal(plan.wouldMutate, true);
    const dry = await client.cleanup(AGENT, { policy, dryRun: true });
    assert.equal(dry.afterCount, 3);
    const warned = await client.cleanup(AGENT, { policy: { ...policy, mode: "warn" } });
    assert.equal(warned.mode, "warn");
    assert.equal((await client.listSessionEntries(AGENT)).length, 5);
    assert.deepEqual(snakeKeys(plan), []);
  });

  test("an enforced cleanup caps the index, newest kept; cleanupAll covers every agent", async () => {
    const done = await client.cleanup(AGENT, { policy, activeKey: keys[4].key });
    assert.equal(done.afterCount, 3);
    const left = (await client.listSessionEntries(AGENT)).map((s) => s.key).sort();
    // The active session is kept even though it is the oldest.
    assert.deepEqual(left, [keys[0].key, keys[1].key, keys[4].key].sort());
    const all = await client.cleanupAll({ policy: { mode: "warn" } });
    assert.equal(all.allAgents, true);
    assert.deepEqual(all.stores.map((s) => s.agentId), [AGENT]);
    const space = await client.reclaimSpace();
    assert.equal(typeof space.bytesReclaimed, "number");
  });

  test("search answers camelCase hits, newest first", async () => {
    const { sessionId } = keys[0];
    await client.append(AGENT, sessionId, [say("assistant", "the pangolin-7 report is ready")]);
    const found = await client.search("pangolin-7", { agentId: AGENT, limit: 5, activePathOnly: true });
    assert.equal(found.hits.length, 1);
    const [hit] = found.hits;
    assert.equal(hit.agentId, AGENT);
    assert.equal(hit.sessionKey, keys[0].key);
    assert.equal(hit.sessionId, sessionId);
    assert.equal(hit.role, "assistant");
    assert.match(hit.snippet, /\[pangolin-7\]/);
    assert.deepEqual(snakeKeys(found), []);
    assert.equal((await client.search("pangolin-7", { agentId: AGENT, kinds: ["reset"] })).hits.length, 0);
  });

  test("stats count the agent's sessions and transcripts", async () => {
    const stats = await client.stats({ top: 2 });
    const mine = stats.agents.find((a) => a.agentId === AGENT);
    assert.equal(mine.sessions, 3);
    assert.ok(stats.transcriptsByKind.live >= 3);
    assert.ok(stats.biggestSessions.length <= 2);
    assert.deepEqual(snakeKeys(stats), []);
  });

  test("export writes the files byte for byte; importing one back is idempotent; purge removes it", async () => {
    const out = join(dir, "export");
    const report = await client.exportAgent(AGENT, out);
    assert.deepEqual(snakeKeys(report), []);
    const { sessionId } = keys[0];
    const file = report.files.find((f) => f.relPath.endsWith(`${sessionId}.jsonl`));
    assert.ok(file, JSON.stringify(report.files.map((f) => f.relPath)));
    const exported = readFileSync(join(out, file.relPath));
    assert.deepEqual(exported, await client.transcriptJsonl(AGENT, sessionId));

    const copy = "upkeep-copy";
    const loose = join(dir, "loose");
    mkdirSync(loose);
    writeFileSync(join(loose, `${sessionId}.jsonl`), exported);
    const first = await client.importPath(join(loose, `${sessionId}.jsonl`), { agentId: copy });
    assert.equal(first.ok, true);
    assert.equal(first.dryRun, false);
    assert.deepEqual(snakeKeys(first), []);
    assert.deepEqual(await client.transcriptJsonl(copy, sessionId), exported);
    const again = await client.importPath(join(loose, `${sessionId}.jsonl`), { agentId: copy });
    assert.equal(again.totals.entries, 0);
    assert.equal((await client.listTranscripts(copy)).length, 1);

    const purged = await client.purgeAgent(copy);
    assert.equal(purged.agentId, copy);
    assert.equal(purged.transcripts, 1);
    assert.equal((await client.listAgents()).includes(copy), false);
  });

  test("a transcript of pi's first format migrates to v3", async () => {
    const sessionId = randomUUID();
    const sessions = join(dir, "v1", "sessions");
    mkdirSync(sessions, { recursive: true });
    const path = join(sessions, `${sessionId}.jsonl`);
    writeFileSync(
      path,
      [
        { type: "session", id: sessionId, timestamp: "2026-02-10T08:00:00.000Z", cwd: "/w" },
        { type: "message", timestamp: "2026-02-10T08:00:01.000Z", message: { role: "user", content: "old" } },
      ]
        .map((line) => JSON.stringify(line) + "\n")
        .join(""),
    );
    await client.importPath(path, { agentId: AGENT });
    const migrated = await client.migrateTranscript(AGENT, sessionId);
    assert.equal(migrated.sessionId, sessionId);
    const [entry] = await client.activePath(AGENT, sessionId);
    assert.equal(typeof entry.id, "string");
    assert.equal(entry.parentId, null);
  });
});
