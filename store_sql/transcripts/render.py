"""Readable renderings of transcript entries, for people debugging a session.

One function per form: `entry_lines` for the terminal (`transcript show|tail`), `markdown`
for `export --format markdown`. Tool calls and tool results are folded to one line each;
thinking is omitted; nothing here is meant to be parsed back."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from store_sql.transcripts.reads import StoredEntry, TreeNode

_FOLD = 160


def _fold(text: str, limit: int = _FOLD) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _content_parts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    parts: list[str] = []
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text" and isinstance(block.get("text"), str):
                parts.append(block["text"])
            elif kind == "toolCall":
                args = block.get("arguments")
                parts.append(f"[tool call {block.get('name')}: {_fold(str(args), 100)}]")
            elif kind == "image":
                parts.append("[image]")
    return parts


def describe(entry: StoredEntry) -> tuple[str, str]:
    """(who, text) for one entry: the role or entry type, and its readable text."""
    if entry.kind == "damaged":
        return "damaged", f"[line kept verbatim: {entry.damage}]"
    if entry.kind == "blank":
        return "blank", ""
    value = entry.value()
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "session":
        return (
            "session",
            f"session {value.get('id')} (v{value.get('version', 1)}) cwd={value.get('cwd')}",
        )
    if kind == "message":
        message = value.get("message") or {}
        role = str(message.get("role"))
        if role == "toolResult":
            body = " ".join(_content_parts(message.get("content")))
            flag = " error" if message.get("isError") else ""
            return role, f"[tool result {message.get('toolName')}{flag}: {_fold(body, 100)}]"
        if role == "bashExecution":
            return role, f"$ {message.get('command')}  (exit {message.get('exitCode')})"
        return role, "\n".join(_content_parts(message.get("content")))
    if kind == "model_change":
        return kind, f"model -> {value.get('provider')}/{value.get('modelId')}"
    if kind == "thinking_level_change":
        return kind, f"thinking -> {value.get('thinkingLevel')}"
    if kind in ("compaction", "branch_summary"):
        return str(kind), _fold(str(value.get("summary", "")), 400)
    if kind == "label":
        return kind, f"label {value.get('targetId')} = {value.get('label')!r}"
    if kind == "session_info":
        return kind, f"name = {value.get('name')!r}"
    if kind == "custom_message":
        return kind, "\n".join(_content_parts(value.get("content")))
    return str(kind), _fold(str(value), 200)


def entry_lines(entries: Iterable[StoredEntry]) -> list[str]:
    """Terminal lines: `time  who  text`, multi-line text indented under its entry."""
    out: list[str] = []
    for entry in entries:
        who, text = describe(entry)
        stamp = (entry.timestamp or "").replace("T", " ")[:19]
        lines = text.splitlines() or [""]
        out.append(f"{stamp:19}  {entry.id or '-':8}  {who:>12}  {lines[0]}")
        out.extend(f"{'':19}  {'':8}  {'':>12}  {line}" for line in lines[1:])
    return out


def markdown(title: str, entries: Iterable[StoredEntry]) -> str:
    """A Markdown document of the entries, one section per entry."""
    out = [f"# {title}", ""]
    for entry in entries:
        who, text = describe(entry)
        out.append(f"### {who} · {entry.timestamp or ''} · `{entry.id or entry.pos}`")
        out.append("")
        out.append(text)
        out.append("")
    return "\n".join(out)


def tree_lines(roots: list[TreeNode]) -> list[str]:
    """An indented outline of the tree; branches show as siblings, labels in brackets."""
    out: list[str] = []
    # Each item: the node, the prefix of its own line, the prefix its chain continues with.
    # A chain continues under its first line; each branch of a branch point ("+ ") starts
    # with "- ", indented under it, and so does each of several roots. (Indenting by depth
    # alone printed two sibling chains as one: nothing showed where a branch ended.)
    many_roots = len(roots) > 1
    stack: list[tuple[TreeNode, str, str]] = [
        (r, "- " if many_roots else "", "  " if many_roots else "") for r in reversed(roots)
    ]
    while stack:
        node, prefix, chain = stack.pop()
        label = f" [{node.label}]" if node.label else ""
        what = node.role or node.type or "?"
        branches = len(node.children) > 1
        out.append(f"{prefix}{'+ ' if branches else ''}{node.id or node.pos} {what}{label}")
        if branches:
            children = [(c, chain + "  - ", chain + "    ") for c in node.children]
        else:
            children = [(c, chain, chain) for c in node.children]
        stack.extend(reversed(children))
    return out
