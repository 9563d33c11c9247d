"""docs/SCHEMA.md against a freshly created database: every table, column, index, named
constraint, trigger and view of the database is documented in the right section, nothing
documented is missing from the database, and every SQL example runs.

The database, not schema.py, is the reference: what `sqlite_master` and `PRAGMA
table_info` say after `Store.open` created the file."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from inspection_data import ROOT, copy_db

from store_sql import Store

DOC = ROOT / "docs" / "SCHEMA.md"
FTS = "entry_text_fts"
SECTION_KINDS = {
    "Tables": "table",
    "Full-text index": "table",
    "Triggers": "trigger",
    "Views": "view",
}


@dataclass
class DocObject:
    name: str
    kind: str
    text: list[str] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)
    """column -> declared type as documented"""
    indexes: set[str] = field(default_factory=set)


def parse_doc(text: str) -> dict[str, DocObject]:
    objects: dict[str, DocObject] = {}
    section: str | None = None
    current: DocObject | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            section, current = line[3:].strip(), None
            continue
        heading = re.match(r"^### `(\w+)`\s*$", line)
        if heading:
            assert section in SECTION_KINDS, f"{heading.group(1)} is under {section!r}"
            name = heading.group(1)
            assert name not in objects, f"{name} documented twice"
            current = objects[name] = DocObject(name, SECTION_KINDS[section])
            continue
        if current is None:
            continue
        current.text.append(line)
        column = re.match(r"^\| `(\w+)` \|([^|]*)\|", line)
        if column:
            assert column.group(1) not in current.columns, f"{current.name}.{column.group(1)} twice"
            current.columns[column.group(1)] = column.group(2).strip()
        index = re.match(r"^- `(\w+)` on ", line)
        if index:
            current.indexes.add(index.group(1))
    return objects


@dataclass
class DbObject:
    name: str
    kind: str
    columns: dict[str, str]
    indexes: set[str]
    constraints: set[str]


def read_db(path: Path) -> dict[str, DbObject]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        master = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        ).fetchall()
        out: dict[str, DbObject] = {}
        for kind, name, _table, sql in master:
            if kind in ("table", "view"):
                cols = {r[1]: r[2] for r in conn.execute(f'PRAGMA table_info("{name}")')}
                named = set(re.findall(r"CONSTRAINT (\w+)", sql or ""))
                out[name] = DbObject(name, kind, cols, set(), named)
            elif kind == "trigger":
                out[name] = DbObject(name, kind, {}, set(), set())
        for _kind, name, table, sql in master:
            if _kind == "index" and sql is not None:  # named indexes (not UNIQUE's autoindexes)
                out[table].indexes.add(name)
        return out
    finally:
        conn.close()


@pytest.fixture(scope="module")
def fresh_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "fresh.sqlite"

    async def create() -> None:
        store = await Store.open(path)
        await store.close()

    asyncio.run(create())
    return path


@pytest.fixture(scope="module")
def documented() -> dict[str, DocObject]:
    return parse_doc(DOC.read_text(encoding="utf-8"))


def _is_shadow(name: str) -> bool:
    return name.startswith(f"{FTS}_")


def test_every_database_object_is_documented_in_its_section(
    fresh_db: Path, documented: dict[str, DocObject]
) -> None:
    db = read_db(fresh_db)
    fts_section = "\n".join(documented[FTS].text) if FTS in documented else ""
    for name, obj in db.items():
        if _is_shadow(name):
            assert f"`{name}`" in fts_section, f"FTS5 shadow table {name} is not named under {FTS}"
            continue
        assert name in documented, f"{obj.kind} {name} is not documented in docs/SCHEMA.md"
        assert documented[name].kind == obj.kind, (
            f"{name} is documented as a {documented[name].kind}"
        )


def test_nothing_documented_is_missing_from_the_database(
    fresh_db: Path, documented: dict[str, DocObject]
) -> None:
    db = read_db(fresh_db)
    for name, doc in documented.items():
        assert name in db, f"docs/SCHEMA.md documents {doc.kind} {name}, which the database lacks"


def test_columns_and_their_types_agree(fresh_db: Path, documented: dict[str, DocObject]) -> None:
    db = read_db(fresh_db)
    for name, obj in db.items():
        if obj.kind not in ("table", "view") or _is_shadow(name):
            continue
        doc = documented[name]
        assert list(doc.columns) == list(obj.columns), (
            f"{name}: documented columns {list(doc.columns)} != database {list(obj.columns)}"
        )
        if obj.kind == "table":
            for column, declared in obj.columns.items():
                assert doc.columns[column] == declared, f"{name}.{column} is {declared!r}"


def test_indexes_and_named_constraints_are_documented_with_their_table(
    fresh_db: Path, documented: dict[str, DocObject]
) -> None:
    db = read_db(fresh_db)
    for name, obj in db.items():
        if obj.kind != "table" or _is_shadow(name) or name == FTS:
            continue
        doc = documented[name]
        assert doc.indexes == obj.indexes, (
            f"{name}: documented indexes {doc.indexes} != {obj.indexes}"
        )
        text = "\n".join(doc.text)
        for constraint in obj.constraints:
            assert f"`{constraint}`" in text, f"{name}: constraint {constraint} is not documented"


def test_every_sql_example_runs_on_a_sample_database(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    db, _ = copy_db(tmp_path_factory.getbasetemp(), tmp_path_factory.mktemp("examples"))
    examples = re.findall(r"```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(examples) >= 10
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        results = [conn.execute(sql).fetchall() for sql in examples]
    finally:
        conn.close()
    assert sum(1 for r in results if r) >= len(examples) - 2, "most examples should find rows"


# --- the Datasette metadata ------------------------------------------------------------------

METADATA = ROOT / "datasette" / "metadata.json"


def test_datasette_metadata_names_only_what_exists_and_describes_everything(
    fresh_db: Path,
) -> None:
    meta = json.loads(METADATA.read_text(encoding="utf-8"))  # valid JSON
    (database,) = meta["databases"].values()
    db = read_db(fresh_db)
    for name, table in database["tables"].items():
        assert name in db, f"metadata describes {name}, which the database lacks"
        for column in table.get("columns", {}):
            assert column in db[name].columns, f"metadata describes missing column {name}.{column}"
        for key in ("sort", "sort_desc", "fts_pk"):
            if key in table:
                assert table[key] in db[name].columns, f"{name}: {key} names a missing column"
        if "fts_table" in table:
            assert table["fts_table"] in db
    for name, obj in db.items():
        if obj.kind in ("table", "view") and not _is_shadow(name):
            assert database["tables"].get(name, {}).get("description"), f"{name} has no description"


def test_datasette_canned_queries_run_on_a_sample_database(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    db, _ = copy_db(tmp_path_factory.getbasetemp(), tmp_path_factory.mktemp("canned"))
    meta = json.loads(METADATA.read_text(encoding="utf-8"))
    (database,) = meta["databases"].values()
    queries = database["queries"]
    assert len(queries) >= 3
    samples = {"session_key": "agent:main:main", "agent": "main", "text": "needle"}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        for name, query in queries.items():
            params = {p: samples[p] for p in re.findall(r"(?<!:):(\w+)", query["sql"])}
            found = conn.execute(query["sql"], params).fetchall()
            assert found, f"canned query {name} found nothing on the sample"
    finally:
        conn.close()
