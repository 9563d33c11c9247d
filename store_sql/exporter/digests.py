"""What an export would write, as a digest per file, writing nothing.

    digests = await export_digests(store)      # {"agents/main/sessions/x.jsonl": FileDigest}

Each file is streamed from one read snapshot and hashed (sha256) as it goes, so memory stays
flat. Two stores hold the same files exactly when their digests are equal: `store-sql copy`
verifies a copy so, across backends. One field is left out: a sessions.d's state.json that
the store renders (its index changed through the API) carries the time of the export in
`updatedAt`, so that number is hashed as 0; every other byte counts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from store_sql.engine.database import Database
from store_sql.exporter.backend import source_for
from store_sql.exporter.plan import PlannedFile

__all__ = ["FileDigest", "export_digests"]


@dataclass(frozen=True, slots=True)
class FileDigest:
    size: int
    sha256: str


async def export_digests(store: Database, *, agent: str | None = None) -> dict[str, FileDigest]:
    """The sha256 and size of every file `export_tree` would write, by its relative path.
    An entry file whose key was deleted since the plan is left out, as export leaves it."""
    source = source_for(store)
    plan = await source.plan(agent, None)
    digests: dict[str, FileDigest] = {}
    for item in plan.files:
        (digest,) = await source.each_file([item], _digest)
        if digest is not None:
            digests[item.rel_path] = digest
    return digests


_UPDATED_AT = re.compile(rb'("updatedAt": )[0-9]+')


def _digest(item: PlannedFile, chunks: Iterator[bytes]) -> FileDigest | None:
    hasher = hashlib.sha256()
    size = 0
    seen = False
    if item.source == "index_state":
        chunks = iter([_UPDATED_AT.sub(rb"\g<1>0", b"".join(chunks))])
    for chunk in chunks:
        seen = True
        hasher.update(chunk)
        size += len(chunk)
    if not seen and item.source == "index_entry":
        return None
    return FileDigest(size, hasher.hexdigest())
