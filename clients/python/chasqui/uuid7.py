"""UUIDv7 transaction and record ids (RFC 9562), generated in the client.

Python 3.11's :mod:`uuid` has no version 7. Ids are time-ordered: the first
48 bits are the Unix time in milliseconds, so PostgreSQL's B-tree indexes on
them stay append-mostly. Within one millisecond (and when the clock steps
back) the remaining 74 bits count up from a random start instead of being
drawn afresh (RFC 9562 section 6.2, method 2), so ids of one generator are
strictly increasing, and a retried or reordered call can always be told
apart from a new one.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Callable

__all__ = ["UUIDv7Generator", "uuid7", "uuid7_str"]

_COUNTER_BITS = 74  # 12 bits of rand_a, 62 bits of rand_b
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
# A new millisecond starts its counter below half its range, so at least
# 2**73 further ids fit in the same millisecond before it would overflow.
_SEED_BITS = _COUNTER_BITS - 1


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _random_seed() -> int:
    return int.from_bytes(os.urandom(10), "big") >> (80 - _SEED_BITS)


class UUIDv7Generator:
    """A thread-safe source of strictly increasing UUIDv7s.

    Args:
        clock: milliseconds since the Unix epoch. Default: the system clock.
        seed: a random start for a new millisecond's counter (below 2**73).
            Default: from :func:`os.urandom`.
    """

    def __init__(
        self,
        clock: Callable[[], int] = _now_ms,
        seed: Callable[[], int] = _random_seed,
    ) -> None:
        self._clock = clock
        self._seed = seed
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def new(self) -> uuid.UUID:
        """Returns the next id: greater than every id this generator gave."""
        with self._lock:
            ms = self._clock()
            if ms > self._last_ms:
                self._last_ms, self._counter = ms, self._seed()
            elif self._counter < _COUNTER_MAX:
                # Same millisecond, or the clock stepped back: keep the
                # last timestamp and count on, so order survives both.
                self._counter += 1
            else:
                # 2**73 ids in one millisecond: borrow the next one.
                self._last_ms, self._counter = self._last_ms + 1, self._seed()
            ms, counter = self._last_ms, self._counter
        rand_a = counter >> 62
        rand_b = counter & ((1 << 62) - 1)
        value = (
            (ms & ((1 << 48) - 1)) << 80
            | 0x7 << 76  # version 7
            | rand_a << 64
            | 0b10 << 62  # variant (RFC 9562)
            | rand_b
        )
        return uuid.UUID(int=value)


_default = UUIDv7Generator()


def uuid7() -> uuid.UUID:
    """Returns a new UUIDv7 from the process-wide generator."""
    return _default.new()


def uuid7_str() -> str:
    """Returns a new UUIDv7 in canonical text form (what the edge expects)."""
    return str(_default.new())
