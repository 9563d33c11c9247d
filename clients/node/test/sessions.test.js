// The session index through a real `store-sql serve` on a unix socket and on loopback TCP.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { StoreClient, ConflictError, UnauthorizedError, InvalidRequestError } from "../src/index.js";
import { ServerUnderTest } from "./harness.js";

for (const transport of ["unix", "tcp"]) {
  describe(`session index over ${transport}`, () => {
    let server;
    let client;
    before(async () => {
      server = await ServerUnderTest.start({ transport });
      client = new StoreClient(server.clientOptions());
    });
    after(async () => {
      client?.close();
      await server?.close();
    });

    test("health answers without a token", async () => {
      const anonymous = new StoreClient({ ...server.clientOptions(), tokenFile: undefined });
      try {
        assert.equal((await anonymous.health()).ok, true);
      } finally {
        anonymous.close();
      }
    });

    test("a wrong token is UnauthorizedError and is not retried", async () => {
      const wrong = new StoreClient({ ...server.clientOptions(), tokenFile: undefined, token: "nope" });
      try {
        await assert.rejects(wrong.getSessionEntry("main", "agent:main:main"), UnauthorizedError);
      } finally {
        wrong.close();
      }
    });

    test("patch creates, get reads it back, a missing key is undefined", async () => {
      const key = `agent:main:${transport}:create`;
      assert.equal(await client.getSessionEntry("main", key), undefined);
      const made = await client.patchSessionEntry("main", key, { sessionId: "s-1", updatedAt: 1000, label: "first" });
      assert.deepEqual(made, { sessionId: "s-1", updatedAt: 1000, label: "first" });
      assert.deepEqual(await client.getSessionEntry("main", key), made);
      assert.equal(await client.readSessionUpdatedAt("main", key), 1000);
    });

    test("null in a patch removes the field; unknown fields keep their order", async () => {
      const key = `agent:main:${transport}:order`;
      await client.upsertSessionEntry("main", key, { sessionId: "s", updatedAt: 1, zeta: 1, alpha: { b: 2, a: 1 }, gone: true });
      const after = await client.patchSessionEntry("main", key, { gone: null, beta: [1, 2] });
      assert.deepEqual(Object.keys(after), ["sessionId", "updatedAt", "zeta", "alpha", "beta"]);
      assert.deepEqual(Object.keys(after.alpha), ["b", "a"]);
    });

    test("keys with slashes, spaces, unicode and percent signs round-trip as one path segment", async () => {
      const keys = ["agent:main:a/b", "agent:main:with space", "agent:main:ünï/✓", "agent:main:100%", "__proto__"];
      for (const [i, key] of keys.entries()) {
        await client.patchSessionEntry("main", key, { sessionId: `odd-${i}`, updatedAt: 5, label: key });
        assert.equal((await client.getSessionEntry("main", key)).label, key);
      }
    });

    test("list is newest updatedAt first and filters by label", async () => {
      const agent = `list-${transport}`;
      for (const [i, label] of [[1, "x"], [3, "y"], [2, "x"]]) {
        await client.patchSessionEntry(agent, `agent:${agent}:${i}`, { sessionId: `s${i}`, updatedAt: i * 100, label });
      }
      const all = await client.listSessionEntries(agent);
      assert.deepEqual(all.map((s) => s.key), [`agent:${agent}:3`, `agent:${agent}:2`, `agent:${agent}:1`]);
      const xs = await client.listSessionEntries(agent, { label: "x", limit: 1 });
      assert.deepEqual(xs.map((s) => [s.key, s.updatedAt]), [[`agent:${agent}:2`, 200]]);
      assert.ok((await client.listAgents()).includes(agent));
    });

    test("a guarded patch whose expectation fails is ConflictError and writes nothing", async () => {
      const key = `agent:main:${transport}:guard`;
      await client.patchSessionEntry("main", key, { sessionId: "s-a", updatedAt: 10 });
      await assert.rejects(
        client.patchSessionEntry("main", key, { label: "no" }, { expect: { sessionId: "s-other" } }),
        ConflictError,
      );
      await assert.rejects(
        client.patchSessionEntry("main", key, { label: "no" }, { expect: { updatedAt: 9 } }),
        ConflictError,
      );
      assert.deepEqual(await client.getSessionEntry("main", key), { sessionId: "s-a", updatedAt: 10 });
      const ok = await client.patchSessionEntry("main", key, { label: "yes" }, { expect: { sessionId: "s-a", updatedAt: 10 } });
      assert.equal(ok.label, "yes");
    });

    test("create-once: exists:false refuses an existing entry", async () => {
      const key = `agent:main:${transport}:once`;
      await client.upsertSessionEntry("main", key, { sessionId: "a", updatedAt: 1 }, { expect: { exists: false } });
      await assert.rejects(
        client.upsertSessionEntry("main", key, { sessionId: "b", updatedAt: 2 }, { expect: { exists: false } }),
        ConflictError,
      );
    });

    test("updateSessionStoreEntry: 20 concurrent read-modify-writes lose no increment", async () => {
      const key = `agent:main:${transport}:counter`;
      await client.patchSessionEntry("main", key, { sessionId: "c", updatedAt: 1, count: 0 });
      await Promise.all(
        Array.from({ length: 20 }, () =>
          client.updateSessionStoreEntry("main", key, (entry) => ({ count: entry.count + 1 }), { maxAttempts: 100 }),
        ),
      );
      assert.equal((await client.getSessionEntry("main", key)).count, 20);
    });

    test("updateSessionStoreEntry: null from the updater writes nothing; a missing key is null", async () => {
      const key = `agent:main:${transport}:noop`;
      await client.patchSessionEntry("main", key, { sessionId: "n", updatedAt: 7 });
      const before = await client.getSessionEntryVersion("main", key);
      assert.deepEqual(await client.updateSessionStoreEntry("main", key, () => null), before.entry);
      assert.equal((await client.getSessionEntryVersion("main", key)).version, before.version);
      assert.equal(await client.updateSessionStoreEntry("main", `${key}:missing`, () => ({ a: 1 })), null);
    });

    test("delete: true once, then false; guarded delete of a rebound key is ConflictError", async () => {
      const key = `agent:main:${transport}:del`;
      await client.patchSessionEntry("main", key, { sessionId: "d1", updatedAt: 1 });
      await assert.rejects(client.deleteSessionEntry("main", key, { expect: { sessionId: "d0" } }), ConflictError);
      assert.equal(await client.deleteSessionEntry("main", key, { expect: { sessionId: "d1" } }), true);
      assert.equal(await client.deleteSessionEntry("main", key), false);
      assert.equal(await client.getSessionEntry("main", key), undefined);
    });

    test("touch sets updatedAt only", async () => {
      const key = `agent:main:${transport}:touch`;
      await client.patchSessionEntry("main", key, { sessionId: "t", updatedAt: 1, model: "m" });
      assert.deepEqual(await client.touchSessionEntry("main", key, 12345), { sessionId: "t", updatedAt: 12345, model: "m" });
    });

    test("batch applies all or nothing", async () => {
      const a = `agent:main:${transport}:batch-a`;
      const b = `agent:main:${transport}:batch-b`;
      await client.patchSessionEntry("main", a, { sessionId: "ba", updatedAt: 1 });
      await assert.rejects(
        client.batchSessionEntries("main", [
          { op: "put", key: b, entry: { sessionId: "bb", updatedAt: 2 } },
          { op: "patch", key: a, patch: { label: "x" }, expect: { sessionId: "wrong" } },
        ]),
        ConflictError,
      );
      assert.equal(await client.getSessionEntry("main", b), undefined);
      const results = await client.batchSessionEntries("main", [
        { op: "put", key: b, entry: { sessionId: "bb", updatedAt: 2 } },
        { op: "patch", key: a, patch: { label: "x" }, expect: { sessionId: "ba" } },
        { op: "delete", key: b },
      ]);
      assert.deepEqual(results.map((r) => r.op), ["put", "patch", "delete"]);
      assert.equal(results[1].entry.label, "x");
      assert.equal(results[2].deleted, true);
    });

    test("creating without sessionId is InvalidRequestError with the server's message", async () => {
      await assert.rejects(client.patchSessionEntry("main", "agent:main:bad", { label: "x" }), (error) => {
        assert.ok(error instanceof InvalidRequestError);
        assert.equal(error.status, 400);
        assert.equal(error.code, "INVALID");
        assert.match(error.message, /missing sessionId/);
        return true;
      });
    });

    test("a patch or entry that is not a plain object is refused before anything is sent", async () => {
      await assert.rejects(client.patchSessionEntry("main", "agent:main:bad", [1, 2]), TypeError);
      await assert.rejects(client.upsertSessionEntry("main", "agent:main:bad", null), TypeError);
    });
  });
}
