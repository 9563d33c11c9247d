// The retry rule of transport.js, against a real HTTP server on a unix socket that fails on
// purpose: which requests are sent again, and which end in StoreUnavailableError.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StoreClient, StoreUnavailableError, BusyError, ConflictError } from "../src/index.js";

/** A server whose handler decides per request; records every request it saw. */
async function peer(handler) {
  const dir = mkdtempSync(join(tmpdir(), "store-sql-peer-"));
  const socketPath = join(dir, "peer.sock");
  const seen = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      seen.push({ method: req.method, url: req.url, body: Buffer.concat(chunks).toString(), headers: req.headers });
      handler(seen.length, req, res);
    });
  });
  await new Promise((done) => server.listen(socketPath, done));
  const client = new StoreClient({ socketPath, token: "t0k", maxRetryDelayMs: 20 });
  return {
    client,
    seen,
    async close() {
      client.close();
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const json = (res, status, value, headers = {}) => {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(value));
};
const dropFirst = (ok) => (n, req, res) => (n === 1 ? req.socket.destroy() : ok(res));

test("BUSY is retried after Retry-After for any request, even an append without keys", async () => {
  const p = await peer((n, req, res) =>
    n < 3
      ? json(res, 503, { error: { code: "BUSY", message: "queue full" } }, { "retry-after": "0" })
      : json(res, 200, [{ id: "a1", parentId: null, existed: false }]),
  );
  try {
    const out = await p.client.append("main", "s1", [{ type: "custom", customType: "x", data: {} }]);
    assert.deepEqual(out, [{ id: "a1", parentId: null, existed: false }]);
    assert.equal(p.seen.length, 3);
    assert.equal(p.seen[0].headers.authorization, "Bearer t0k");
  } finally {
    await p.close();
  }
});

test("BUSY that never clears ends in BusyError after maxAttempts", async () => {
  const p = await peer((n, req, res) => json(res, 503, { error: { code: "BUSY", message: "stopping" } }));
  try {
    await assert.rejects(p.client.getSessionEntry("main", "k"), BusyError);
    assert.equal(p.seen.length, 6);
  } finally {
    await p.close();
  }
});

test("an append whose entries all carry idempotency keys is sent again after a lost connection", async () => {
  const p = await peer(dropFirst((res) => json(res, 200, [{ id: "b2", parentId: "a1", existed: true }])));
  try {
    const entries = [{ type: "message", message: { role: "user", content: "hi", idempotencyKey: "k-1" } }];
    const out = await p.client.append("main", "s1", entries);
    assert.equal(out[0].existed, true);
    assert.equal(p.seen.length, 2);
    assert.equal(p.seen[0].body, p.seen[1].body);
  } finally {
    await p.close();
  }
});

test("an append without idempotency keys is not sent again: maybeApplied says why", async () => {
  const p = await peer(dropFirst((res) => json(res, 200, [])));
  try {
    const entries = [{ type: "message", message: { role: "user", content: "no key" } }];
    await assert.rejects(p.client.append("main", "s1", entries), (error) => {
      assert.ok(error instanceof StoreUnavailableError);
      assert.equal(error.maybeApplied, true);
      return true;
    });
    assert.equal(p.seen.length, 1);
  } finally {
    await p.close();
  }
});

test("reads are sent again after a lost connection", async () => {
  const p = await peer(dropFirst((res) => json(res, 200, { sessionId: "s1", updatedAt: 5 })));
  try {
    assert.deepEqual(await p.client.getSessionEntry("main", "agent:main:main"), { sessionId: "s1", updatedAt: 5 });
    assert.equal(p.seen.length, 2);
    assert.equal(p.seen[1].url, "/v1/agents/main/sessions/agent%3Amain%3Amain");
  } finally {
    await p.close();
  }
});

test("a guarded patch repeated after its first attempt applied is recognised, not a conflict", async () => {
  let stored = { sessionId: "s1", updatedAt: 1 };
  const p = await peer((n, req, res) => {
    if (req.method === "GET") return json(res, 200, stored);
    if (n === 1) {
      stored = { ...stored, updatedAt: 2 };
      return req.socket.destroy();
    }
    return json(res, 409, { error: { code: "CONFLICT", message: "updatedAt is 2, not 1" } });
  });
  try {
    const out = await p.client.patchSessionEntry("main", "k", { updatedAt: 2 }, { expect: { updatedAt: 1 } });
    assert.deepEqual(out, { sessionId: "s1", updatedAt: 2 });
    assert.deepEqual(JSON.parse(p.seen[0].body), { patch: { updatedAt: 2 }, expect: { updatedAt: 1 } });
  } finally {
    await p.close();
  }
});

test("a conflict on the first attempt is the caller's: ConflictError", async () => {
  const p = await peer((n, req, res) => json(res, 409, { error: { code: "CONFLICT", message: "rebound" } }));
  try {
    await assert.rejects(
      p.client.patchSessionEntry("main", "k", { label: "x" }, { expect: { sessionId: "old" } }),
      (error) => error instanceof ConflictError && error.message === "rebound" && error.status === 409,
    );
    assert.equal(p.seen.length, 1);
  } finally {
    await p.close();
  }
});

test("a server that is not there yet is retried (nothing was sent), then reported", async () => {
  const dir = mkdtempSync(join(tmpdir(), "store-sql-none-"));
  const client = new StoreClient({ socketPath: join(dir, "missing.sock"), token: "x", maxAttempts: 3 });
  try {
    await assert.rejects(
      client.append("main", "s1", [{ type: "custom", customType: "x", data: {} }]),
      (error) => error instanceof StoreUnavailableError && error.maybeApplied === false,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Upkeep calls: which are repeated after a lost connection (the request reached the server).
const upkeep = [
  { name: "captureCheckpoint (writes nothing)", call: (c) => c.captureCheckpoint("main", "s1"), repeated: true },
  { name: "planMaintenance (writes nothing)", call: (c) => c.planMaintenance("main", {}), repeated: true },
  {
    name: "cleanup in warn mode (writes nothing)",
    call: (c) => c.cleanup("main", { policy: { mode: "warn" } }),
    repeated: true,
  },
  {
    name: "cleanup enforced as a dry run (writes nothing)",
    call: (c) => c.cleanup("main", { policy: { mode: "enforce" }, dryRun: true }),
    repeated: true,
  },
  { name: "reclaimSpace (a repeat leaves what one leaves)", call: (c) => c.reclaimSpace(), repeated: true },
  { name: "exportAgent (the same files again)", call: (c) => c.exportAgent("main", "/tmp/out"), repeated: true },
  { name: "importPath (a re-import reads only what is new)", call: (c) => c.importPath("/tmp/in"), repeated: true },
  { name: "search", call: (c) => c.search("x"), repeated: true },
  { name: "stats", call: (c) => c.stats(), repeated: true },
  {
    name: "persistCheckpoint (a repeat records a second checkpoint)",
    call: (c) => c.persistCheckpoint("main", "k", { reason: "manual" }),
    repeated: false,
  },
  {
    name: "branchFromCheckpoint (a repeat makes a second session)",
    call: (c) => c.branchFromCheckpoint("main", "k", "c1"),
    repeated: false,
  },
  {
    name: "restoreCheckpoint (each restore makes a new session id)",
    call: (c) => c.restoreCheckpoint("main", "k", "c1"),
    repeated: false,
  },
  {
    name: "cleanup enforced (its summary would be lost)",
    call: (c) => c.cleanup("main", { policy: { mode: "enforce" } }),
    repeated: false,
  },
  { name: "cleanupAll enforced", call: (c) => c.cleanupAll({ policy: { mode: "enforce" } }), repeated: false },
  { name: "purgeAgent (a repeat removes what came meanwhile)", call: (c) => c.purgeAgent("main"), repeated: false },
  { name: "migrateTranscript", call: (c) => c.migrateTranscript("main", "s1"), repeated: false },
];

for (const { name, call, repeated } of upkeep) {
  test(`after a lost connection, ${name} is ${repeated ? "" : "not "}sent again`, async () => {
    const p = await peer(dropFirst((res) => json(res, 200, { ok: true })));
    try {
      if (repeated) {
        await call(p.client);
        assert.equal(p.seen.length, 2);
        assert.equal(p.seen[0].body, p.seen[1].body);
      } else {
        await assert.rejects(call(p.client), (error) => error instanceof StoreUnavailableError && error.maybeApplied);
        assert.equal(p.seen.length, 1);
      }
    } finally {
      await p.close();
    }
  });
}
