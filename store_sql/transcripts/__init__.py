"""Transcripts: append-only, parent-linked trees of JSONL entries (`store.transcripts`).

Identities and lines, appends (ids, parents, idempotency; grouped by the writer), the bytes of an
entry and of a whole file, reads (paths, tree, recent, changes), the model context as pi builds
it, v1/v2 transcripts read as pi reads them (migrated in memory, `legacy`), the v1 -> v3
upgrade that writes that migration, and readable renderings."""
