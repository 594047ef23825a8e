"""Bookkeeping of one logical call's attempts, shared by the sync and the
asyncio clients (they differ only in how they wait and call)."""

from __future__ import annotations

import logging
import random
import time
import uuid
from typing import Callable, Optional, Tuple

import grpc

from .policy import REQUEST_ID_KEY, RETRY_ATTEMPT_KEY, RetryBudget, RetryPolicy, status_code


class Attempts:
    """The attempts of one call: their timeouts, metadata, logs, and whether
    a failed one may be retried.

    Args:
        method: the RPC's name, for the logs.
        policy: the client's policy.
        budget: the client-wide retry budget.
        logger: where every attempt is logged.
        timeout: the caller's overall timeout in seconds, or None for
            max_attempts per-attempt timeouts and their backoffs.
        metadata: the caller's metadata, sent on every attempt.
        rand: the jitter source, uniform in [0, 1).
    """

    def __init__(
        self,
        method: str,
        policy: RetryPolicy,
        budget: RetryBudget,
        logger: logging.Logger,
        timeout: Optional[float],
        metadata: Tuple[Tuple[str, str], ...] = (),
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.rand = rand
        self.method = method
        self.policy = policy
        self.budget = budget
        self.logger = logger
        self.request_id = str(uuid.uuid4())
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.extra_metadata = metadata
        self.number = 0  # the current attempt, 1-based
        self._started = 0.0
        self._own_timeout = True

    def begin(self) -> Tuple[float, Tuple[Tuple[str, str], ...]]:
        """Starts the next attempt; returns its timeout and metadata."""
        self.number += 1
        self._started = time.monotonic()
        t = self.policy.per_attempt_timeout
        self._own_timeout = True
        if self.deadline is not None:
            left = self.deadline - self._started
            if left <= t:
                t, self._own_timeout = max(left, 0.0), False
        md = self.extra_metadata + (
            (REQUEST_ID_KEY, self.request_id),
            (RETRY_ATTEMPT_KEY, str(self.number - 1)),
        )
        return t, md

    def _fields(self, code: str) -> dict:
        return {
            "attempt": self.number,
            "max_attempts": self.policy.max_attempts,
            "request_id": self.request_id,
            "grpc_method": self.method,
            "grpc_code": code,
            "elapsed_ms": round((time.monotonic() - self._started) * 1000, 1),
        }

    def succeeded(self) -> None:
        """Logs a successful attempt (DEBUG: one line per call in normal operation)."""
        if self.logger.isEnabledFor(logging.DEBUG) or self.number > 1:
            f = self._fields("OK")
            self.logger.log(
                logging.DEBUG if self.number == 1 else logging.INFO,
                "chasqui: %s attempt %d/%d ok in %.1f ms (request %s)",
                self.method, self.number, self.policy.max_attempts, f["elapsed_ms"], self.request_id,
                extra=f,
            )

    def failed(self, err: BaseException) -> Optional[float]:
        """Logs a failed attempt and returns the seconds to wait before the
        next one, or None when the call must raise ``err``: its code is not
        retried, the attempts or the caller's time are used up, or the
        client-wide retry budget is spent."""
        code = status_code(err)
        name = code.name if code is not None else type(err).__name__
        detail = err.details() if isinstance(err, grpc.RpcError) and hasattr(err, "details") else str(err)
        f = self._fields(name)
        reason = self._give_up_reason(code)
        wait: Optional[float] = None
        if reason is None:
            assert code is not None
            wait = self.policy.backoff(self.number, code, self.rand)
            if self.deadline is not None and time.monotonic() + wait >= self.deadline:
                reason = "no time left for another attempt"
            elif not self.budget.allow():
                reason = "client retry budget spent"
        if reason is None:
            assert wait is not None
            self.logger.warning(
                "chasqui: %s attempt %d/%d failed: %s: %s; retrying in %.0f ms (request %s)",
                self.method, self.number, self.policy.max_attempts, name, detail, wait * 1000, self.request_id,
                extra=dict(f, retry_in_ms=round(wait * 1000, 1)),
            )
            return wait
        # A definite answer on the first attempt (NOT_FOUND, INVALID_ARGUMENT,
        # ...) is the caller's to handle, not a sign of trouble: INFO.
        level = logging.INFO if reason == "not retryable" and self.number == 1 else logging.WARNING
        self.logger.log(
            level,
            "chasqui: %s attempt %d/%d failed: %s: %s; giving up (%s) (request %s)",
            self.method, self.number, self.policy.max_attempts, name, detail, reason, self.request_id,
            extra=dict(f, give_up=reason),
        )
        return None

    def _give_up_reason(self, code: Optional[grpc.StatusCode]) -> Optional[str]:
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            if not self._own_timeout:
                return "the caller's timeout passed"
        elif code is None or code not in self.policy.retry_codes:
            return "not retryable"
        if self.number >= self.policy.max_attempts:
            return "attempts used up"
        return None
