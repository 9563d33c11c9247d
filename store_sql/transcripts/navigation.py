"""Today's gateway's tree rules: leaf controls, resets and side appends (docs/FORMATS.md §6).

OpenClaw 2026.9 writes entries the JSONL era did not have, and reads every transcript
holding them by these rules (its `transcript-tree.ts`), which this module states in Python
over parsed entries in file order (no SQL):

- A `leaf` entry is a navigation control: it makes `targetId` the active leaf (null: no
  leaf), says with `appendParentId` (default: the target) where the next append hangs, and
  is on no path itself. One naming an entry not seen before it (or another invalid control)
  is ignored, and marks the transcript as holding an invalid control.
- A canonical entry (message, model/thinking change, compaction, reset, branch summary,
  custom, custom message, label, session info) moves the leaf to itself, unless it has
  `appendMode: "side"`: then it hangs where it says and the leaf stays.
- After a `reset`, an entry that does not descend from the latest reset is hung on the
  current leaf instead of its written parent; so is an entry whose parent was never seen,
  and one written onto the append point while the leaf sits elsewhere. A parent that is a
  leaf control stands for that control's target.
- The active path runs from the leaf to the root through those parents, leaf controls left
  out. The context keeps, before that path, the entries a `reset` kept (from its
  `firstKeptEntryId` along the reset's own path) or the last compaction before it; a
  transcript whose leaf never moved explicitly keeps every entry, in file order.

Only transcripts holding a `leaf` or `reset` entry or a side append are read this way;
the others keep the JSONL-era rule (the leaf is the last entry in file order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["NavNode", "Navigation", "scan_navigation"]

CANONICAL_TYPES: Final = frozenset(
    {
        "message",
        "thinking_level_change",
        "model_change",
        "compaction",
        "reset",
        "branch_summary",
        "custom",
        "custom_message",
        "label",
        "session_info",
    }
)


class _Undefined:
    """JavaScript's `undefined`, where it differs from `null` (None)."""

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Final = _Undefined()
Ref = str | None | _Undefined


@dataclass(slots=True)
class NavNode:
    """One entry placed in the tree."""

    id: str
    parent_id: str | None
    """The parent the rules give it (not always the one written)."""
    leaf_id: Ref
    """The leaf it makes active (UNDEFINED: it does not move the leaf)."""
    append_parent_id: Ref
    side: bool
    index: int
    """Its place among the entries given to `scan_navigation`."""
    value: dict[str, Any]


@dataclass(slots=True)
class Navigation:
    """The tree of a transcript under today's rules."""

    nodes: list[NavNode] = field(default_factory=list)
    by_id: dict[str, NavNode] = field(default_factory=dict)
    leaf_id: str | None = None
    append_parent_id: str | None = None
    has_leaf_control: bool = False
    has_explicit_leaf_update: bool = False
    has_invalid_leaf_control: bool = False

    def path(self, leaf_id: str | None) -> list[NavNode]:
        """Root -> `leaf_id` through the rules' parents, leaf controls left out; what
        remains after a missing ancestor is kept, and a cycle gives no path."""
        if leaf_id is None:
            return []
        found: list[NavNode] = []
        seen: set[str] = set()
        current: str | None = leaf_id
        while current:
            if current in seen:
                return []
            seen.add(current)
            node = self.by_id.get(current)
            if node is None:
                break
            if not is_leaf_control(node.value):
                found.append(node)
            current = node.parent_id
        found.reverse()
        return found

    def active_path(self) -> list[NavNode]:
        return self.path(self.leaf_id)

    def context_indexes(self, values: list[Any]) -> list[int]:
        """Indexes (into `values`, the entries scanned) the context is built from."""
        if not self.has_explicit_leaf_update:
            return list(range(len(values)))
        active = self.active_path()
        indexes = [node.index for node in active]
        first = active[0].index if active else 0
        for index in range(first - 1, -1, -1):
            value = values[index]
            if not isinstance(value, dict) or value.get("type") not in ("compaction", "reset"):
                continue
            if value.get("type") == "reset":
                reset_id = _non_blank(value.get("id"))
                first_kept = _non_blank(value.get("firstKeptEntryId"))
                if isinstance(reset_id, str) and isinstance(first_kept, str):
                    reset_path = self.path(reset_id)
                    start = next(
                        (i for i, node in enumerate(reset_path) if node.id == first_kept), -1
                    )
                    if start >= 0:
                        return [node.index for node in reset_path[start:]] + indexes
            return [index, *indexes]
        return indexes


def _non_blank(value: Any) -> str | _Undefined:
    return value if isinstance(value, str) and value.strip() else UNDEFINED


def _ref(value: Any) -> Ref:
    """A parent-like reference: null stays null, a blank or non-string is invalid."""
    return None if value is None else _non_blank(value)


def is_canonical(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") in CANONICAL_TYPES


def _parse(value: Any) -> NavNode | None:
    """The node an entry with a `parentId` stands for, before the rules move its parent."""
    if not isinstance(value, dict) or value.get("type") == "session" or "parentId" not in value:
        return None
    entry_id = _non_blank(value.get("id"))
    parent = _ref(value["parentId"])
    if isinstance(entry_id, _Undefined) or isinstance(parent, _Undefined):
        return None
    if value.get("type") == "leaf":
        target = _ref(value["targetId"]) if "targetId" in value else UNDEFINED
        append = _ref(value["appendParentId"]) if "appendParentId" in value else target
        mode = value.get("appendMode", UNDEFINED)
        if isinstance(target, _Undefined) or isinstance(append, _Undefined):
            return None
        if not isinstance(mode, _Undefined) and mode != "side":
            return None
        return NavNode(entry_id, target, target, append, mode == "side", 0, value)
    side = value.get("appendMode") == "side"
    leaf: Ref = entry_id if is_canonical(value) and not side else UNDEFINED
    return NavNode(entry_id, parent, leaf, entry_id, side, 0, value)


def is_leaf_control(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "leaf" and _parse(value) is not None


def _parentless(value: Any, leaf_id: str | None) -> NavNode | None:
    """A canonical entry written without `parentId` hangs on the current leaf."""
    if not is_canonical(value) or "parentId" in value:
        return None
    entry_id = _non_blank(value.get("id"))
    if isinstance(entry_id, _Undefined):
        return None
    side = value.get("appendMode") == "side"
    return NavNode(entry_id, leaf_id, UNDEFINED if side else entry_id, entry_id, side, 0, value)


def _through_controls(parent_id: str | None, by_id: dict[str, NavNode]) -> str | None:
    """A parent that is a leaf control stands for its target (and so on)."""
    seen: set[str] = set()
    current = parent_id
    while current is not None:
        if current in seen:
            return current
        node = by_id.get(current)
        if node is None or not is_leaf_control(node.value):
            return current
        seen.add(current)
        current = node.parent_id
    return None


def scan_navigation(values: list[Any]) -> Navigation:
    """The tree of `values` (parsed entries in file order) under the module's rules."""
    nav = Navigation()
    by_id = nav.by_id
    leaf_id: str | None = None
    append_parent: Ref = None
    latest_reset: str | None = None
    reset_descendants: set[str] = set()
    invalid: set[str] = set()

    def known(ref: Ref) -> bool:
        return ref is None or (isinstance(ref, str) and ref in by_id and ref not in invalid)

    for index, value in enumerate(values):
        explicit = _parse(value)
        control = explicit is not None and is_leaf_control(value)
        if (
            control
            and explicit is not None
            and latest_reset is not None
            and leaf_id is not None
            and not isinstance(explicit.leaf_id, _Undefined)
            and (explicit.leaf_id is None or explicit.leaf_id not in reset_descendants)
        ):
            # After a reset, a control pointing outside the reset's subtree keeps the leaf.
            explicit.parent_id = explicit.leaf_id = explicit.append_parent_id = leaf_id
        if (
            control
            and explicit is not None
            and not isinstance(explicit.leaf_id, _Undefined)
            and (not known(explicit.leaf_id) or not known(explicit.append_parent_id))
        ):
            nav.has_invalid_leaf_control = True
            invalid.add(explicit.id)
            raw_parent = value.get("parentId")
            explicit.parent_id = raw_parent if isinstance(raw_parent, str) else None
            explicit.leaf_id = UNDEFINED
            explicit.append_parent_id = append_parent
            explicit.index = index
            nav.nodes.append(explicit)
            by_id[explicit.id] = explicit
            continue
        node = explicit if explicit is not None else _parentless(value, leaf_id)
        if node is None:
            continue
        if is_canonical(value):
            written = node.parent_id
            stale = (
                explicit is not None
                and written is not None
                and written not in by_id
                and leaf_id is not None
            )
            if (
                (
                    latest_reset is not None
                    and not node.side
                    and (written is None or written not in reset_descendants)
                )
                or (not node.side and stale)
                or (
                    explicit is not None
                    and not node.side
                    and written == append_parent
                    and leaf_id != append_parent
                )
            ):
                chosen = leaf_id
            else:
                chosen = written
            node.parent_id = _through_controls(chosen, by_id)
        node.index = index
        nav.nodes.append(node)
        by_id[node.id] = node
        if value.get("type") == "reset":
            latest_reset = node.id
            reset_descendants = {node.id}
        elif (
            latest_reset is not None
            and node.parent_id is not None
            and node.parent_id in reset_descendants
        ):
            reset_descendants.add(node.id)
        append_parent = node.append_parent_id
        if not isinstance(node.leaf_id, _Undefined):
            leaf_id = node.leaf_id
            if explicit is not None:
                nav.has_explicit_leaf_update = True
        if control:
            nav.has_leaf_control = True
    nav.leaf_id = leaf_id
    nav.append_parent_id = None if isinstance(append_parent, _Undefined) else append_parent
    return nav
