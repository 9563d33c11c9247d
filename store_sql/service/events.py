"""Live updates: who is told what changed, and the bounded feed of session-entry changes.

Transcript subscribers read their changes from the database (`changes_since` a cursor), a
page at a time and at their own pace, so a slow subscriber costs the server one page of
memory and loses nothing. The hub only wakes them: a write through the service signals the
transcript it touched (or every transcript of an agent after a reset, restore, migration or
import), and each subscriber also looks by itself every `POLL_SECONDS`, which catches writes
of other processes.

Session-entry changes have no cursor in the database, so the hub keeps the last
`FEED_SIZE` of them in a ring shared by every subscriber. A subscriber that falls further
behind than the ring (a slow reader, or a Last-Event-ID from before the ring or from another
run of the server) is told to resync: it reads the list again and follows from there. The
ring is the whole of the feed's memory, however many and however slow the subscribers.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

POLL_SECONDS: Final = 1.0
FEED_SIZE: Final = 1024


class Signal:
    """A counter that waiters watch: `wait(seen)` returns once it differs from `seen`."""

    __slots__ = ("_waiters", "count")

    def __init__(self) -> None:
        self.count = 0
        self._waiters: list[asyncio.Future[None]] = []

    def fire(self) -> None:
        self.count += 1
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def wait(self, seen: int, within: float) -> None:
        if self.count != seen:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await asyncio.wait_for(future, within)
        except TimeoutError:
            pass
        finally:
            if future in self._waiters:
                self._waiters.remove(future)


@dataclass(frozen=True, slots=True)
class SessionChange:
    seq: int
    agent_id: str
    event: str
    """`upsert`, `delete` or `reload` (many entries changed: list them again)."""
    data: bytes
    """The event's JSON payload."""


class EventHub:
    """Signals per transcript and per agent, and the ring of session-entry changes."""

    def __init__(self) -> None:
        self.run_id = secrets.token_hex(4)
        """Names this run of the server in the feed's event ids: an id of another run means
        the ring it points into is gone."""
        self.closing = asyncio.Event()
        self._transcripts: dict[tuple[str, str], Signal] = {}
        self._agents: dict[str, Signal] = {}
        self._feed: deque[SessionChange] = deque(maxlen=FEED_SIZE)
        self._feed_signal = Signal()
        self._seq = 0
        self.subscribers = 0
        self.resyncs = 0

    # --- transcripts -----------------------------------------------------------------------

    def transcript_signal(self, agent_id: str, session_id: str) -> Signal:
        key = (agent_id, session_id)
        signal = self._transcripts.get(key)
        if signal is None:
            signal = self._transcripts[key] = Signal()
        return signal

    def agent_signal(self, agent_id: str) -> Signal:
        signal = self._agents.get(agent_id)
        if signal is None:
            signal = self._agents[agent_id] = Signal()
        return signal

    def transcript_changed(self, agent_id: str, session_id: str) -> None:
        signal = self._transcripts.get((agent_id, session_id))
        if signal is not None:
            signal.fire()

    def agent_changed(self, agent_id: str) -> None:
        """Every transcript of the agent may have been replaced (reset, restore, import)."""
        signal = self._agents.get(agent_id)
        if signal is not None:
            signal.fire()
        for (agent, _), sig in self._transcripts.items():
            if agent == agent_id:
                sig.fire()

    def release(self, agent_id: str, session_id: str, signal: Signal) -> None:
        """Forget a transcript's signal once nobody waits on it."""
        if not signal._waiters and self._transcripts.get((agent_id, session_id)) is signal:
            del self._transcripts[(agent_id, session_id)]

    # --- session entries ---------------------------------------------------------------------

    def session_changed(self, agent_id: str, event: str, data: bytes) -> None:
        self._seq += 1
        self._feed.append(SessionChange(self._seq, agent_id, event, data))
        self._feed_signal.fire()

    def event_id(self, seq: int) -> str:
        return f"{self.run_id}.{seq}"

    def start_seq(self, last_event_id: str | None) -> int | None:
        """Where a subscriber starts: after its Last-Event-ID when the ring still holds
        what follows it; None when it must resync (or has nothing to resume)."""
        if last_event_id is None:
            return self._seq
        run, _, seq_text = last_event_id.partition(".")
        if run != self.run_id or not seq_text.isdigit():
            return None
        seq = int(seq_text)
        if seq > self._seq:
            return None
        oldest = self._feed[0].seq if self._feed else self._seq + 1
        if seq + 1 < oldest:
            return None
        return seq

    def feed_after(self, agent_id: str, seq: int) -> tuple[list[SessionChange], int, bool]:
        """Changes of `agent_id` after `seq`, the seq read up to, and whether `seq` had
        already left the ring (the subscriber missed changes and must resync)."""
        if not self._feed or seq >= self._seq:
            return [], self._seq, False
        if seq + 1 < self._feed[0].seq:
            return [], self._seq, True
        out = [c for c in _after(self._feed, seq) if c.agent_id == agent_id]
        return out, self._seq, False

    def fell_behind(self, seq: int) -> bool:
        """Whether changes after `seq` have already left the ring."""
        return bool(self._feed) and seq + 1 < self._feed[0].seq

    @property
    def feed_signal(self) -> Signal:
        return self._feed_signal

    def close(self) -> None:
        self.closing.set()
        for signal in [*self._transcripts.values(), *self._agents.values(), self._feed_signal]:
            signal.fire()


def _after(feed: deque[SessionChange], seq: int) -> Iterable[SessionChange]:
    # The ring is in seq order: skip to the first change after `seq` without a scan.
    start = seq + 1 - feed[0].seq
    for i in range(max(0, start), len(feed)):
        yield feed[i]
