// Transcripts, the turn and the change feed through a real `store-sql serve`.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { StoreClient, ConflictError, NotFoundError, StoreUnavailableError, isIdempotentAppend } from "../src/index.js";
import { ServerUnderTest } from "./harness.js";

const user = (text, idempotencyKey) => ({
  type: "message",
  message: idempotencyKey === undefined ? { role: "user", content: text } : { role: "user", content: text, idempotencyKey },
});
const assistant = (text) => ({ type: "message", message: { role: "assistant", content: [{ type: "text", text }] } });

describe("transcripts", () => {
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

  async function newSession(key = `agent:main:${randomUUID()}`) {
    const sessionId = randomUUID();
    await client.createTranscript("main", sessionId, { cwd: "/work" });
    await client.patchSessionEntry("main", key, { sessionId, updatedAt: 1 });
    return { key, sessionId };
  }

  test("append chains below the leaf and answers ids and parents", async () => {
    const { sessionId } = await newSession();
    const [a, b] = await client.append("main", sessionId, [user("hello"), assistant("hi")]);
    assert.equal(a.parentId, null);
    assert.equal(b.parentId, a.id);
    assert.equal(a.existed, false);
    const [c] = await client.append("main", sessionId, [user("again")]);
    assert.equal(c.parentId, b.id);
    const info = await client.transcriptInfo("main", sessionId);
    assert.equal(info.leafId, c.id);
    assert.equal(info.entryCount, 3);
  });

  test("an idempotency key is written once: the repeat answers the first entry, existed", async () => {
    const { sessionId } = await newSession();
    const entries = [user("once", "key-1"), user("twice", "key-2")];
    assert.equal(isIdempotentAppend(entries), true);
    const first = await client.append("main", sessionId, entries);
    const again = await client.append("main", sessionId, entries);
    assert.deepEqual(
      again.map((r) => [r.id, r.parentId, r.existed]),
      first.map((r) => [r.id, r.parentId, true]),
    );
    assert.equal((await client.transcriptInfo("main", sessionId)).entryCount, 2);
  });

  test("parentId appends a branch; the active path follows the newest leaf", async () => {
    const { sessionId } = await newSession();
    const [root, first] = await client.append("main", sessionId, [user("q"), assistant("a1")]);
    const [other] = await client.append("main", sessionId, [assistant("a2")], { parentId: root.id });
    assert.equal(other.parentId, root.id);
    const path = await client.activePath("main", sessionId);
    assert.deepEqual(path.map((e) => e.id), [root.id, other.id]);
    const tree = await client.tree("main", sessionId);
    assert.equal(tree.leafId, other.id);
    assert.deepEqual(
      tree.nodes.map((n) => [n.id, n.parentId, n.children]),
      [[root.id, null, 2], [first.id, root.id, 0], [other.id, root.id, 0]],
    );
  });

  test("recent is bounded by count; entry reads one; a missing entry is undefined", async () => {
    const { sessionId } = await newSession();
    const made = await client.append("main", sessionId, [user("1"), assistant("2"), user("3"), assistant("4")]);
    const last = await client.recent("main", sessionId, { limit: 2 });
    assert.deepEqual(last.map((e) => e.id), [made[2].id, made[3].id]);
    assert.deepEqual(last[1].message, { role: "assistant", content: [{ type: "text", text: "4" }] });
    assert.equal((await client.entry("main", sessionId, made[0].id)).message.content, "1");
    assert.equal(await client.entry("main", sessionId, "00000000"), undefined);
  });

  test("the .jsonl is the file: a header line, then one line per entry, each ending in a newline", async () => {
    const { sessionId } = await newSession();
    const made = await client.append("main", sessionId, [user("zürich ✓"), assistant("ok")]);
    const bytes = await client.transcriptJsonl("main", sessionId);
    const text = bytes.toString("utf8");
    assert.ok(text.endsWith("\n"));
    const lines = text.slice(0, -1).split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.type), ["session", "message", "message"]);
    assert.equal(lines[0].id, sessionId);
    assert.deepEqual(lines.slice(1).map((l) => l.id), made.map((m) => m.id));
    // What the server sends is what JSON.stringify writes for the same entry.
    const second = text.split("\n")[1];
    assert.equal(second, JSON.stringify(JSON.parse(second)));
  });

  test("changes pages through the lines with a cursor and sees only new ones next time", async () => {
    const { sessionId } = await newSession();
    await client.append("main", sessionId, [user("a"), user("b"), user("c")]);
    const first = await client.changes("main", sessionId, undefined, { limit: 2 });
    assert.deepEqual(first.lines.map((l) => l.kind), ["header", "entry"]);
    const rest = await client.changes("main", sessionId, first.cursor);
    assert.deepEqual(rest.lines.map((l) => l.value.message.content), ["b", "c"]);
    assert.equal(rest.replaced, false);
    const none = await client.changes("main", sessionId, rest.cursor);
    assert.deepEqual(none.lines, []);
    await client.append("main", sessionId, [user("d")]);
    const next = await client.changes("main", sessionId, none.cursor);
    assert.deepEqual(next.lines.map((l) => l.value.message.content), ["d"]);
  });

  test("turn appends and stamps the entry in one step", async () => {
    const { key, sessionId } = await newSession();
    const result = await client.turn("main", key, {
      entries: [user("question", "turn-1"), assistant("answer")],
      updatedAt: 5000,
      fields: { model: "m-1", totalTokens: 42 },
      expectSessionId: sessionId,
    });
    assert.equal(result.sessionId, sessionId);
    assert.equal(result.appended.length, 2);
    assert.deepEqual(result.entry, { sessionId, updatedAt: 5000, model: "m-1", totalTokens: 42 });
    assert.deepEqual(await client.getSessionEntry("main", key), result.entry);
    assert.equal((await client.transcriptInfo("main", sessionId)).leafId, result.appended[1].id);
  });

  test("a turn for a key rebound to another session is ConflictError and writes nothing", async () => {
    const { key, sessionId } = await newSession();
    const rebound = randomUUID();
    await client.createTranscript("main", rebound, { cwd: "/work" });
    await client.patchSessionEntry("main", key, { sessionId: rebound, updatedAt: 2 });
    await assert.rejects(
      client.turn("main", key, { entries: [user("late")], updatedAt: 9, expectSessionId: sessionId }),
      ConflictError,
    );
    assert.equal((await client.transcriptInfo("main", sessionId)).entryCount, 0);
    assert.equal((await client.transcriptInfo("main", rebound)).entryCount, 0);
    assert.equal((await client.getSessionEntry("main", key)).updatedAt, 2);
  });

  test("the context is pi's buildSessionContext of the active path", async () => {
    const { sessionId } = await newSession();
    await client.append("main", sessionId, [user("ctx"), assistant("reply")]);
    const context = await client.context("main", sessionId);
    assert.deepEqual(
      context.messages.map((m) => m.role),
      ["user", "assistant"],
    );
  });

  test("reads of a transcript that does not exist are NotFoundError (entry: undefined)", async () => {
    await assert.rejects(client.recent("main", "no-such-session"), NotFoundError);
    assert.equal(await client.transcriptInfo("main", "no-such-session"), undefined);
  });

  test("createTranscript of an existing session is refused", async () => {
    const { sessionId } = await newSession();
    await assert.rejects(client.createTranscript("main", sessionId, { cwd: "/x" }), /already has a live transcript/);
  });

  test("search finds an appended entry at once", async () => {
    const { key, sessionId } = await newSession();
    const [made] = await client.append("main", sessionId, [user("the marmalade protocol")]);
    const found = await client.search("MARMALADE", { agentId: "main" });
    const hit = found.hits.find((h) => h.entryId === made.id);
    assert.ok(hit, JSON.stringify(found));
    assert.equal(hit.sessionKey, key);
  });

  test("a client found through the database's .serve file works like one given the socket", async () => {
    const found = new StoreClient({ db: server.db });
    try {
      assert.equal((await found.health()).ok, true);
      assert.ok(Array.isArray(await found.listAgents()));
    } finally {
      found.close();
    }
    assert.throws(() => new StoreClient({ db: server.db + "-elsewhere" }), (error) => {
      assert.ok(error instanceof StoreUnavailableError);
      assert.match(error.message, /no server owns .*-elsewhere/);
      return true;
    });
  });
});
