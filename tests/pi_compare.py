"""What "reads as pi reads it" means, checked against the real pi (tools/oracles).

`differences` reads one stored transcript through the public API and asks pi about the same
file bytes; it returns every way the two disagree (an empty list: none). Compared:
- the model context, as JSON.stringify writes it (parseSessionEntries ->
  migrateSessionEntries -> buildSessionContext, and SessionManager's own);
- with SessionManager.open on the file: the entry ids in file order, the leaf, the active
  path, the tree (children in pi's order, labels), the resolved labels, the session name;
- for a v1/v2 transcript, `migrate_to_v3` against the file pi rewrites when it opens it:
  the same lines, byte for byte, once pi's random ids are replaced by the store's (the store
  keeps damaged and blank lines verbatim, where pi drops them).
"""

from __future__ import annotations

import re
from typing import Any

from pi_oracle import PiOracle

from store_sql.formats import jsjson
from store_sql.store import Store
from store_sql.transcripts.reads import TreeNode

_ID = re.compile(r'"([0-9a-f]{8})"')


def tree_rows(roots: list[TreeNode]) -> list[list[Any]]:
    """The tree depth first, children in order: [id, tree parent id, label] per node (the
    shape pi_driver.mjs answers with)."""
    rows: list[list[Any]] = []
    stack: list[tuple[TreeNode, str | None]] = [(node, None) for node in reversed(roots)]
    while stack:
        node, parent = stack.pop()
        rows.append([node.id, parent, node.label])
        stack.extend((child, node.id) for child in reversed(node.children))
    return rows


def _all_nodes(roots: list[TreeNode]) -> list[TreeNode]:
    nodes: list[TreeNode] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.children)
    return sorted(nodes, key=lambda n: n.pos)


async def differences(
    store: Store,
    pi: PiOracle,
    agent: str,
    target: int,
    *,
    leaf_ids: tuple[str, ...] = (),
    migrate: bool = True,
) -> list[str]:
    """Every way the store's reads of transcript `target` differ from pi's."""
    t = store.transcripts
    info = await t.info(agent, target)
    data = await t.file_bytes(agent, target)
    found: list[str] = []

    def check(what: str, ours: Any, theirs: Any) -> None:
        if ours != theirs:
            where = f"{info.file_name} ({target})"
            found.append(f"{where}: {what}: store {ours!r:.300} != pi {theirs!r:.300}")

    answer = pi.read(data)
    context = jsjson.dumps((await t.context(agent, target)).as_dict())
    check("context", context, answer["context"])

    roots = await t.tree(agent, target)
    ids = [node.id for node in _all_nodes(roots)]
    header = data.split(b"\n", 1)[0]
    loaded = f'"id":{jsjson.dumps(answer["sessionId"])}'.encode() in header
    legacy = info.version is None or info.version < 3
    if loaded:
        # pi draws random ids where it migrates: name its entries by the store's ids
        pi_ids = answer["ids"]
        check("entry count", len(ids), len(pi_ids))
        rename = dict(zip(pi_ids, ids, strict=False)) if legacy else {}

        def ours(value: Any) -> Any:
            return rename.get(value, value) if isinstance(value, str) else value

        leaf = await t.leaf(agent, target)
        check("ids", ids, [ours(i) for i in pi_ids])
        check("leaf", leaf.id if leaf else None, ours(answer["leaf"]))
        path = [e.id for e in await t.active_path(agent, target)]
        check("active path", path, [ours(i) for i in answer["branch"]])
        pi_tree = [[ours(i), ours(p), label] for i, p, label in answer["tree"]]
        check("tree", tree_rows(roots), pi_tree)
        check("labels", list((await t.labels(agent, target)).items()),
              [(ours(k), v) for k, v in answer["labels"]])  # fmt: skip
        check("session name", await t.session_name(agent, target), answer["name"])
        check("SessionManager context", context, answer["managerContext"])
        if legacy and migrate and answer["migrated"] is not None:
            new = await t.migrate_to_v3(agent, target)
            lines = await t.page(agent, new.transcript_id, limit=1_000_000)
            kept = b"".join(e.raw + b"\n" for e in lines if e.kind in ("header", "entry"))
            theirs = _ID.sub(lambda m: f'"{ours(m[1])}"', answer["migrated"].decode())
            check("v1 -> v3 migration", kept.decode(), theirs)
    for leaf_id in leaf_ids:
        at = jsjson.dumps((await t.context(agent, target, leaf_id)).as_dict())
        check(f"context at {leaf_id}", at, pi.read(data, leaf_id)["context"])
    return found
