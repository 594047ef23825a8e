"""The retry and connection policy, the same as the Go client's.

One logical call makes at most :attr:`RetryPolicy.max_attempts` attempts.
Each attempt waits for the channel to be ready (``wait_for_ready``) up to
:attr:`RetryPolicy.per_attempt_timeout`, so a dead link sends nothing while
the channel reconnects every 100 ms (growing to 5 s), and an edge outage of
about a second costs latency, not an error. UNAVAILABLE and an attempt's own
timeout are retried after an exponential backoff with full jitter;
RESOURCE_EXHAUSTED (the edge's queue or disk is full and may be draining) is
retried after a longer one. A client-wide :class:`RetryBudget` (a token
bucket every retry draws from, first attempts excepted) bounds the retries
of all callers together, so any number of failing callers stays near
:data:`DEFAULT_RETRY_BUDGET` retries per second. Retrying is safe because
the client fills in transaction and record ids before the first attempt:
the edge answers a repeated transaction with its first answer.

Every attempt carries ``x-request-id`` (one per logical call) and
``x-retry-attempt`` (0 on the first attempt, then 1, 2, ...), which the edge
puts in its logs, and is logged here with its number.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, FrozenSet, List, Optional, Tuple

import grpc

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_PER_ATTEMPT_TIMEOUT",
    "DEFAULT_BACKOFF_BASE",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_EXHAUSTED_BACKOFF_BASE",
    "DEFAULT_EXHAUSTED_BACKOFF_MAX",
    "DEFAULT_RETRY_BUDGET",
    "DEFAULT_RETRY_BURST",
    "DEFAULT_RECONNECT_BASE",
    "DEFAULT_RECONNECT_MAX",
    "DEFAULT_KEEPALIVE_TIME",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "MAX_ATTEMPTS_LIMIT",
    "REQUEST_ID_KEY",
    "RETRY_ATTEMPT_KEY",
    "RetryPolicy",
    "RetryBudget",
]

#: Attempts per call, the first included (the Go client's default).
DEFAULT_MAX_ATTEMPTS = 5
#: Seconds one attempt may take, the wait for a connection included: longer
#: than a 1 s outage plus a reconnect.
DEFAULT_PER_ATTEMPT_TIMEOUT = 2.0
#: The first retry's backoff ceiling in seconds; it doubles per retry up to
#: DEFAULT_BACKOFF_MAX, and the wait is drawn uniformly below it (full jitter).
DEFAULT_BACKOFF_BASE = 0.1
DEFAULT_BACKOFF_MAX = 1.0
#: The same for RESOURCE_EXHAUSTED: a full queue or disk drains in seconds,
#: not milliseconds.
DEFAULT_EXHAUSTED_BACKOFF_BASE = 0.5
DEFAULT_EXHAUSTED_BACKOFF_MAX = 5.0
#: Client-wide retries per second beyond the burst. The burst covers the
#: calls in flight when the edge restarts: they all fail at once and each
#: needs one retry to ride through a 1 s outage (the Go client's values).
DEFAULT_RETRY_BUDGET = 5.0
DEFAULT_RETRY_BURST = 64
#: Reconnect backoff bounds in seconds (gRPC's own 1 s base makes a 1 s
#: outage fail).
DEFAULT_RECONNECT_BASE = 0.1
DEFAULT_RECONNECT_MAX = 5.0
#: Keepalive ping interval on an idle link in seconds; the edge refuses
#: pings more often than every 10 s.
DEFAULT_KEEPALIVE_TIME = 30.0
#: Largest message sent or received.
DEFAULT_MAX_MESSAGE_BYTES = 16 << 20
#: More attempts than this multiply the load on a failing edge.
MAX_ATTEMPTS_LIMIT = 10

#: Metadata key of the request id, the same on every attempt of one call.
REQUEST_ID_KEY = "x-request-id"
#: Metadata key of the retry count (the Go retry interceptor's key).
RETRY_ATTEMPT_KEY = "x-retry-attempt"

_DEFAULT_RETRY_CODES: FrozenSet[grpc.StatusCode] = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
)


@dataclass(frozen=True)
class RetryPolicy:
    """How a client retries and connects. Every field has the Go client's default.

    Attributes:
        max_attempts: attempts per call, the first included (1 to 10).
            Default :data:`DEFAULT_MAX_ATTEMPTS`.
        per_attempt_timeout: seconds one attempt may take, the wait for a
            connection included. Default :data:`DEFAULT_PER_ATTEMPT_TIMEOUT`.
        backoff_base, backoff_max: backoff ceiling of the first retry and its
            cap, in seconds. Defaults :data:`DEFAULT_BACKOFF_BASE`,
            :data:`DEFAULT_BACKOFF_MAX`.
        exhausted_backoff_base, exhausted_backoff_max: the same after
            RESOURCE_EXHAUSTED. Defaults :data:`DEFAULT_EXHAUSTED_BACKOFF_BASE`,
            :data:`DEFAULT_EXHAUSTED_BACKOFF_MAX`.
        retry_codes: status codes retried. Default UNAVAILABLE and
            RESOURCE_EXHAUSTED. An attempt that ran out of its own
            per_attempt_timeout (DEADLINE_EXCEEDED) is always retried; the
            caller's overall timeout never is.
        retry_budget, retry_burst: the client-wide retry budget, retries per
            second and burst. Defaults :data:`DEFAULT_RETRY_BUDGET`,
            :data:`DEFAULT_RETRY_BURST`.
        reconnect_base, reconnect_max: reconnect backoff bounds in seconds.
            Defaults :data:`DEFAULT_RECONNECT_BASE`, :data:`DEFAULT_RECONNECT_MAX`.
        keepalive_time: idle ping interval in seconds (at least 10).
            Default :data:`DEFAULT_KEEPALIVE_TIME`.
        max_message_bytes: largest message either way.
            Default :data:`DEFAULT_MAX_MESSAGE_BYTES`.
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    per_attempt_timeout: float = DEFAULT_PER_ATTEMPT_TIMEOUT
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_max: float = DEFAULT_BACKOFF_MAX
    exhausted_backoff_base: float = DEFAULT_EXHAUSTED_BACKOFF_BASE
    exhausted_backoff_max: float = DEFAULT_EXHAUSTED_BACKOFF_MAX
    retry_codes: FrozenSet[grpc.StatusCode] = field(default=_DEFAULT_RETRY_CODES)
    retry_budget: float = DEFAULT_RETRY_BUDGET
    retry_burst: int = DEFAULT_RETRY_BURST
    reconnect_base: float = DEFAULT_RECONNECT_BASE
    reconnect_max: float = DEFAULT_RECONNECT_MAX
    keepalive_time: float = DEFAULT_KEEPALIVE_TIME
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raises ValueError naming the first unusable field."""
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS_LIMIT:
            raise ValueError(
                f"RetryPolicy.max_attempts must be 1..{MAX_ATTEMPTS_LIMIT}, got {self.max_attempts}"
            )
        for name in (
            "per_attempt_timeout",
            "backoff_base",
            "backoff_max",
            "exhausted_backoff_base",
            "exhausted_backoff_max",
            "reconnect_base",
            "reconnect_max",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"RetryPolicy.{name} must be positive, got {getattr(self, name)}")
        if self.retry_budget < 0:
            raise ValueError(f"RetryPolicy.retry_budget must not be negative, got {self.retry_budget}")
        if self.retry_burst < 0:
            raise ValueError(f"RetryPolicy.retry_burst must not be negative, got {self.retry_burst}")
        if self.keepalive_time < 10:
            raise ValueError(
                f"RetryPolicy.keepalive_time must be at least 10 s (the edge's ping limit), got {self.keepalive_time}"
            )

    def backoff(self, retry: int, code: grpc.StatusCode, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the second
        attempt) after a failure with ``code``: uniform in [0, ceiling), the
        ceiling doubling per retry up to the cap (full jitter, so callers
        that failed together do not retry together)."""
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            base, cap = self.exhausted_backoff_base, self.exhausted_backoff_max
        else:
            base, cap = self.backoff_base, self.backoff_max
        ceiling = min(cap, base * (2 ** (retry - 1)))
        return rand() * ceiling

    def channel_options(self) -> List[Tuple[str, int]]:
        """The gRPC channel arguments of the policy.

        gRPC's own retries are off: two retry layers would multiply attempts.
        """
        return [
            ("grpc.enable_retries", 0),
            ("grpc.initial_reconnect_backoff_ms", int(self.reconnect_base * 1000)),
            ("grpc.max_reconnect_backoff_ms", int(self.reconnect_max * 1000)),
            ("grpc.keepalive_time_ms", int(self.keepalive_time * 1000)),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
        ]


class RetryBudget:
    """The client-wide retry budget: a token bucket every retry draws from.

    It holds at most ``burst`` tokens and gains ``per_second`` a second.
    When it is empty, a failed call raises its last error instead of
    retrying, so callers failing together do not multiply the load on a
    failing edge. Thread-safe; ``clock`` (monotonic seconds) is injectable
    for tests.
    """

    def __init__(
        self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = per_second
        self._burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._at = clock()

    def allow(self) -> bool:
        """Takes one token when there is one."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


def status_code(err: BaseException) -> Optional[grpc.StatusCode]:
    """The gRPC status code of an error raised by a call, or None."""
    code = getattr(err, "code", None)
    if callable(code):
        try:
            c = code()
        except Exception:  # pragma: no cover - a foreign error type
            return None
        return c if isinstance(c, grpc.StatusCode) else None
    return None
