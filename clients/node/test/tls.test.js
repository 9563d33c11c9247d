// https: the client against a server given --tls-cert/--tls-key, trusting its certificate
// through `ca`; one that does not trust it is refused by TLS, not answered.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StoreClient, StoreUnavailableError } from "../src/index.js";
import { ServerUnderTest, selfSignedCertificate } from "./harness.js";

const dir = mkdtempSync(join(tmpdir(), "store-sql-tls-"));
const tls = selfSignedCertificate(dir);

test("reads and writes over https with the server's certificate as ca", { skip: tls ? false : "openssl is not installed", timeout: 60_000 }, async () => {
  const server = await ServerUnderTest.start({ transport: "tcp", tls });
  const client = new StoreClient(server.clientOptions());
  const untrusting = new StoreClient(server.clientOptions({ ca: undefined }));
  try {
    await client.patchSessionEntry("main", "agent:main:tls", { sessionId: "t", updatedAt: 1 });
    assert.deepEqual(await client.getSessionEntry("main", "agent:main:tls"), { sessionId: "t", updatedAt: 1 });
    await assert.rejects(untrusting.getSessionEntry("main", "agent:main:tls"), (error) => {
      assert.ok(error instanceof StoreUnavailableError);
      assert.match(String(error.cause?.code ?? error.cause), /SELF_SIGNED|CERT/);
      assert.equal(error.maybeApplied, false);
      return true;
    });
  } finally {
    client.close();
    untrusting.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
