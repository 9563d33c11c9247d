// Types of @store-sql/client (hand-written; the code is plain ESM in src/).

/** A session entry of the gateway's index: `sessionId` and `updatedAt` plus any other field. */
export interface SessionEntry {
  sessionId: string;
  updatedAt: number;
  [field: string]: unknown;
}

/** A transcript line as the gateway writes it: `{type, id, parentId, timestamp, ...}`. */
export interface TranscriptEntry {
  type: string;
  id?: string;
  parentId?: string | null;
  timestamp?: string;
  [field: string]: unknown;
}

/** An entry to append: the store adds `id`, `parentId` and (where pi does) `timestamp`. */
export interface NewTranscriptEntry {
  type: string;
  [field: string]: unknown;
}

export interface StoreClientOptions {
  /** The server's unix socket (`store-sql serve --socket PATH`). */
  socketPath?: string;
  /** The server's base URL (`http://127.0.0.1:PORT`, or https with TLS). */
  url?: string;
  /** A database path whose running server is found from `<db>.serve` (token: `<db>.token`). */
  db?: string;
  /** The bearer token; or `tokenFile` to read it from. */
  token?: string;
  tokenFile?: string;
  /** Attempts per call for retryable failures (default 6). */
  maxAttempts?: number;
  /** A call without an answer after this long fails (default 30 000 ms). */
  timeoutMs?: number;
  /** Longest wait between two attempts (default 5 000 ms; a longer Retry-After is capped). */
  maxRetryDelayMs?: number;
  /** Idle keep-alive connections close after this long (default 4 000 ms). */
  idleSocketMs?: number;
  /** Connections open at once at most (default 64). */
  maxSockets?: number;
  /** Extra CA certificates for https. */
  ca?: string | Buffer | Array<string | Buffer>;
}

/** What an entry must be for a write to happen; a part left out is not checked. */
export interface Expect {
  sessionId?: string;
  updatedAt?: number;
  /** The entry's version (its ETag, without quotes). */
  version?: string;
  /** false: only when there is no entry yet; true: only when there is one. */
  exists?: boolean;
}

export interface GuardOptions {
  expect?: Expect;
}

/** A row of `listSessionEntries`: indexed columns of an entry. */
export interface SessionSummary {
  key: string;
  sessionId: string | null;
  updatedAt: number | null;
  label: string | null;
  displayName: string | null;
  chatType: string | null;
  channel: string | null;
  model: string | null;
  entryBytes: number;
}

export interface ListSessionEntriesOptions {
  limit?: number;
  offset?: number;
  updatedAfter?: number;
  updatedBefore?: number;
  label?: string;
  chatType?: string;
  channel?: string;
}

export interface DeleteSessionEntryOptions extends GuardOptions {
  /** Archive the transcript as `<file>.deleted.<time>`, as the gateway's delete does (default false). */
  archiveTranscript?: boolean;
}

export type BatchOp =
  | { op: "patch"; key: string; patch: Record<string, unknown>; expect?: Expect }
  | { op: "put"; key: string; entry: SessionEntry; expect?: Expect }
  | { op: "touch"; key: string; updatedAt?: number; expect?: Expect }
  | { op: "delete"; key: string; expect?: Expect };

export type BatchResult =
  | { op: "patch" | "put" | "touch"; key: string; version: string; entry: SessionEntry }
  | { op: "delete"; key: string; deleted: boolean };

export interface TreeNode {
  pos: number;
  id: string | null;
  parentId: string | null;
  type: string | null;
  role: string | null;
  timestamp: string | null;
  /** The resolved label of the entry, if any. */
  label: string | null;
  /** How many children it has. */
  children: number;
}

export interface TranscriptTree {
  leafId: string | null;
  /** Every entry in file order. */
  nodes: TreeNode[];
}

export interface TranscriptInfo {
  transcriptId: number;
  agentId: string;
  sessionId: string | null;
  kind: string;
  fileName: string;
  leafId: string | null;
  lineCount: number;
  entryCount: number;
  byteSize: number;
  [field: string]: unknown;
}

export interface Appended {
  id: string;
  parentId: string | null;
  /** The entry's idempotency key was there already: nothing was written (also the answer to
   * a retry whose first attempt had written it). */
  existed: boolean;
}

export interface Turn {
  entries: NewTranscriptEntry[];
  /** Epoch ms for the entry's `updatedAt` (now when left out). */
  updatedAt?: number;
  /** Other entry fields to merge (null removes one); `sessionId` cannot change in a turn. */
  fields?: Record<string, unknown>;
  /** Fail with ConflictError when the key is no longer bound to this session id. */
  expectSessionId?: string;
  parentId?: string | null;
}

export interface TurnResult {
  sessionId: string;
  appended: Appended[];
  entry: SessionEntry;
  version?: string;
}

export interface ChangedLine {
  pos: number;
  kind: "header" | "entry" | "damaged" | "blank" | string;
  /** The line's JSON (header and entry lines). */
  value?: TranscriptEntry;
  /** The line's text (damaged and blank lines). */
  text?: string;
}

export interface Changes {
  lines: ChangedLine[];
  cursor: string;
  /** The transcript was reset, migrated or re-imported: what was read before is stale. */
  replaced: boolean;
}

export interface StoreEvent<T = unknown> {
  /** The SSE event name (`append`, `replaced`, `resync`, `upsert`, `delete`, ...). */
  type: string;
  /** The event's id: pass it as `lastEventId` to resume after it. */
  id: string | undefined;
  data: T;
}

export interface SubscribeOptions {
  /** Start at the transcript's first line instead of its end (transcript events only). */
  fromStart?: boolean;
  /** Start after this event id (`Last-Event-ID`). */
  lastEventId?: string;
  signal?: AbortSignal;
  /** Reconnect after the stream ends or breaks (default true). */
  reconnect?: boolean;
  reconnectDelayMs?: number;
  /** Called each time the stream is open (the server answered), before its events. */
  onOpen?: () => void;
}

export interface SearchHit {
  agentId: string;
  sessionKey: string | null;
  sessionId: string | null;
  transcriptId: number;
  transcriptKind: string;
  fileName: string;
  entryId: string | null;
  pos: number;
  type: string | null;
  role: string | null;
  timestamp: string | null;
  /** Text around the match, each match in [brackets]. */
  snippet: string;
}

export interface SearchResult {
  /** Newest first. */
  hits: SearchHit[];
  /** The limit cut the hits. */
  more: boolean;
  mode: string;
  notice: string | null;
  unsearched: number;
}

export interface SearchOptions {
  agentId?: string;
  /** A session key or session id. */
  session?: string;
  role?: string;
  /** Only entries at or after this ISO time. */
  since?: string;
  /** Only entries on their transcript's active path. */
  activePathOnly?: boolean;
  /** Transcript kinds to search (`live`, `reset`, `deleted`, ...; default all). */
  kinds?: string[];
  /** At most this many hits (default 50). */
  limit?: number;
  /** `text` is an FTS5 query. */
  raw?: boolean;
}

/** Where a live transcript stands, from `captureCheckpoint`, for `persistCheckpoint`. */
export interface CapturedSnapshot {
  transcriptId: number;
  sessionId: string;
  fileName: string;
  uptoPos: number;
  leafId: string | null;
  byteSize: number;
  endsWithNewline: boolean;
}

/** What the gateway's persistSessionCompactionCheckpoint is told about one compaction. */
export interface CheckpointSpec {
  reason: string;
  summary?: string | null;
  firstKeptEntryId?: string | null;
  tokensBefore?: number | null;
  tokensAfter?: number | null;
  postSessionFile?: string | null;
  postLeafId?: string | null;
  postEntryId?: string | null;
  /** Epoch ms (default now). */
  createdAt?: number | null;
  sessionId?: string | null;
  /** From `captureCheckpoint` before the compaction entry was appended (default: now). */
  snapshot?: CapturedSnapshot | null;
  /** The snapshots' byte budget for the session. */
  maxRetainedBytes?: number;
}

/** A checkpoint record as the gateway keeps it in the entry's `compactionCheckpoints`. */
export interface Checkpoint {
  checkpointId: string;
  sessionKey: string;
  sessionId: string;
  createdAt: number;
  reason: string;
  [field: string]: unknown;
}

export interface PersistedCheckpoint {
  checkpoint: Checkpoint;
  /** Ids of the checkpoints dropped to keep the newest 25 and the byte budget. */
  removed: string[];
  entry: SessionEntry;
}

export interface CheckpointFork {
  key: string;
  sessionId: string;
  entry: SessionEntry;
  checkpoint: Checkpoint;
  transcriptId: number;
  fileName: string;
}

/** The gateway's session maintenance settings; durations like "30d", sizes like "2gb". */
export interface MaintenancePolicy {
  /** `warn` (default) reports only; `enforce` applies. */
  mode?: "warn" | "enforce";
  pruneAfter?: string;
  maxEntries?: number;
  maxDiskBytes?: string | null;
  highWaterBytes?: string | null;
  /** Defaults to pruneAfter; null keeps archives. */
  archiveRetention?: string | null;
}

export interface CleanupOptions {
  policy?: MaintenancePolicy;
  /** The session in use now: never pruned. */
  activeKey?: string;
  dryRun?: boolean;
}

/** The gateway's cleanup summary of one agent. */
export interface CleanupSummary {
  agentId: string;
  mode: "warn" | "enforce";
  dryRun: boolean;
  beforeCount: number;
  afterCount: number;
  pruned: number;
  capped: number;
  archivedTranscripts: number;
  archiveCleanup: { scannedFiles: number; removedFiles: number };
  unreferencedArtifacts: { scannedFiles: number; removedFiles: number; freedBytes: number; olderThanMs: number };
  diskBudget: {
    totalBytesBefore: number;
    totalBytesAfter: number;
    removedFiles: number;
    removedEntries: number;
    freedBytes: number;
    maxBytes: number;
    highWaterBytes: number;
    overBudget: boolean;
  } | null;
  wouldMutate: boolean;
  [field: string]: unknown;
}

export interface SpaceReclaimed {
  freePagesBefore: number;
  pagesVacuumed: number;
  dbBytesBefore: number;
  dbBytesAfter: number;
  walBytesBefore: number;
  walBytesAfter: number;
  bytesReclaimed: number;
}

export interface CleanupAllSummary {
  allAgents: true;
  mode: "warn" | "enforce";
  dryRun: boolean;
  stores: CleanupSummary[];
  spaceReclaimed: SpaceReclaimed | null;
}

export interface PurgeResult {
  agentId: string;
  entries: number;
  transcripts: number;
  lines: number;
  snapshots: number;
  files: number;
}

export interface StoreStats {
  path: string;
  databaseBytes: number;
  freeBytes: number;
  walBytes: number;
  agents: Array<{ agentId: string; sessions: number; transcripts: number; entries: number; transcriptBytes: number }>;
  sessions: number;
  transcripts: number;
  /** Transcripts by kind (`live`, `reset`, `deleted`, ...). */
  transcriptsByKind: Record<string, number>;
  lines: number;
  entries: number;
  transcriptBytes: number;
  fullTextWaiting: number;
  biggestSessions: Array<{
    agentId: string;
    sessionKey: string | null;
    sessionId: string | null;
    transcriptId: number;
    entries: number;
    liveBytes: number;
    allBytes: number;
  }>;
  [field: string]: unknown;
}

export interface ExportReport {
  out: string;
  files: Array<{ relPath: string; source: string; bytes: number }>;
  refused: Array<[string, string]>;
  conflicts: string[];
  removed: string[];
  [field: string]: unknown;
}

export interface ImportReport {
  source: string;
  dryRun: boolean;
  ok: boolean;
  durationS: number;
  totals: Record<string, number>;
  files: Array<{
    path: string;
    relPath: string;
    agent: string | null;
    kind: string;
    status: string;
    lines: number;
    entries: number;
    bytes: number;
    damagedTotal: number;
    message: string | null;
    transcriptId: number | null;
    [field: string]: unknown;
  }>;
  skipped: Array<{ path: string; reason: string }>;
  databases: Array<Record<string, unknown>>;
  /** Lines not yet in the full-text index. */
  fullTextWaiting: number;
}

export declare class StoreClient {
  constructor(options?: StoreClientOptions);
  close(): void;
  health(): Promise<{ ok: boolean; [field: string]: unknown }>;

  // session index
  listAgents(): Promise<string[]>;
  getSessionEntry(agentId: string, sessionKey: string): Promise<SessionEntry | undefined>;
  getSessionEntryVersion(
    agentId: string,
    sessionKey: string,
  ): Promise<{ entry: SessionEntry; version: string | undefined } | undefined>;
  readSessionUpdatedAt(agentId: string, sessionKey: string): Promise<number | undefined>;
  listSessionEntries(agentId: string, options?: ListSessionEntriesOptions): Promise<SessionSummary[]>;
  patchSessionEntry(
    agentId: string,
    sessionKey: string,
    patch: Record<string, unknown>,
    options?: GuardOptions,
  ): Promise<SessionEntry>;
  upsertSessionEntry(
    agentId: string,
    sessionKey: string,
    entry: SessionEntry,
    options?: GuardOptions,
  ): Promise<SessionEntry>;
  updateSessionStoreEntry(
    agentId: string,
    sessionKey: string,
    update: (
      entry: SessionEntry,
    ) => Partial<SessionEntry> | Record<string, unknown> | null | Promise<Partial<SessionEntry> | Record<string, unknown> | null>,
    options?: { maxAttempts?: number },
  ): Promise<SessionEntry | null>;
  deleteSessionEntry(agentId: string, sessionKey: string, options?: DeleteSessionEntryOptions): Promise<boolean>;
  touchSessionEntry(
    agentId: string,
    sessionKey: string,
    updatedAt?: number,
    options?: GuardOptions,
  ): Promise<SessionEntry>;
  batchSessionEntries(agentId: string, ops: BatchOp[]): Promise<BatchResult[]>;
  resetSession(
    agentId: string,
    sessionKey: string,
    options?: GuardOptions & { cwd?: string; keepFields?: string[] },
  ): Promise<{
    key: string;
    previousSessionId: string | null;
    sessionId: string;
    entry: SessionEntry;
    archived: string[];
    transcriptId: number;
  }>;

  // transcripts
  createTranscript(
    agentId: string,
    sessionId: string,
    options: { cwd: string; parentSession?: string | null; timestamp?: string | null },
  ): Promise<TranscriptInfo>;
  append(
    agentId: string,
    sessionId: string,
    entries: NewTranscriptEntry[],
    options?: { parentId?: string | null },
  ): Promise<Appended[]>;
  turn(agentId: string, sessionKey: string, turn: Turn): Promise<TurnResult>;
  recent(
    agentId: string,
    sessionId: string,
    options?: { limit?: number; maxBytes?: number; types?: string[] },
  ): Promise<TranscriptEntry[]>;
  activePath(agentId: string, sessionId: string, options?: { toEntryId?: string }): Promise<TranscriptEntry[]>;
  tree(agentId: string, sessionId: string): Promise<TranscriptTree>;
  transcriptInfo(agentId: string, sessionId: string): Promise<TranscriptInfo | undefined>;
  context(agentId: string, sessionId: string, options?: { leafId?: string }): Promise<Record<string, unknown>>;
  entry(agentId: string, sessionId: string, entryId: string): Promise<TranscriptEntry | undefined>;
  changes(agentId: string, sessionId: string, cursor?: string, options?: { limit?: number }): Promise<Changes>;
  transcriptJsonl(agentId: string, sessionId: string): Promise<Buffer>;
  subscribe(agentId: string, sessionId: string, options?: SubscribeOptions): AsyncGenerator<StoreEvent>;
  subscribeSessions(agentId: string, options?: SubscribeOptions): AsyncGenerator<StoreEvent>;
  listTranscripts(agentId: string, options?: { sessionId?: string }): Promise<TranscriptInfo[]>;
  children(agentId: string, sessionId: string, entryId: string): Promise<TranscriptEntry[]>;
  transcriptCounts(agentId: string, sessionId: string): Promise<Record<string, unknown>>;
  migrateTranscript(agentId: string, sessionId: string): Promise<TranscriptInfo>;

  // compaction checkpoints
  captureCheckpoint(agentId: string, sessionId: string): Promise<CapturedSnapshot>;
  persistCheckpoint(agentId: string, sessionKey: string, checkpoint: CheckpointSpec): Promise<PersistedCheckpoint>;
  listCheckpoints(agentId: string, sessionKey: string): Promise<Checkpoint[]>;
  getCheckpoint(agentId: string, sessionKey: string, checkpointId: string): Promise<Checkpoint | undefined>;
  checkpointSnapshot(agentId: string, sessionKey: string, checkpointId: string): Promise<Buffer>;
  branchFromCheckpoint(
    agentId: string,
    sessionKey: string,
    checkpointId: string,
    options?: { newKey?: string; cwd?: string },
  ): Promise<CheckpointFork>;
  restoreCheckpoint(
    agentId: string,
    sessionKey: string,
    checkpointId: string,
    options?: { cwd?: string },
  ): Promise<CheckpointFork>;

  // maintenance, search, statistics, import and export
  planMaintenance(agentId: string, options?: Omit<CleanupOptions, "dryRun">): Promise<CleanupSummary>;
  cleanup(agentId: string, options?: CleanupOptions): Promise<CleanupSummary>;
  cleanupAll(options?: CleanupOptions): Promise<CleanupAllSummary>;
  reclaimSpace(): Promise<SpaceReclaimed>;
  purgeAgent(agentId: string): Promise<PurgeResult>;
  search(text: string, options?: SearchOptions): Promise<SearchResult>;
  stats(options?: { top?: number }): Promise<StoreStats>;
  exportAgent(agentId: string, out: string, options?: { durable?: boolean }): Promise<ExportReport>;
  importPath(path: string, options?: { agentId?: string; dryRun?: boolean }): Promise<ImportReport>;
}

export declare function isIdempotentAppend(entries: readonly unknown[]): boolean;

export declare function parseEventStream(
  body: AsyncIterable<Buffer | string>,
): AsyncGenerator<{ event: string; data: string; id: string | undefined; retry?: number }>;

export declare class StoreServiceError extends Error {
  readonly code: string;
  readonly status: number;
  readonly retryAfterMs: number | undefined;
  /** How many attempts the call made before this error. */
  readonly attempts?: number;
}
export declare class InvalidRequestError extends StoreServiceError {}
export declare class UnauthorizedError extends StoreServiceError {}
export declare class NotFoundError extends StoreServiceError {}
export declare class ConflictError extends StoreServiceError {}
export declare class TooLargeError extends StoreServiceError {}
export declare class BusyError extends StoreServiceError {}
export declare class StoreUnavailableError extends StoreServiceError {
  /** The request may have reached the server: a write may or may not have happened. */
  readonly maybeApplied: boolean;
}
