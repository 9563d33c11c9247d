"""Full-text search over transcript entries: the searchable text of an entry, the queries, and
the background indexer that keeps the index behind the appends (`store.search`)."""
