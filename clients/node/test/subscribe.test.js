// Live updates over server-sent events from a real `store-sql serve`: appended entries,
// resuming with Last-Event-ID, reconnecting across a server restart, session-entry changes.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { StoreClient } from "../src/index.js";
import { ServerUnderTest } from "./harness.js";

const user = (text) => ({ type: "message", message: { role: "user", content: text } });

/** The next `count` events of a subscription (its iterator stays open for more). */
async function take(iterator, count) {
  const out = [];
  while (out.length < count) {
    const { value, done } = await iterator.next();
    if (done) break;
    out.push(value);
  }
  return out;
}

describe("subscriptions", { timeout: 60_000 }, () => {
  let server;
  let client;
  before(async () => {
    server = await ServerUnderTest.start();
    client = new StoreClient(server.clientOptions({ maxRetryDelayMs: 200 }));
  });
  after(async () => {
    client?.close();
    await server?.close();
  });

  async function newSession() {
    const sessionId = randomUUID();
    await client.createTranscript("main", sessionId, { cwd: "/work" });
    return sessionId;
  }

  test("appended entries arrive as `entry` events, each with a cursor id", { timeout: 20_000 }, async () => {
    const sessionId = await newSession();
    // Where the transcript stands now, then the lines after it: the gateway's pattern.
    const { cursor } = await client.changes("main", sessionId);
    const events = client.subscribe("main", sessionId, { lastEventId: cursor });
    const first = events.next();
    const made = await client.append("main", sessionId, [user("one"), user("two")]);
    const got = [(await first).value, ...(await take(events, 1))];
    await events.return();
    assert.deepEqual(got.map((e) => e.type), ["entry", "entry"]);
    assert.deepEqual(got.map((e) => e.data.id), made.map((m) => m.id));
    assert.equal(got[0].data.message.content, "one");
    assert.ok(got.every((e) => typeof e.id === "string" && e.id.length > 0));
  });

  test("fromStart replays the header and every line", { timeout: 20_000 }, async () => {
    const sessionId = await newSession();
    await client.append("main", sessionId, [user("a"), user("b")]);
    const events = client.subscribe("main", sessionId, { fromStart: true });
    const got = await take(events, 3);
    await events.return();
    assert.deepEqual(got.map((e) => e.type), ["header", "entry", "entry"]);
    assert.equal(got[0].data.id, sessionId);
  });

  test("lastEventId resumes after the last event seen: nothing lost, nothing twice", { timeout: 20_000 }, async () => {
    const sessionId = await newSession();
    await client.append("main", sessionId, [user("1"), user("2"), user("3")]);
    const events = client.subscribe("main", sessionId, { fromStart: true });
    const seen = await take(events, 3); // header, 1, 2
    await events.return();
    await client.append("main", sessionId, [user("4")]);
    const resumed = client.subscribe("main", sessionId, { lastEventId: seen[2].id });
    const rest = await take(resumed, 2);
    await resumed.return();
    assert.deepEqual(rest.map((e) => e.data.message.content), ["3", "4"]);
  });

  test("a subscription outlives a server restart and resumes where it was", { timeout: 20_000 }, async () => {
    const sessionId = await newSession();
    const events = client.subscribe("main", sessionId, { fromStart: true });
    await client.append("main", sessionId, [user("before")]);
    const early = await take(events, 2);
    assert.deepEqual(early.map((e) => e.type), ["header", "entry"]);
    await server.restart();
    await client.append("main", sessionId, [user("after")]);
    const late = await take(events, 1);
    await events.return();
    assert.equal(late[0].type, "entry");
    assert.equal(late[0].data.message.content, "after");
  });

  test("a reset ends the old session's stream with `gone`", { timeout: 20_000 }, async () => {
    const key = `agent:main:${randomUUID()}`;
    const sessionId = await newSession();
    await client.patchSessionEntry("main", key, { sessionId, updatedAt: 1 });
    let opened;
    const open = new Promise((done) => (opened = done));
    const events = client.subscribe("main", sessionId, { reconnect: false, onOpen: () => opened() });
    const next = events.next();
    await open;
    const reset = await client.resetSession("main", key, { expect: { sessionId } });
    assert.notEqual(reset.sessionId, sessionId);
    const { value } = await next;
    assert.equal(value.type, "gone");
    assert.equal((await events.next()).done, true);
  });

  test("session-entry changes arrive as upsert and delete events", { timeout: 20_000 }, async () => {
    const key = `agent:feed:${randomUUID()}`;
    let opened;
    const open = new Promise((done) => (opened = done));
    const events = client.subscribeSessions("feed", { onOpen: () => opened() });
    const first = events.next();
    // The feed starts at the server's present: write once the stream is open.
    await open;
    await client.patchSessionEntry("feed", key, { sessionId: "f1", updatedAt: 3 });
    await client.deleteSessionEntry("feed", key);
    const got = [(await first).value, ...(await take(events, 1))];
    await events.return();
    assert.deepEqual(got.map((e) => e.type), ["upsert", "delete"]);
    assert.deepEqual(got[0].data.entry, { sessionId: "f1", updatedAt: 3 });
    assert.equal(got[0].data.key, key);
    assert.equal(got[1].data.key, key);
  });
});
