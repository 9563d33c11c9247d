#!/usr/bin/env python3
"""Where store_sql's SQL is SQLite's own: a count per module and kind, the work list for the
PostgreSQL backend (docs/POSTGRES.md).

    python3 tools/sqlite_dialect.py          # a table: module, then a count per kind
    python3 tools/sqlite_dialect.py --lines  # every matching line

The patterns (SQL keywords in capitals, functions in lower case, as the code writes them)
look at the source text, so a count is a count of places to read, not of
statements that must change; `statements` counts execute calls, each of which takes SQLite's
`?` parameters.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

KINDS: dict[str, str] = {
    "json": (
        r"\bjsonb?\s*\(|\bjson_(extract|each|tree|object|array|set|insert|replace|remove|"
        r"patch|valid|type|quote|group_array|group_object|array_length)\s*\(|\S->>?\s*'"
    ),
    "fts5/trigram": r"\bfts5\b|\bMATCH\b|\btrigram\b|\bbm25\s*\(|\bhighlight\s*\(|\bsnippet\s*\(",
    "typeof/blob": r"\btypeof\s*\(|\bBLOB\b|\bCAST\s*\(.*\bAS TEXT\b|\bX'",
    "insert-or": r"\bINSERT OR (IGNORE|REPLACE|ABORT|FAIL|ROLLBACK)\b|\bREPLACE INTO\b",
    "pragma": r"\bPRAGMA\b",
    "rowid": r"\b_?rowid_?\b|\bWITHOUT ROWID\b|\bAUTOINCREMENT\b",
    "sqlite-catalog": r"\bsqlite_(master|schema|sequence|stat\d|temp_master)\b",
    "begin-immediate": r"\bBEGIN (IMMEDIATE|EXCLUSIVE|DEFERRED)\b",
    "functions": (
        r"\b(strftime|julianday|unixepoch|datetime|printf|instr|group_concat|ifnull|iif|"
        r"total|zeroblob|randomblob|likelihood|unlikely)\s*\(|\bGLOB\b"
    ),
    "sqlite3-api": r"\bsqlite3\.(Row|Binary|IntegrityError|OperationalError|Connection)\b",
    "vacuum/backup": r"\bVACUUM\b|\.backup\s*\(|\bATTACH\b",
}
STATEMENTS = r"\.(execute|executemany|executescript)\s*\("


def scan(root: Path) -> dict[str, Counter[str]]:
    table: dict[str, Counter[str]] = {}
    for path in sorted((root / "store_sql").rglob("*.py")):
        text = path.read_text()
        counts: Counter[str] = Counter()
        for kind, pattern in KINDS.items():
            counts[kind] = len(re.findall(pattern, text))
        counts["statements"] = len(re.findall(STATEMENTS, text))
        if any(counts.values()):
            table[str(path.relative_to(root))] = counts
    return table


def main(argv: list[str]) -> None:
    if "--lines" in argv:
        for path in sorted((ROOT / "store_sql").rglob("*.py")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                kinds = [k for k, p in KINDS.items() if re.search(p, line)]
                if kinds:
                    print(f"{path.relative_to(ROOT)}:{n}: [{','.join(kinds)}] {line.strip()}")
        return
    table = scan(ROOT)
    kinds = [*KINDS, "statements"]
    print("module | " + " | ".join(kinds))
    totals: Counter[str] = Counter()
    for module, counts in table.items():
        totals.update(counts)
        print(module + " | " + " | ".join(str(counts[k] or "") for k in kinds))
    print("TOTAL | " + " | ".join(str(totals[k]) for k in kinds))


if __name__ == "__main__":
    main(sys.argv[1:])
