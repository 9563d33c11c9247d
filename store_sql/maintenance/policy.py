"""`session.maintenance` as the gateway configures it, and reading its amounts.

`MaintenancePolicy` holds the settings `maintenance.plan_cleanup` applies (the gateway's
defaults: warn, prune after 30 days, cap at 500 entries, no disk budget);
`parse_duration_ms` and `parse_bytes` read the CLI's `30d` and `500mb` as the gateway's
config does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final, Literal

from store_sql.errors import InvalidEntryError

Mode = Literal["warn", "enforce"]
DAY_MS: Final = 86_400_000
_STRICT_MAX_ENTRIES: Final = 49


@dataclass(frozen=True, slots=True)
class MaintenancePolicy:
    """`session.maintenance` as the gateway configures it. `mode` defaults to warn, so
    nothing is removed unless asked; retention of archives defaults to `pruneAfter` (None
    keeps archives for ever); the disk budget is off unless `max_disk_bytes` is set."""

    mode: Mode = "warn"
    prune_after_ms: int = 30 * DAY_MS
    max_entries: int = 500
    max_disk_bytes: int | None = None
    high_water_bytes: int | None = None
    archive_retention_ms: int | None = 30 * DAY_MS

    def __post_init__(self) -> None:
        if self.mode not in ("warn", "enforce"):
            raise InvalidEntryError(f"maintenance mode must be warn or enforce, not {self.mode!r}")
        for name in ("prune_after_ms", "max_entries"):
            if getattr(self, name) < 0:
                raise InvalidEntryError(f"{name} must not be negative")

    def high_water(self) -> int | None:
        """The budget target: `highWaterBytes` (at most the maximum), else 80% of it."""
        if self.max_disk_bytes is None or self.max_disk_bytes <= 0:
            return None
        if self.high_water_bytes is not None:
            return min(self.high_water_bytes, self.max_disk_bytes)
        return max(1, min(self.max_disk_bytes, math.floor(self.max_disk_bytes * 0.8)))


def entry_high_water(max_entries: int) -> int:
    """Entry count at which write-triggered maintenance caps (the gateway batches: small caps
    strictly, larger ones with 10% slack, at least 25). `sessions cleanup` caps at once."""
    if max_entries <= 0:
        return 1
    if max_entries <= _STRICT_MAX_ENTRIES:
        return max_entries + 1
    return max_entries + max(25, math.ceil(max_entries * 0.1))


_UNITS_MS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}
_UNITS_BYTES: Final = {
    unit: factor
    for power, letter in enumerate("bkmgt")
    for factor in [1 << (10 * power)]
    for unit in ((letter,) if letter == "b" else (letter, f"{letter}b", f"{letter}ib"))
}
_AMOUNT = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*")


def _parse_amount(text: str, units: dict[str, int], default: str, what: str) -> int:
    match = _AMOUNT.fullmatch(text.lower())
    factor = units.get((match.group(2) or default) if match else "")
    if match is None or factor is None:
        raise InvalidEntryError(
            f"cannot read {what} {text!r}: use a number with a unit ({', '.join(units)})"
        )
    return int(float(match.group(1)) * factor)


def parse_duration_ms(text: str) -> int:
    """`30d`, `12h`, `90m`, `1w` (a bare number is days, as the gateway reads pruneAfter)."""
    return _parse_amount(text, _UNITS_MS, "d", "duration")


def parse_bytes(text: str) -> int:
    """`500mb`, `2gb`, `1048576` (binary units; a bare number is bytes)."""
    return _parse_amount(text, _UNITS_BYTES, "b", "size")
