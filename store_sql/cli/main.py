"""`store-sql`: the command line, a thin layer over the library.

Each command module registers its subcommands and calls one public library function per
command. Errors the library raises on purpose (`StoreError`) print one clear line (or a JSON
object with --json) and exit with status 2; bad usage exits with 2 as argparse does.

Ctrl-C prints "store-sql: interrupted" and exits 130 at any moment: while the program starts
(imports, parsing) it exits at once, as nothing is open yet; once a command runs it unwinds,
so a store being written closes and rolls back. A closed stdout (`store-sql sql ... | head`)
ends the command quietly with 141, as a shell tool killed by SIGPIPE would."""

from __future__ import annotations

import os
import signal
import sys

TYPE_CHECKING = False  # typing's own, without importing typing at start-up
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from types import FrameType, ModuleType

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
_INTERRUPTED = b"store-sql: interrupted\n"


def _command_modules() -> list[ModuleType]:
    from store_sql.cli import (
        checkpoints_cmd,
        copy_cmd,
        doctor_cmd,
        export_cmd,
        import_cmd,
        migrate_cmd,
        search_cmd,
        serve_cmd,
        sessions_cmd,
        sql_cmd,
        stats_cmd,
        transcript_cmd,
        verify_cmd,
    )

    return [
        sessions_cmd,
        transcript_cmd,
        checkpoints_cmd,
        import_cmd,
        export_cmd,
        verify_cmd,
        copy_cmd,
        migrate_cmd,
        sql_cmd,
        search_cmd,
        stats_cmd,
        doctor_cmd,
        serve_cmd,
    ]


def build_parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="store-sql",
        description="SQLite-backed session and transcript store for AI-agent gateways.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _command_modules():
        module.register(sub)
    _name_commands(parser, "store-sql")
    return parser


def _name_commands(parser: argparse.ArgumentParser, prog: str) -> None:
    """Give every (sub)command its full name as `command_name` (for one-line refusals)."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                full = f"{prog} {name}".removeprefix("store-sql ")
                child.set_defaults(command_name=full)
                _name_commands(child, f"{prog} {name}")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        _ignore_sigint()
        os.write(2, _INTERRUPTED)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Whoever read stdout went away; writes (and the flush at exit) go nowhere.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    import io
    import sqlite3

    from store_sql.cli import output
    from store_sql.cli.common import refuse_unported
    from store_sql.engine.damage import corruption_error, is_corruption
    from store_sql.errors import StoreError

    for stream in (sys.stdout, sys.stderr):
        # A lone surrogate (stored text, or argv bytes that are not UTF-8) prints escaped
        # instead of ending the command in a UnicodeEncodeError.
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    _sigint_raises()
    try:
        try:
            refuse_unported(args)
            code: int = args.handler(args)
        except sqlite3.DatabaseError as exc:
            # Reads through the console (stats, search, doctor) meet SQLite directly.
            if not is_corruption(exc):
                raise
            raise corruption_error(getattr(args, "db", "the database"), exc) from exc
    except StoreError as exc:
        # A message may quote a path whose bytes are not UTF-8 (lone surrogates in Python).
        message = str(exc).encode("utf-8", "backslashreplace").decode("utf-8")
        if getattr(args, "json", False):
            output.emit_json({"error": type(exc).__name__, "message": message}, sys.stderr)
        else:
            print(f"store-sql: {message}", file=sys.stderr)
        return 2
    return code


def _exit_at_once(_signum: int, _frame: FrameType | None) -> None:
    """Ctrl-C while the program starts: nothing is open, so exit without unwinding (an
    exception raised inside an import would end in a traceback)."""
    os.write(2, _INTERRUPTED)
    os._exit(EXIT_INTERRUPTED)


def _sigint_raises() -> None:
    """From here on Ctrl-C raises KeyboardInterrupt, so what a command opened is closed."""
    if signal.getsignal(signal.SIGINT) is _exit_at_once:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _ignore_sigint() -> None:
    """A second Ctrl-C while the program says it was interrupted and exits changes nothing."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def run() -> None:
    """The `store-sql` program."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _exit_at_once)  # an inherited SIG_IGN stays
    sys.exit(main())
