"""Placeholder: this command group is being written; it registers no subcommand yet."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    return None
