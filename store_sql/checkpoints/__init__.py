"""Compaction checkpoints: the `compactionCheckpoints` list of a session entry, the transcript
snapshots it names, and branching or restoring a session from one (`store.checkpoints`)."""
