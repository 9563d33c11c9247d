// StoreClient: the gateway's session store, served by `store-sql serve`.
//
// Method names follow the gateway's own session-store vocabulary (getSessionEntry,
// patchSessionEntry, updateSessionStoreEntry, ...) so a call site reads the same as before;
// docs/SERVICE.md maps each OpenClaw operation to its call. Which calls are retried, and why
// that is safe, is decided in transport.js; this file only says, per call, which class of
// request it sends.

import { readFileSync } from "node:fs";
import { ConflictError, InvalidRequestError, NotFoundError, StoreUnavailableError } from "./errors.js";
import { subscribeEvents } from "./events.js";
import { Replay, Transport, readAll } from "./transport.js";

const seg = encodeURIComponent;

/** @param {Record<string, unknown>} params */
function query(params) {
  const parts = [];
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null) continue;
    for (const one of Array.isArray(value) ? value : [value]) {
      parts.push(`${seg(name)}=${seg(String(one))}`);
    }
  }
  return parts.length ? "?" + parts.join("&") : "";
}

/** The `expect` body member from the caller's guard (undefined: no guard). */
function expectBody(expect) {
  if (!expect) return undefined;
  const out = {};
  if (expect.sessionId !== undefined) out.sessionId = expect.sessionId;
  if (expect.updatedAt !== undefined) out.updatedAt = expect.updatedAt;
  if (expect.version !== undefined) out.version = expect.version;
  if (expect.exists !== undefined) out.exists = expect.exists;
  return Object.keys(out).length ? out : undefined;
}

/** True when the server de-duplicates every entry: each is a message with an idempotency key. */
export function isIdempotentAppend(entries) {
  return (
    Array.isArray(entries) &&
    entries.length > 0 &&
    entries.every(
      (e) =>
        e !== null &&
        typeof e === "object" &&
        e.type === "message" &&
        e.message !== null &&
        typeof e.message === "object" &&
        typeof e.message.idempotencyKey === "string" &&
        e.message.idempotencyKey !== "",
    )
  );
}

/** Whether `entry` holds every field of `patch` as given (null: the field is absent). */
function holdsPatch(entry, patch) {
  if (!entry) return false;
  return Object.entries(patch).every(([name, value]) =>
    value === null ? !(name in entry) : JSON.stringify(entry[name]) === JSON.stringify(value),
  );
}

function requireObject(value, what) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(`${what} must be a plain object`);
  }
}

function parseJson(buffer) {
  return buffer.length === 0 ? undefined : JSON.parse(buffer.toString("utf8"));
}

function unquote(etag) {
  if (typeof etag !== "string") return undefined;
  return etag.replace(/^W\//, "").replace(/^"|"$/g, "");
}

export class StoreClient {
  /** @param {import("../index.js").StoreClientOptions} [options] */
  constructor(options = {}) {
    this.transport = new Transport(StoreClient.#resolve(options));
  }

  /**
   * Where the server of a database listens, from the `<db>.serve` file `store-sql serve`
   * writes at start ({socket} or {host, port, tls}, and its tokenFile).
   */
  static #resolve(options) {
    if (!options.db || options.socketPath || options.url) return options;
    let record;
    try {
      record = JSON.parse(readFileSync(options.db + ".serve", "utf8"));
    } catch (error) {
      throw new StoreUnavailableError(
        `no server owns ${options.db}: ${options.db}.serve is missing or unreadable (start \`store-sql serve --db ${options.db}\`)`,
        { maybeApplied: false, cause: error },
      );
    }
    const host = record.host?.includes(":") ? `[${record.host}]` : record.host;
    const where = record.socket
      ? { socketPath: record.socket }
      : { url: `${record.tls ? "https" : "http"}://${host}:${record.port}` };
    const tokenFile = options.token ? undefined : (options.tokenFile ?? record.tokenFile ?? options.db + ".token");
    return { ...options, ...where, tokenFile };
  }

  /** Closes idle connections. Pending calls finish. */
  close() {
    this.transport.close();
  }

  async #json(method, path, body, replay, extra = {}) {
    const answer = await this.transport.request({ method, path, body, replay, ...extra });
    return { value: parseJson(answer.body), headers: answer.headers, attempts: answer.attempts };
  }

  /** GET /v1/health: `{ok: true, ...}` (no token needed). */
  async health() {
    return (await this.#json("GET", "/v1/health", undefined, Replay.READ)).value;
  }

  // --- session index ---------------------------------------------------------------------

  #sessionPath(agentId, sessionKey) {
    return `/v1/agents/${seg(agentId)}/sessions/${seg(sessionKey)}`;
  }

  /** The entry of `sessionKey`, or undefined when there is none. */
  async getSessionEntry(agentId, sessionKey) {
    return (await this.getSessionEntryVersion(agentId, sessionKey))?.entry;
  }

  /** The entry and its version (the server's ETag), or undefined when there is none. */
  async getSessionEntryVersion(agentId, sessionKey) {
    try {
      const { value, headers } = await this.#json("GET", this.#sessionPath(agentId, sessionKey), undefined, Replay.READ);
      return { entry: value, version: unquote(headers.etag) };
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /** The entry's `updatedAt`, or undefined. */
  async readSessionUpdatedAt(agentId, sessionKey) {
    const entry = await this.getSessionEntry(agentId, sessionKey);
    return typeof entry?.updatedAt === "number" ? entry.updatedAt : undefined;
  }

  /** Entries newest `updatedAt` first, filtered by the server's indexed columns. */
  async listSessionEntries(agentId, filters = {}) {
    const path =
      `/v1/agents/${seg(agentId)}/sessions` +
      query({
        limit: filters.limit,
        offset: filters.offset,
        updatedAfter: filters.updatedAfter,
        updatedBefore: filters.updatedBefore,
        label: filters.label,
        chatType: filters.chatType,
        channel: filters.channel,
      });
    const { value } = await this.#json("GET", path, undefined, Replay.READ);
    return value.sessions ?? value;
  }

  /** Agents that have a session index. */
  async listAgents() {
    const { value } = await this.#json("GET", "/v1/agents", undefined, Replay.READ);
    return value.agents ?? value;
  }

  /**
   * Merges `patch` into the entry (null removes a field); creates it when missing (then
   * sessionId and updatedAt are required). With `expect` the write is compare-and-swap.
   */
  async patchSessionEntry(agentId, sessionKey, patch, options = {}) {
    requireObject(patch, "a patch");
    const expect = expectBody(options.expect);
    const body = expect ? { patch, expect } : { patch };
    // A merge applied twice leaves what one leaves, so repeating it is harmless unless a guard
    // says otherwise; with a guard, a repeat that meets our own first write answers CONFLICT,
    // which is recognised below by the entry already holding the patch.
    try {
      const { value } = await this.#json("PATCH", this.#sessionPath(agentId, sessionKey), body, Replay.GUARDED);
      return value;
    } catch (error) {
      if (error instanceof ConflictError && error.attempts > 1) {
        const now = await this.getSessionEntry(agentId, sessionKey);
        if (holdsPatch(now, patch)) return now;
      }
      throw error;
    }
  }

  /** Replaces (or creates) the whole entry, optionally guarded by `expect`. */
  async upsertSessionEntry(agentId, sessionKey, entry, options = {}) {
    requireObject(entry, "an entry");
    const expect = expectBody(options.expect);
    const body = expect ? { entry, expect } : { entry };
    try {
      const { value } = await this.#json("PUT", this.#sessionPath(agentId, sessionKey), body, Replay.GUARDED);
      return value;
    } catch (error) {
      if (error instanceof ConflictError && error.attempts > 1) {
        const now = await this.getSessionEntry(agentId, sessionKey);
        if (JSON.stringify(now) === JSON.stringify(entry)) return now;
      }
      throw error;
    }
  }

  /**
   * The gateway's read-modify-write as compare-and-swap: reads the entry and its version,
   * calls `update(entry)` for a patch (null: no change), writes it only if the entry is still
   * at that version, and starts over when another writer came first. Resolves to the entry
   * after the write, or null when there is no entry.
   */
  async updateSessionStoreEntry(agentId, sessionKey, update, options = {}) {
    const maxAttempts = options.maxAttempts ?? 10;
    for (let attempt = 1; ; attempt++) {
      const current = await this.getSessionEntryVersion(agentId, sessionKey);
      if (!current) return null;
      const patch = await update(structuredClone(current.entry));
      if (!patch) return current.entry;
      try {
        return await this.patchSessionEntry(agentId, sessionKey, patch, {
          expect: current.version ? { version: current.version } : { updatedAt: current.entry.updatedAt },
        });
      } catch (error) {
        if (!(error instanceof ConflictError) || attempt >= maxAttempts) throw error;
      }
    }
  }

  /**
   * Removes the entry; false when there was none. `archiveTranscript: true` archives its
   * transcript as `<file>.deleted.<time>`, as the gateway's delete does.
   */
  async deleteSessionEntry(agentId, sessionKey, options = {}) {
    const expect = expectBody(options.expect);
    const body = { archive: options.archiveTranscript ?? false };
    if (expect) body.expect = expect;
    try {
      const { value } = await this.#json("DELETE", this.#sessionPath(agentId, sessionKey), body, Replay.GUARDED);
      return value.deleted;
    } catch (error) {
      // A repeat that meets our own delete finds no entry (its guard then fails): deleted.
      if (error instanceof ConflictError && error.attempts > 1) {
        if ((await this.getSessionEntry(agentId, sessionKey)) === undefined) return true;
      }
      throw error;
    }
  }

  /**
   * The gateway's reset (/new, /reset): a new sessionId and transcript for the key, the old
   * transcript archived. `expect: {sessionId}` makes it ConflictError when someone else reset
   * the key first. Resolves to `{key, previousSessionId, sessionId, entry, archived}`.
   */
  async resetSession(agentId, sessionKey, options = {}) {
    const body = {};
    if (options.cwd !== undefined) body.cwd = options.cwd;
    if (options.keepFields !== undefined) body.keepFields = options.keepFields;
    const expect = expectBody(options.expect);
    if (expect) body.expect = expect;
    const { value } = await this.#json(
      "POST",
      this.#sessionPath(agentId, sessionKey) + "/reset",
      body,
      expect ? Replay.GUARDED : Replay.UNGUARDED,
    );
    return value;
  }

  /** Sets `updatedAt` (now when left out) without touching anything else. */
  async touchSessionEntry(agentId, sessionKey, updatedAt, options = {}) {
    const body = {};
    if (updatedAt !== undefined) body.updatedAt = updatedAt;
    const expect = expectBody(options.expect);
    if (expect) body.expect = expect;
    const { value } = await this.#json(
      "POST",
      this.#sessionPath(agentId, sessionKey) + "/touch",
      body,
      // An explicit time repeats harmlessly; "now" twice is two writes of nearly one value.
      Replay.GUARDED,
    );
    return value;
  }

  /** Several upserts, patches, touches and deletes, each with its own guard, all or none. */
  async batchSessionEntries(agentId, ops) {
    const body = {
      ops: ops.map((op) => {
        const out = { op: op.op, key: op.key };
        if (op.patch !== undefined) out.patch = op.patch;
        if (op.entry !== undefined) out.entry = op.entry;
        if (op.updatedAt !== undefined) out.updatedAt = op.updatedAt;
        const expect = expectBody(op.expect);
        if (expect) out.expect = expect;
        return out;
      }),
    };
    const guarded = ops.every((op) => op.op === "patch" || op.op === "touch" || expectBody(op.expect));
    const { value } = await this.#json(
      "POST",
      `/v1/agents/${seg(agentId)}/sessions:batch`,
      body,
      guarded ? Replay.GUARDED : Replay.UNGUARDED,
    );
    return value.results ?? value;
  }

  // --- transcripts -------------------------------------------------------------------------

  #transcriptPath(agentId, sessionId) {
    return `/v1/agents/${seg(agentId)}/transcripts/${seg(sessionId)}`;
  }

  /** A new live v3 transcript for `sessionId` with the gateway's header. */
  async createTranscript(agentId, sessionId, options) {
    const body = { cwd: options.cwd };
    if (options.parentSession !== undefined) body.parentSession = options.parentSession;
    if (options.timestamp !== undefined) body.timestamp = options.timestamp;
    try {
      const { value } = await this.#json("POST", this.#transcriptPath(agentId, sessionId), body, Replay.GUARDED);
      return value;
    } catch (error) {
      // A repeat after our own create finds the transcript there (400: it exists already).
      if (error instanceof InvalidRequestError && error.attempts > 1) {
        return (await this.#json("GET", this.#transcriptPath(agentId, sessionId), undefined, Replay.READ)).value;
      }
      throw error;
    }
  }

  /**
   * Appends entries as a chain below the leaf (or below `parentId`; null: a new root).
   * Resolves to `[{id, parentId, existed}]`. Retried after a lost connection only when every
   * entry is a message with `message.idempotencyKey` (the server writes each key once).
   */
  async append(agentId, sessionId, entries, options = {}) {
    const body = { entries };
    if (options.parentId !== undefined) body.parentId = options.parentId;
    const { value } = await this.#json(
      "POST",
      this.#transcriptPath(agentId, sessionId) + "/entries",
      body,
      isIdempotentAppend(entries) ? Replay.GUARDED : Replay.UNGUARDED,
    );
    return value.appended ?? value;
  }

  /**
   * One gateway turn in one transaction: appends `entries` to the session's transcript and
   * stamps its entry (`updatedAt`, now when left out, and `fields`). `expectSessionId` makes it
   * fail with ConflictError when the key was rebound (a reset) meanwhile.
   */
  async turn(agentId, sessionKey, turn) {
    const body = { entries: turn.entries };
    if (turn.updatedAt !== undefined) body.updatedAt = turn.updatedAt;
    if (turn.fields !== undefined) body.fields = turn.fields;
    if (turn.expectSessionId !== undefined) body.expectSessionId = turn.expectSessionId;
    if (turn.parentId !== undefined) body.parentId = turn.parentId;
    const { value } = await this.#json(
      "POST",
      this.#sessionPath(agentId, sessionKey) + "/turn",
      body,
      isIdempotentAppend(turn.entries) ? Replay.GUARDED : Replay.UNGUARDED,
    );
    return value;
  }

  /** The last entries of the active path, oldest first, bounded by count and bytes. */
  async recent(agentId, sessionId, options = {}) {
    const path =
      this.#transcriptPath(agentId, sessionId) +
      "/recent" +
      query({ limit: options.limit, maxBytes: options.maxBytes, types: options.types?.join(",") });
    const { value } = await this.#json("GET", path, undefined, Replay.READ);
    return value.entries ?? value;
  }

  /** Root to leaf (or to `toEntryId`). */
  async activePath(agentId, sessionId, options = {}) {
    const path = this.#transcriptPath(agentId, sessionId) + "/path" + query({ to: options.toEntryId });
    const { value } = await this.#json("GET", path, undefined, Replay.READ);
    return value.entries ?? value;
  }

  /**
   * The whole tree as a flat list in file order, `{leafId, nodes: [{pos, id, parentId, type,
   * role, timestamp, label, children}]}` (labels resolved, `children` a count).
   */
  async tree(agentId, sessionId) {
    return (await this.#json("GET", this.#transcriptPath(agentId, sessionId) + "/tree", undefined, Replay.READ)).value;
  }

  /** The model's context as pi's buildSessionContext makes it. */
  async context(agentId, sessionId, options = {}) {
    const path = this.#transcriptPath(agentId, sessionId) + "/context" + query({ leafId: options.leafId });
    return (await this.#json("GET", path, undefined, Replay.READ)).value;
  }

  /** One entry by id, or undefined. */
  async entry(agentId, sessionId, entryId) {
    try {
      const path = this.#transcriptPath(agentId, sessionId) + "/entries/" + seg(entryId);
      return (await this.#json("GET", path, undefined, Replay.READ)).value;
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /**
   * Lines added after `cursor` (undefined: from the start): `{cursor, replaced, lines}`, each
   * line `{pos, kind, value}` (`text` instead of `value` for a damaged line). Pass the returned
   * cursor next time; `replaced` says the transcript was reset, migrated or re-imported, so
   * what was read before no longer stands and `lines` start from the new one's beginning.
   */
  async changes(agentId, sessionId, cursor, options = {}) {
    const path =
      this.#transcriptPath(agentId, sessionId) + "/changes" + query({ cursor, limit: options.limit });
    return (await this.#json("GET", path, undefined, Replay.READ)).value;
  }

  /** Identity, leaf and counters of the session's live transcript, or undefined. */
  async transcriptInfo(agentId, sessionId) {
    try {
      return (await this.#json("GET", this.#transcriptPath(agentId, sessionId), undefined, Replay.READ)).value;
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /** The transcript's JSONL, byte for byte as export writes it. */
  async transcriptJsonl(agentId, sessionId) {
    const response = await this.transport.open({
      path: `/v1/agents/${seg(agentId)}/transcripts/${seg(sessionId)}.jsonl`,
      headers: { accept: "application/x-ndjson" },
    });
    return await readAll(response);
  }

  /**
   * Lines appended to a session's live transcript, as server-sent events: `entry` (data: the
   * entry), `header`, `damaged` ({pos, text}), `replaced` (the session got a new transcript,
   * which follows from its first line) and `gone`. Each event's `id` is a cursor: pass it as
   * `lastEventId` to resume after it; a broken connection is resumed the same way, without
   * loss or duplicates. Starts at the transcript's end unless `fromStart` (or `lastEventId`).
   * End it with `signal` or by leaving the `for await` loop.
   */
  subscribe(agentId, sessionId, options = {}) {
    const path =
      this.#transcriptPath(agentId, sessionId) + "/events" + query({ from: options.fromStart ? "start" : undefined });
    return subscribeEvents(this.transport, path, options);
  }

  /**
   * Changes of an agent's session entries, as server-sent events: `upsert` ({key, version,
   * entry}), `delete` ({key}), `reload` (many changed: list again) and `resync` (the server
   * could not resume after `lastEventId`: list again, then follow).
   */
  subscribeSessions(agentId, options = {}) {
    return subscribeEvents(this.transport, `/v1/agents/${seg(agentId)}/sessions/events`, options);
  }

  /** Every transcript of the agent (or of one session id): live ones, archives, snapshots. */
  async listTranscripts(agentId, options = {}) {
    const path = `/v1/agents/${seg(agentId)}/transcripts` + query({ sessionId: options.sessionId });
    return (await this.#json("GET", path, undefined, Replay.READ)).value.transcripts;
  }

  /** The entries whose parent is `entryId`, in file order. */
  async children(agentId, sessionId, entryId) {
    const path = this.#transcriptPath(agentId, sessionId) + "/entries/" + seg(entryId) + "/children";
    return (await this.#json("GET", path, undefined, Replay.READ)).value.entries;
  }

  /** Lines, entries, damaged lines, bytes and messages by role of the live transcript. */
  async transcriptCounts(agentId, sessionId) {
    return (await this.#json("GET", this.#transcriptPath(agentId, sessionId) + "/counts", undefined, Replay.READ))
      .value;
  }

  /**
   * Rewrites a v1/v2 transcript in the v3 form as a new version (the old one is kept).
   * Not repeated after a lost connection: a second migration of the result is refused.
   */
  async migrateTranscript(agentId, sessionId) {
    const path = this.#transcriptPath(agentId, sessionId) + "/migrate";
    return (await this.#json("POST", path, undefined, Replay.UNGUARDED)).value;
  }

  // --- compaction checkpoints ---------------------------------------------------------------

  #checkpointPath(agentId, sessionKey, checkpointId) {
    return this.#sessionPath(agentId, sessionKey) + "/checkpoints" + (checkpointId === undefined ? "" : "/" + seg(checkpointId));
  }

  /**
   * Where the session's live transcript stands now (`{transcriptId, sessionId, fileName,
   * uptoPos, leafId, byteSize, endsWithNewline}`): taken before the compaction entry is
   * appended, then handed to `persistCheckpoint` as `snapshot`. Writes nothing.
   */
  async captureCheckpoint(agentId, sessionId) {
    const path = this.#transcriptPath(agentId, sessionId) + "/capture";
    return (await this.#json("POST", path, undefined, Replay.READ)).value;
  }

  /**
   * The gateway's persistSessionCompactionCheckpoint: records a compaction checkpoint of the
   * session (its snapshot file kept in the store), keeps the newest 25 and the byte budget.
   * Resolves to `{checkpoint, removed, entry}`. Not repeated after a lost connection: a
   * repeat would record a second checkpoint.
   */
  async persistCheckpoint(agentId, sessionKey, checkpoint) {
    requireObject(checkpoint, "a checkpoint");
    const { value } = await this.#json("POST", this.#checkpointPath(agentId, sessionKey), checkpoint, Replay.UNGUARDED);
    return value;
  }

  /** The session's checkpoints, newest first. */
  async listCheckpoints(agentId, sessionKey) {
    return (await this.#json("GET", this.#checkpointPath(agentId, sessionKey), undefined, Replay.READ)).value.checkpoints;
  }

  /** One checkpoint, or undefined. */
  async getCheckpoint(agentId, sessionKey, checkpointId) {
    try {
      return (await this.#json("GET", this.#checkpointPath(agentId, sessionKey, checkpointId), undefined, Replay.READ))
        .value;
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /** The checkpoint's snapshot file, byte for byte. */
  async checkpointSnapshot(agentId, sessionKey, checkpointId) {
    const response = await this.transport.open({
      path: this.#checkpointPath(agentId, sessionKey, checkpointId) + ".jsonl",
      headers: { accept: "application/x-ndjson" },
    });
    return await readAll(response);
  }

  /**
   * A new session from the checkpoint's snapshot (`newKey`, or one the store makes).
   * Resolves to `{key, sessionId, entry, checkpoint, transcriptId, fileName}`. Not repeated
   * after a lost connection: a repeat would make a second session.
   */
  async branchFromCheckpoint(agentId, sessionKey, checkpointId, options = {}) {
    const body = {};
    if (options.newKey !== undefined) body.newKey = options.newKey;
    if (options.cwd !== undefined) body.cwd = options.cwd;
    const path = this.#checkpointPath(agentId, sessionKey, checkpointId) + "/branch";
    return (await this.#json("POST", path, body, Replay.UNGUARDED)).value;
  }

  /**
   * The checkpoint's snapshot becomes the session's transcript, under a new session id (the
   * current transcript is archived). Not repeated after a lost connection: each restore
   * makes a new session id.
   */
  async restoreCheckpoint(agentId, sessionKey, checkpointId, options = {}) {
    const body = {};
    if (options.cwd !== undefined) body.cwd = options.cwd;
    const path = this.#checkpointPath(agentId, sessionKey, checkpointId) + "/restore";
    return (await this.#json("POST", path, body, Replay.UNGUARDED)).value;
  }

  // --- maintenance, search, statistics, import and export ------------------------------------

  /** What a cleanup by `policy` would do to the agent's sessions; writes nothing. */
  async planMaintenance(agentId, options = {}) {
    const path = `/v1/agents/${seg(agentId)}/maintenance/plan`;
    return (await this.#json("POST", path, cleanupBody(options), Replay.READ)).value;
  }

  /**
   * The gateway's session cleanup by its maintenance settings (`policy`: mode, pruneAfter,
   * maxEntries, maxDiskBytes, highWaterBytes, archiveRetention): its cleanup summary. Only
   * `mode: "enforce"` without `dryRun` changes anything; such a call is not repeated after a
   * lost connection (its summary would be lost), the others are reads.
   */
  async cleanup(agentId, options = {}) {
    const path = `/v1/agents/${seg(agentId)}/maintenance/cleanup`;
    return (await this.#json("POST", path, cleanupBody(options), cleanupReplay(options))).value;
  }

  /** `cleanup` of every agent: `{allAgents, mode, dryRun, stores: [summary...], spaceReclaimed}`. */
  async cleanupAll(options = {}) {
    return (await this.#json("POST", "/v1/maintenance/cleanup", cleanupBody(options), cleanupReplay(options))).value;
  }

  /** Gives free pages back to the file system and truncates the WAL (repeating it is harmless). */
  async reclaimSpace() {
    return (await this.#json("POST", "/v1/maintenance/reclaim", undefined, Replay.IDEMPOTENT)).value;
  }

  /**
   * Removes every entry, transcript, snapshot and kept file of the agent. Not repeated after
   * a lost connection: a repeat would also remove what was written in between.
   */
  async purgeAgent(agentId) {
    const path = `/v1/agents/${seg(agentId)}/purge`;
    return (await this.#json("POST", path, { confirm: agentId }, Replay.UNGUARDED)).value;
  }

  /** Full-text search over transcripts, newest first: `{hits, more, mode, notice, unsearched}`. */
  async search(text, options = {}) {
    const path =
      "/v1/search" +
      query({
        q: text,
        agent: options.agentId,
        session: options.session,
        role: options.role,
        since: options.since,
        activePathOnly: options.activePathOnly,
        kinds: options.kinds?.join(","),
        limit: options.limit,
        raw: options.raw,
      });
    return (await this.#json("GET", path, undefined, Replay.READ)).value;
  }

  /** Sizes and counts of the database, per agent, and the `top` largest sessions. */
  async stats(options = {}) {
    return (await this.#json("GET", "/v1/stats" + query({ top: options.top }), undefined, Replay.READ)).value;
  }

  /**
   * Exports the agent's files (sessions.json, transcripts, archives) into `out`, a directory
   * on the server's machine, as the gateway would have written them. Repeating it writes the
   * same files again, so it is repeated after a lost connection.
   */
  async exportAgent(agentId, out, options = {}) {
    const body = { out, durable: options.durable ?? false };
    return (await this.#json("POST", `/v1/agents/${seg(agentId)}/export`, body, Replay.IDEMPOTENT)).value;
  }

  /**
   * Imports a state dir, sessions dir or one file on the server's machine (`path` absolute):
   * the import report. A re-import reads only what is new, so a repeat after a lost
   * connection writes nothing twice.
   */
  async importPath(path, options = {}) {
    const body = { path, dryRun: options.dryRun ?? false };
    if (options.agentId !== undefined) body.agent = options.agentId;
    return (await this.#json("POST", "/v1/import", body, Replay.IDEMPOTENT)).value;
  }
}

function cleanupBody(options) {
  const body = {};
  if (options.policy !== undefined) body.policy = options.policy;
  if (options.activeKey !== undefined) body.activeKey = options.activeKey;
  if (options.dryRun !== undefined) body.dryRun = options.dryRun;
  return body;
}

/** A cleanup that cannot write (warn mode, or a dry run) repeats like a read. */
function cleanupReplay(options) {
  return options.policy?.mode === "enforce" && !options.dryRun ? Replay.UNGUARDED : Replay.READ;
}
