"""UUIDv7 generator: version and variant bits, strict order, time prefix."""

from __future__ import annotations

import time
import uuid

from chasqui.uuid7 import UUIDv7Generator, uuid7

N = 100_000


def test_100k_ids_versions_order_and_clock():
    before = time.time_ns() // 1_000_000
    ids = [uuid7() for _ in range(N)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == N
    for u in ids:
        assert u.version == 7
        assert u.variant == uuid.RFC_4122
    ints = [u.int for u in ids]
    assert all(a < b for a, b in zip(ints, ints[1:])), "strictly increasing"
    texts = [str(u) for u in ids]
    assert texts == sorted(texts), "text order is time order (what PostgreSQL sorts)"
    # The 48-bit prefix is the Unix time in ms of the call (a generator may
    # run ahead of the clock only after 2**73 ids in one ms).
    for u in (ids[0], ids[N // 2], ids[-1]):
        ms = u.int >> 80
        assert before <= ms <= after, (before, ms, after)
    assert ids[0].int >> 80 <= ids[-1].int >> 80


def _ms(u: uuid.UUID) -> int:
    return u.int >> 80


def test_same_millisecond_and_clock_stepping_back():
    now = [1_700_000_000_000]
    seeds = iter([5, 1 << 60, 7])
    g = UUIDv7Generator(clock=lambda: now[0], seed=lambda: next(seeds))
    a, b = g.new(), g.new()
    assert _ms(a) == _ms(b) == now[0]
    assert b.int == a.int + 1, "within a millisecond the counter counts on"
    now[0] -= 5000  # the clock steps back 5 s
    c = g.new()
    assert c > b and _ms(c) == _ms(b), "order survives a clock stepping back"
    now[0] += 10_000
    d = g.new()
    assert _ms(d) == now[0] and d > c, "a new millisecond draws a new random start"


def test_counter_overflow_borrows_the_next_millisecond():
    g = UUIDv7Generator(clock=lambda: 1000, seed=lambda: (1 << 74) - 2)
    a, b, c = g.new(), g.new(), g.new()
    assert _ms(a) == _ms(b) == 1000
    assert _ms(c) == 1001 and c > b
    assert c.version == 7 and c.variant == uuid.RFC_4122
