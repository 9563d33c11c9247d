// kill -9 of the server while concurrent clients append with idempotency keys: after the
// restart every acknowledged append is there, and clients that send their unacknowledged
// appends again (same keys) end with exactly one copy of each.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { StoreClient, StoreUnavailableError, BusyError } from "../src/index.js";
import { ServerUnderTest } from "./harness.js";

const WORKERS = 20;
const APPENDS = 25;
const KILLS = 2;

test(`kill -9 during ${WORKERS} clients' keyed appends: acknowledged kept, none twice`, { timeout: 240_000 }, async () => {
  const server = await ServerUnderTest.start();
  const setup = new StoreClient(server.clientOptions());
  const sessions = [];
  for (let w = 0; w < WORKERS; w++) {
    const sessionId = randomUUID();
    await setup.createTranscript("main", sessionId, { cwd: "/work" });
    sessions.push(sessionId);
  }
  setup.close();

  const acked = new Set();
  let sentAgain = 0;
  let unavailable = 0;
  let deduplicated = 0;
  async function worker(w) {
    const client = new StoreClient(server.clientOptions({ maxAttempts: 3, maxRetryDelayMs: 100 }));
    try {
      for (let i = 0; i < APPENDS; i++) {
        const key = `w${w}-${i}`;
        const entry = { type: "message", message: { role: "user", content: key, idempotencyKey: key } };
        for (let tries = 0; ; tries++) {
          try {
            const [done] = await client.append("main", sessions[w], [entry]);
            if (tries > 0) sentAgain += 1;
            // existed: an earlier send (this loop's, or the client's own retry) had written it.
            if (done.existed) deduplicated += 1;
            acked.add(key);
            break;
          } catch (error) {
            if (!(error instanceof StoreUnavailableError || error instanceof BusyError)) throw error;
            unavailable += 1;
            assert.ok(tries < 400, `${key}: the server did not come back`);
            await sleep(25);
          }
        }
      }
    } finally {
      client.close();
    }
  }

  const running = Promise.all(sessions.map((_, w) => worker(w)));
  const total = WORKERS * APPENDS;
  for (let kill = 1; kill <= KILLS; kill++) {
    while (acked.size < (total * kill) / (KILLS + 1)) await sleep(5);
    await server.restart("SIGKILL");
  }
  await running;

  const check = new StoreClient(server.clientOptions());
  try {
    for (let w = 0; w < WORKERS; w++) {
      const lines = (await check.transcriptJsonl("main", sessions[w])).toString("utf8").split("\n").filter(Boolean);
      const entries = lines.slice(1).map((l) => JSON.parse(l));
      const keys = entries.map((e) => e.message.idempotencyKey);
      assert.deepEqual(keys, Array.from({ length: APPENDS }, (_, i) => `w${w}-${i}`), `session ${w}`);
      entries.forEach((e, i) => assert.equal(e.parentId, i === 0 ? null : entries[i - 1].id));
    }
  } finally {
    check.close();
    await server.close();
  }
  assert.equal(acked.size, total);
  console.log(
    `# crash: ${KILLS} kills, ${total} appends acknowledged and found once each; ` +
      `${unavailable} calls met no server, ${sentAgain} appends were sent again, ` +
      `${deduplicated} answered existed (written by a send whose answer was lost)`,
  );
});
