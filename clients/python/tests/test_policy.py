"""The retry policy against a local gRPC server that fails on demand: what
is retried and what is not, the metadata of each attempt, the backoff, the
retry budget, and the service config other languages load."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent import futures
from typing import List, Tuple

import grpc
import pytest

import chasqui
from chasqui import edge_pb2
from chasqui.edge.v1 import edge_pb2_grpc
from chasqui.policy import RetryBudget, RetryPolicy
from conftest import new_logger


class FlakyEdge(edge_pb2_grpc.EdgeServiceServicer):
    """Fails the first len(codes) Submit calls with those codes, then answers;
    records every call's metadata and request."""

    def __init__(self) -> None:
        self.codes: List[grpc.StatusCode] = []
        self.delays: List[float] = []  # seconds before answering, per call
        self.calls: List[Tuple[dict, edge_pb2.SubmitRequest]] = []
        self.mu = threading.Lock()

    def Submit(self, request, context):
        with self.mu:
            self.calls.append((dict(context.invocation_metadata()), request))
            code = self.codes.pop(0) if self.codes else None
            delay = self.delays.pop(0) if self.delays else 0.0
        if delay:
            time.sleep(delay)  # a stalled server
        if code is not None:
            context.abort(code, "injected")
        return edge_pb2.SubmitResponse(
            results=[edge_pb2.SubmitResult(transaction_id=tx.id, seq=1) for tx in request.transactions]
        )


@pytest.fixture
def flaky():
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    edge = FlakyEdge()
    edge_pb2_grpc.add_EdgeServiceServicer_to_server(edge, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield edge, f"127.0.0.1:{port}"
    srv.stop(None)


FAST = dict(backoff_base=0.001, backoff_max=0.002, exhausted_backoff_base=0.001, exhausted_backoff_max=0.002)


def test_retries_unavailable_with_same_ids_and_attempt_metadata(flaky, driver):
    edge, addr = flaky
    edge.codes = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED]
    lg, logs = new_logger()
    c = driver.client(addr, policy=RetryPolicy(**FAST), logger=lg)
    r = c.start_observation("X")
    assert len(edge.calls) == 3
    mds = [md for md, _ in edge.calls]
    assert [md["x-retry-attempt"] for md in mds] == ["0", "1", "2"]
    assert len({md["x-request-id"] for md in mds}) == 1, "one request id for all attempts of a call"
    reqs = [req for _, req in edge.calls]
    assert all(q == reqs[0] for q in reqs), "every attempt sends the same transaction and record ids"
    assert r.transaction_id == reqs[0].transactions[0].id
    (recs,) = logs.by_request("Submit").values()
    assert [(x.attempt, x.grpc_code) for x in recs] == [(1, "UNAVAILABLE"), (2, "RESOURCE_EXHAUSTED"), (3, "OK")]


def test_gives_up_after_max_attempts_with_last_error(flaky, driver):
    edge, addr = flaky
    edge.codes = [grpc.StatusCode.UNAVAILABLE] * 2 + [grpc.StatusCode.RESOURCE_EXHAUSTED] + [grpc.StatusCode.UNAVAILABLE] * 5
    c = driver.client(addr, policy=RetryPolicy(max_attempts=3, **FAST))
    with pytest.raises(grpc.RpcError) as e:
        c.start_observation("X")
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, "the last attempt's error"
    assert len(edge.calls) == 3


def test_attempt_timeout_retried_caller_timeout_not(flaky, driver):
    edge, addr = flaky
    edge.delays = [1.5]  # the first attempt stalls past its own timeout
    lg, logs = new_logger()
    c = driver.client(addr, policy=RetryPolicy(per_attempt_timeout=0.3, **FAST), logger=lg)
    c.start_observation("X")
    (recs,) = logs.by_request("Submit").values()
    assert [(r.attempt, r.grpc_code) for r in recs] == [(1, "DEADLINE_EXCEEDED"), (2, "OK")]

    edge.delays = [1.5]
    with pytest.raises(grpc.RpcError) as e:
        c.start_observation("X", timeout=0.2)  # the caller's own deadline
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    calls_after = len(edge.calls)
    assert calls_after == 3, "the caller's timeout is not retried"


def test_other_codes_are_not_retried(flaky, driver):
    edge, addr = flaky
    edge.codes = [grpc.StatusCode.INVALID_ARGUMENT]
    c = driver.client(addr, policy=RetryPolicy(**FAST))
    with pytest.raises(grpc.RpcError) as e:
        c.start_observation("X")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(edge.calls) == 1


def test_budget_spent_stops_retries(flaky, driver):
    edge, addr = flaky
    edge.codes = [grpc.StatusCode.UNAVAILABLE] * 100
    c = driver.client(addr, policy=RetryPolicy(retry_budget=0, retry_burst=2, **FAST))
    for _ in range(3):
        with pytest.raises(grpc.RpcError):
            c.start_observation("X")
    # First attempts are free; the budget allowed two retries in all.
    assert len(edge.calls) == 3 + 2


def test_backoff_full_jitter_and_longer_for_exhausted():
    p = RetryPolicy()
    un, ex = grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED
    assert p.backoff(1, un, lambda: 0.0) == 0.0, "full jitter reaches zero"
    ceilings = [p.backoff(n, un, lambda: 0.999999) for n in range(1, 7)]
    assert ceilings == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0], rel=1e-3)
    assert p.backoff(1, ex, lambda: 0.999999) == pytest.approx(0.5, rel=1e-3)
    assert p.backoff(9, ex, lambda: 0.999999) == pytest.approx(5.0, rel=1e-3)


def test_budget_refills_at_its_rate():
    now = [0.0]
    b = RetryBudget(per_second=5, burst=3, clock=lambda: now[0])
    assert [b.allow() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.2  # one token
    assert [b.allow(), b.allow()] == [True, False]
    now[0] += 100  # refills to the burst, no more
    assert sum(b.allow() for _ in range(10)) == 3


def test_policy_validation_names_the_field():
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=11)
    with pytest.raises(ValueError, match="per_attempt_timeout"):
        RetryPolicy(per_attempt_timeout=0)
    with pytest.raises(ValueError, match="keepalive_time"):
        RetryPolicy(keepalive_time=1)


def test_token_needs_tls_off_this_machine():
    with pytest.raises(ValueError, match="TLS"):
        chasqui.Client("edge.example:7444", token="secret")
    chasqui.Client("127.0.0.1:7444", token="secret").close()


def test_service_config_matches_the_policy():
    here = os.path.dirname(__file__)
    with open(os.path.join(here, "..", "..", "service-config.json")) as f:
        cfg = json.load(f)
    p = RetryPolicy()
    (mc,) = cfg["methodConfig"]
    assert {"service": "chasqui.edge.v1.EdgeService"} in mc["name"]
    assert mc["waitForReady"] is True
    assert mc["timeout"] == f"{p.per_attempt_timeout * p.max_attempts:g}s"
    rp = mc["retryPolicy"]
    assert rp["maxAttempts"] == p.max_attempts
    assert rp["initialBackoff"] == f"{p.backoff_base:g}s"
    assert rp["maxBackoff"] == f"{p.backoff_max:g}s"
    assert rp["backoffMultiplier"] == 2
    assert set(rp["retryableStatusCodes"]) == {c.name for c in p.retry_codes}
    assert cfg["retryThrottling"] == {"maxTokens": 10, "tokenRatio": 0.1}


def test_logger_default_is_chasqui():
    c = chasqui.Client("127.0.0.1:1")
    assert c.logger is logging.getLogger("chasqui")
    c.close()
