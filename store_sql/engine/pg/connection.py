"""The asyncpg connection as the domains' PostgreSQL twins see it: its type, a read's
snapshot, and the mutation that combines with its neighbours.

Kept apart from the writer and the readers, which need asyncpg itself: every namespace
imports its twins, and they must not load the driver until a store opens on PostgreSQL."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import asyncpg

PgConnection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"


def snapshot(conn: PgConnection) -> asyncpg.transaction.Transaction:
    """A read's transaction: REPEATABLE READ READ ONLY, one snapshot for all its statements."""
    return conn.transaction(isolation="repeatable_read", readonly=True)


class CombinablePgMutation(abc.ABC):
    """A mutation whose consecutive neighbours of the same class can run as one.

    `combine(conn, mutations)` must have the same effect and results as awaiting the
    mutations one after another, only in fewer statements (arrays through `unnest`,
    `= ANY($1)`). Any error makes the writer rerun them one by one in savepoints, so each
    caller still gets its own outcome."""

    __slots__ = ()

    @abc.abstractmethod
    async def __call__(self, conn: PgConnection) -> Any: ...

    @classmethod
    @abc.abstractmethod
    async def combine(cls, conn: PgConnection, mutations: Sequence[Any]) -> Sequence[Any]: ...
