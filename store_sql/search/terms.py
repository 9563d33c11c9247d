"""What a search looks for: literal text, or a raw query of substrings with AND, OR, NOT.

The trigram index (`entry_text_fts`, detail=none) records which lines hold each trigram,
not where: it finds *candidate* lines, and `Terms.matches` decides on their text. A
substring of 3 or more characters becomes the FTS5 query "all of its trigrams"; shorter
ones cannot use the index, and a query whose candidates they would decide reads every
line's text instead (`Terms.match` is None).

A raw query (`store-sql search --raw`) is the part of FTS5's query syntax that means
something for substrings: words and "quoted phrases" (each a substring, `""` inside quotes
is one `"`), AND (also implied between two terms), OR, NOT (`a NOT b`: a without b) and
parentheses; NOT binds tightest, then AND, then OR, as in FTS5. NEAR, column filters,
prefix `*`, `^` and `+` mean positions, which the index does not keep: they are refused.
Matching folds case with `str.lower`, as the trigram tokenizer folds it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from store_sql.errors import StoreError

_MAX_TRIGRAMS = 12
"""Trigrams asked of the index for one substring: more narrow the candidates a little
and cost a doclist each; the text check decides anyway."""


class InvalidSearchError(StoreError, ValueError):
    """The search text or a filter cannot be used (empty text, bad time, bad raw query)."""


@dataclass(frozen=True, slots=True)
class Substring:
    text: str


@dataclass(frozen=True, slots=True)
class AllOf:
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Without:
    kept: Node
    left_out: Node


Node = Substring | AllOf | AnyOf | Without


@dataclass(frozen=True, slots=True)
class Terms:
    """A parsed search: the FTS5 query for its candidates and the test of their text."""

    node: Node
    match: str | None
    """FTS5 MATCH text selecting a superset of the matching lines; None: no index use."""

    def matches(self, text: str) -> bool:
        return _holds(self.node, text.lower())

    def substrings(self) -> list[str]:
        """The substrings the query looks for (for snippets), in query order."""
        found: list[str] = []
        _collect(self.node, found)
        return found


def literal(text: str) -> Terms:
    """`text` as one literal substring."""
    node = Substring(text)
    return Terms(node, _candidates(node))


def raw_query(text: str) -> Terms:
    """Parse a raw query; InvalidSearchError (naming FTS5) when it cannot be used."""
    parser = _Parser(_parts(text))
    node = parser.expression()
    if parser.peek() is not None:
        raise InvalidSearchError(f"not a valid FTS5 query: unexpected {parser.peek()!r}")
    return Terms(node, _candidates(node))


def trigram_match(text: str) -> str | None:
    """FTS5 query for the lines holding every trigram of `text` (None: under 3 characters)."""
    lowered = text.lower()
    grams = list(dict.fromkeys(lowered[i : i + 3] for i in range(len(lowered) - 2)))
    if not grams:
        return None
    if len(grams) > _MAX_TRIGRAMS:
        step = (len(grams) - 1) / (_MAX_TRIGRAMS - 1)
        grams = [grams[round(i * step)] for i in range(_MAX_TRIGRAMS)]
    return " AND ".join('"' + gram.replace('"', '""') + '"' for gram in grams)


# --- candidates and checks -------------------------------------------------------------------


def _candidates(node: Node) -> str | None:
    if isinstance(node, Substring):
        return trigram_match(node.text)
    if isinstance(node, Without):
        return _candidates(node.kept)  # lines without `left_out` are checked by text
    parts = [_candidates(part) for part in node.parts]
    if isinstance(node, AllOf):
        known = [p for p in parts if p is not None]
        return " AND ".join(f"({p})" for p in known) if known else None
    if any(p is None for p in parts):
        return None  # one alternative cannot use the index: every line is a candidate
    return " OR ".join(f"({p})" for p in parts)


def _holds(node: Node, lowered: str) -> bool:
    if isinstance(node, Substring):
        return node.text.lower() in lowered
    if isinstance(node, AllOf):
        return all(_holds(part, lowered) for part in node.parts)
    if isinstance(node, AnyOf):
        return any(_holds(part, lowered) for part in node.parts)
    return _holds(node.kept, lowered) and not _holds(node.left_out, lowered)


def _collect(node: Node, found: list[str]) -> None:
    if isinstance(node, Substring):
        found.append(node.text)
    elif isinstance(node, Without):
        _collect(node.kept, found)
    else:
        for part in node.parts:
            _collect(part, found)


# --- the raw query syntax --------------------------------------------------------------------

_TOKEN = re.compile(r'\s+|"(?:[^"]|"")*"|[()]|[^\s"()]+')
_REFUSED = re.compile(r"[*^+:{}]")
_OPERATORS = frozenset({"AND", "OR", "NOT"})


def _parts(text: str) -> list[str | Substring]:
    """Operators and parentheses as str, phrases and words as Substring."""
    out: list[str | Substring] = []
    pos = 0
    while pos < len(text):
        found = _TOKEN.match(text, pos)
        if found is None:
            raise InvalidSearchError(f"not a valid FTS5 query: unterminated string at {pos}")
        part = found.group()
        pos = found.end()
        if part.isspace():
            continue
        if part.startswith('"'):
            out.append(Substring(part[1:-1].replace('""', '"')))
        elif part in ("(", ")") or part in _OPERATORS:
            out.append(part)
        elif part == "NEAR" or _REFUSED.search(part):
            raise InvalidSearchError(
                f"not supported in a raw query: {part!r} (NEAR, column filters, prefix *, ^ "
                "and + need positions, which the trigram index does not keep; FTS5 phrases, "
                "AND, OR, NOT and parentheses work)"
            )
        else:
            out.append(Substring(part))
    if not out:
        raise InvalidSearchError("give a search text (3 or more characters use the index)")
    return out


class _Parser:
    def __init__(self, parts: list[str | Substring]) -> None:
        self._parts = parts
        self._at = 0

    def peek(self) -> str | Substring | None:
        return self._parts[self._at] if self._at < len(self._parts) else None

    def _take(self) -> str | Substring:
        part = self.peek()
        if part is None:
            raise InvalidSearchError("not a valid FTS5 query: it ends too early")
        self._at += 1
        return part

    def expression(self) -> Node:
        parts = [self._all_of()]
        while self.peek() == "OR":
            self._take()
            parts.append(self._all_of())
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    def _all_of(self) -> Node:
        parts = [self._without()]
        while (part := self.peek()) is not None and part not in ("OR", ")"):
            if part == "AND":
                self._take()
            parts.append(self._without())
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def _without(self) -> Node:
        node = self._primary()
        while self.peek() == "NOT":
            self._take()
            node = Without(node, self._primary())
        return node

    def _primary(self) -> Node:
        part = self._take()
        if isinstance(part, Substring):
            return part
        if part == "(":
            node = self.expression()
            if self._take() != ")":
                raise InvalidSearchError("not a valid FTS5 query: a parenthesis is not closed")
            return node
        raise InvalidSearchError(f"not a valid FTS5 query: unexpected {part!r}")
