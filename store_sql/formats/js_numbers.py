"""JavaScript numbers in JSON: their spelling, kept source spellings, array-index keys.

Shared by the writer (`jsjson_write`) and the reader (`jsjson_read`); see `jsjson` for the
whole story (docs/FORMATS.md §4).
"""

from __future__ import annotations

import re
from typing import Any, Final, Self

JSONValue = Any
"""dict[str, JSONValue] | list[JSONValue] | str | int | float | bool | None | NumberLiteral"""

_MAX_ARRAY_INDEX: Final = 4294967294
_NUMBER_GRAMMAR: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_INF: Final = float("inf")


class NumberLiteral(float):
    """A JSON number kept in its source spelling (``1.0``, ``1E5``, ``-0``, ``1e400``).

    It behaves as the float JavaScript would read (``1e400`` is ``inf``); ``dumps`` writes
    ``source`` verbatim, so a number nobody touched is exported byte for byte.
    """

    __slots__ = ("source",)
    source: str

    def __new__(cls, source: str) -> Self:
        if not isinstance(source, str) or _NUMBER_GRAMMAR.fullmatch(source) is None:
            raise ValueError(f"NumberLiteral needs a JSON number, got {source!r}")
        return cls._exact(float(source), source)

    @classmethod
    def _exact(cls, value: float, source: str) -> Self:
        literal = float.__new__(cls, value)
        literal.source = source
        return literal

    def __getnewargs__(self) -> tuple[str]:  # type: ignore[override]
        return (self.source,)

    def __repr__(self) -> str:
        return f"NumberLiteral({self.source!r})"


def is_array_index(key: str) -> bool:
    """Whether JavaScript treats ``key`` as an array index and lists it first, ascending.

    Only canonical decimals ``"0"``..``"4294967294"`` qualify; ``"01"``, ``"-1"``,
    ``"1.5"`` and ``"4294967295"`` are ordinary keys that keep insertion order.
    """
    if not (key.isascii() and key.isdigit()):
        return False
    if key[0] == "0":
        return key == "0"
    return len(key) <= 10 and int(key) <= _MAX_ARRAY_INDEX


def js_number_text(x: float) -> str:
    """JavaScript's Number::toString(x), the spelling JSON.stringify uses."""
    if x != x or x == _INF or x == -_INF:
        return "null"
    if x == 0.0:
        return "0"  # also -0: JavaScript drops the sign
    text = float.__repr__(x)
    if "e" not in text:
        # Python's repr is fixed-point for 1e-4 <= |x| < 1e16, inside JavaScript's range.
        return text[:-2] if text.endswith(".0") else text
    # Python and JavaScript both pick the shortest digits that round-trip (closest on ties);
    # only the layout differs. ECMA-262 Number::toString, with x = 0.digits * 10**n:
    mantissa, _, exponent = text.partition("e")
    sign = "-" if mantissa[0] == "-" else ""
    digits = mantissa.lstrip("-").replace(".", "")
    k, n = len(digits), int(exponent) + 1
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    fraction = "." + digits[1:] if k > 1 else ""
    return f"{sign}{digits[0]}{fraction}e{'+' if n > 0 else '-'}{abs(n - 1)}"
