// Compiled (not run) by types.test.js with `tsc --strict`: how a gateway's TypeScript uses
// the client. Each `@ts-expect-error` is a misuse the declared types must refuse.
import {
  StoreClient,
  ConflictError,
  StoreUnavailableError,
  type SessionEntry,
  type Appended,
  type StoreEvent,
  type SessionSummary,
  type CapturedSnapshot,
  type CheckpointFork,
  type CleanupSummary,
} from "../index.js";

async function gateway(): Promise<void> {
  const store = new StoreClient({ socketPath: "/run/store.sock", tokenFile: "/data/db.token" });
  const entry: SessionEntry | undefined = await store.getSessionEntry("main", "agent:main:main");
  if (entry === undefined) return;
  const updatedAt: number = entry.updatedAt;
  const rows: SessionSummary[] = await store.listSessionEntries("main", { limit: 10, label: "x" });
  const newest: string | undefined = rows[0]?.key;

  await store.patchSessionEntry("main", "k", { label: null }, { expect: { sessionId: entry.sessionId, updatedAt } });
  await store.updateSessionStoreEntry("main", "k", (current) => ({ compactionCount: Number(current["compactionCount"] ?? 0) + 1 }));
  await store.updateSessionStoreEntry("main", "k", async () => null);
  const deleted: boolean = await store.deleteSessionEntry("main", "k", { archiveTranscript: true });

  const appended: Appended[] = await store.append("main", entry.sessionId, [
    { type: "message", message: { role: "user", content: "hi", idempotencyKey: "m-1" } },
  ]);
  const firstId: string | undefined = appended[0]?.id;
  const turn = await store.turn("main", "k", { entries: [], expectSessionId: entry.sessionId, fields: { model: "m" } });
  const turnEntry: SessionEntry = turn.entry;
  const page = await store.changes("main", entry.sessionId, undefined, { limit: 100 });
  const cursor: string = page.cursor;
  for (const line of page.lines) if (line.value) console.log(line.value.type);
  const tree = await store.tree("main", entry.sessionId);
  const leaf: string | null = tree.leafId;
  const hits = await store.search("deploy", { agentId: "main" });
  const key: string | null | undefined = hits.hits[0]?.sessionKey;

  const snapshot: CapturedSnapshot = await store.captureCheckpoint("main", entry.sessionId);
  const persisted = await store.persistCheckpoint("main", "k", { reason: "manual", tokensBefore: 100, snapshot });
  const checkpointId: string = persisted.checkpoint.checkpointId;
  const fork: CheckpointFork = await store.branchFromCheckpoint("main", "k", checkpointId, { newKey: "k2" });
  const snapshotBytes: Buffer = await store.checkpointSnapshot("main", "k", checkpointId);
  const summary: CleanupSummary = await store.cleanup("main", { policy: { mode: "enforce", maxEntries: 200 } });
  const wouldMutate: boolean = (await store.planMaintenance("main")).wouldMutate;
  const bytes: number = (await store.stats({ top: 5 })).databaseBytes;
  const imported: boolean = (await store.importPath("/data/state", { dryRun: true })).ok;
  const exportedFiles: number = (await store.exportAgent("main", "/tmp/out")).files.length;
  console.log(fork.sessionId, snapshotBytes.length, summary.afterCount, wouldMutate, bytes, imported, exportedFiles);

  const controller = new AbortController();
  for await (const event of store.subscribe("main", entry.sessionId, { lastEventId: cursor, signal: controller.signal })) {
    const typed: StoreEvent = event;
    if (typed.type === "gone") break;
  }
  try {
    await store.touchSessionEntry("main", "k", Date.now());
  } catch (error) {
    if (error instanceof ConflictError) console.log(error.code, error.status, error.attempts);
    if (error instanceof StoreUnavailableError) console.log(error.maybeApplied);
  }
  store.close();
  console.log(newest, deleted, firstId, turnEntry, leaf, key);

  // @ts-expect-error: the agent comes first
  await store.getSessionEntry("agent:main:main");
  // @ts-expect-error: an expectation has no such part
  await store.patchSessionEntry("main", "k", {}, { expect: { session: "s" } });
  // @ts-expect-error: entries are objects with a type
  await store.append("main", "s", ["text"]);
  // @ts-expect-error: listSessionEntries takes no such filter
  await store.listSessionEntries("main", { newest: true });
  // @ts-expect-error: a policy's mode is warn or enforce
  await store.cleanup("main", { policy: { mode: "apply" } });
  // @ts-expect-error: a checkpoint needs its reason
  await store.persistCheckpoint("main", "k", { summary: "s" });
  // @ts-expect-error: socketPath is a string
  new StoreClient({ socketPath: 5 });
}

void gateway;
