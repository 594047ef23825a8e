"""The client against a real chasqui-edge, chasqui-central and PostgreSQL,
with the fault proxy in front of the edge (started by systest/e2e
TestPythonClient). Each test runs with the sync and the asyncio client."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Dict, List

import grpc
import pytest

import chasqui
from chasqui import edge_pb2, records
from conftest import eventually, new_logger

COMMIT_TIMEOUT = 120.0  # a loaded 2-core machine commits in seconds; be generous


def tag(name: str) -> str:
    """A unique obs_unit, so PostgreSQL rows of one test can be counted."""
    return f"py-{name}-{uuid.uuid4().hex[:12]}"


def test_observation_lands_once(stack, driver):
    c = driver.client(stack.edge)
    unit = tag("once")
    started = c.start_observation("PYTEST", obs_unit=unit, attributes={"filter": "r"})
    obs_id = started.record_ids[0]
    assert started.transaction_id and not started.duplicate
    # Read back before and after it reaches central: the edge merges its buffer.
    view = c.get_observation(obs_id).observation
    assert view.observation.id == obs_id
    assert view.source in (edge_pb2.RECORD_SOURCE_BUFFERED, edge_pb2.RECORD_SOURCE_COMMITTED, edge_pb2.RECORD_SOURCE_VISIBLE)
    f = c.register_raw_file(obs_id, "/data/py/0001.fits", size_bytes=1024, checksum="sha256:00")
    cfg = c.record_config("PYTEST", {"gain": 2.5}, observation_id=obs_id)
    finished = c.finish_observation(obs_id)

    st = c.wait(finished.transaction_id, timeout=COMMIT_TIMEOUT)
    assert st.state in (edge_pb2.TRANSACTION_STATE_COMMITTED, edge_pb2.TRANSACTION_STATE_VISIBLE)
    assert st.commit_lsn, "a committed transaction carries its PostgreSQL LSN"
    for r in (started, f, cfg, finished):
        got = c.get_transaction(r.transaction_id)
        assert got.state in (edge_pb2.TRANSACTION_STATE_COMMITTED, edge_pb2.TRANSACTION_STATE_VISIBLE), got
        assert stack.ctl.applied(r.transaction_id) == ["applied"], "applied exactly once"
    assert stack.ctl.observations(unit) == ["COMPLETED"], "one row, finished"
    listed = c.list_observations(instrument="PYTEST", page_size=1000)
    assert obs_id in [v.observation.id for v in listed.observations]
    with pytest.raises(grpc.RpcError) as e:
        c.get_transaction(str(chasqui.uuid7()))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


class Load:
    """Writers starting observations through one client until stopped,
    recording every acknowledged transaction and every error."""

    def __init__(self, c: Any, unit: str, writers: int = 4) -> None:
        self.c, self.unit = c, unit
        self.acked: List[str] = []
        self.errors: List[BaseException] = []
        self._mu = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(writers)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                r = self.c.start_observation("PYTEST", obs_unit=self.unit, timeout=60)
            except BaseException as e:  # every error is a failure of the test
                with self._mu:
                    self.errors.append(e)
                continue
            with self._mu:
                self.acked.append(r.transaction_id)
            time.sleep(0.005)  # pacing between calls, not a wait for state

    def count(self) -> int:
        with self._mu:
            return len(self.acked)

    def wait_progress(self, n: int) -> None:
        target = self.count() + n
        eventually(lambda: self.count() >= target, 120, f"{n} more calls acknowledged")

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)


def test_outage_1s_raises_nothing(stack, driver, proxy_healed):
    c = driver.client(stack.proxy)
    unit = tag("outage1s")
    load = Load(c, unit)
    try:
        load.wait_progress(50)
        for _ in range(2):
            stack.ctl.post("/proxy/down")
            time.sleep(1.0)  # the outage
            stack.ctl.post("/proxy/up")
            load.wait_progress(30)
    finally:
        load.stop()
    assert load.errors == [], f"a 1 s outage raised: {load.errors[:3]}"
    n = len(load.acked)
    eventually(lambda: len(stack.ctl.observations(unit)) >= n, COMMIT_TIMEOUT, f"{n} acknowledged observations in PostgreSQL")
    assert len(stack.ctl.observations(unit)) == n, "every acknowledged observation exactly once"


class RateWatch:
    """Samples the proxy's counters every 100 ms; peak() is the highest
    count of attempts (calls, connections, connection attempts refused
    while down) in any one-second window."""

    def __init__(self, ctl: Any) -> None:
        self.ctl = ctl
        self.samples: List[Dict[str, Any]] = [ctl.stats()]
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.samples.append(self.ctl.stats())

    def stop(self) -> None:
        self._stop.set()
        self._t.join()
        self.samples.append(self.ctl.stats())

    def total(self, key: str) -> int:
        return self.samples[-1][key] - self.samples[0][key]

    def peak(self) -> float:
        s, j, peak = self.samples, 0, 0.0
        for i in range(len(s)):
            while j < len(s) - 1 and s[j]["at"] - s[i]["at"] < 1.0:
                j += 1
            secs = max(s[j]["at"] - s[i]["at"], 1.0)
            peak = max(peak, (s[j]["attempts"] - s[i]["attempts"]) / secs)
        return peak


def test_outage_10s_gives_up_bounded(stack, driver, proxy_healed):
    attempts = 3
    lg, logs = new_logger()
    c = driver.client(stack.proxy, policy=chasqui.RetryPolicy(max_attempts=attempts), logger=lg)
    c.status()  # connected before the cut
    callers = 32
    errors: List[BaseException] = []
    oks: List[Any] = []
    mu = threading.Lock()

    def caller(i: int) -> None:
        try:
            r = c.start_observation("PYTEST", obs_unit=tag("down10s"))
        except BaseException as e:
            with mu:
                errors.append(e)
            return
        with mu:
            oks.append(r)

    stack.ctl.post("/proxy/down")
    t0 = time.monotonic()
    watch = RateWatch(stack.ctl)
    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)  # every caller gives up while the link is still down
    time.sleep(max(0.0, 10.0 - (time.monotonic() - t0)))  # the rest of the 10 s outage
    watch.stop()
    stack.ctl.post("/proxy/up")

    assert oks == [], "the edge was unreachable, yet calls succeeded"
    assert len(errors) == callers
    assert watch.total("refused") > 0, "the client kept probing the dead link (else the bound proves nothing)"
    assert watch.peak() <= 10.0, f"attempts per second at the proxy: peak {watch.peak():.1f}"
    # Each caller made its attempts, logged with their numbers, and raised
    # the last attempt's error.
    calls = logs.by_request("Submit")
    assert len(calls) == callers
    last_codes = []
    for rid, recs in calls.items():
        assert [r.attempt for r in recs] == list(range(1, attempts + 1)), rid  # type: ignore[attr-defined]
        assert getattr(recs[-1], "give_up", "") == "attempts used up"
        last_codes.append(recs[-1].grpc_code)  # type: ignore[attr-defined]
    raised = sorted(e.code().name for e in errors if isinstance(e, grpc.RpcError))
    assert raised == sorted(last_codes), "each caller raised its last attempt's error"
    assert set(raised) <= {"DEADLINE_EXCEEDED", "UNAVAILABLE"}


def test_lost_answer_no_duplicate(stack, driver, proxy_healed):
    lg, logs = new_logger()
    c = driver.client(stack.proxy, policy=chasqui.RetryPolicy(per_attempt_timeout=10.0), logger=lg)
    direct = driver.client(stack.edge)
    c.status()  # connected: the answer is dropped on this connection
    unit = tag("lost")
    tx = records.transaction(records.observation("PYTEST", obs_unit=unit))
    stack.ctl.post("/proxy/drop-answers")
    result: List[Any] = []
    failure: List[BaseException] = []

    def call() -> None:
        try:
            result.extend(c.submit(tx))
        except BaseException as e:
            failure.append(e)

    t = threading.Thread(target=call)
    t.start()

    def stored() -> bool:
        # By obs_unit, not by id: a client that made up new ids per attempt
        # would be caught below (two rows), not here.
        return len(direct.list_observations(obs_unit=unit, timeout=10).observations) > 0

    eventually(stored, 60, "the edge stored the transaction whose answer is being dropped")
    assert t.is_alive(), "the caller is still waiting for the lost answer"
    stack.ctl.post("/proxy/heal")  # the held connection closes: the attempt fails
    t.join(timeout=120)
    assert failure == [], failure
    assert len(result) == 1 and result[0].transaction_id == tx.id
    assert result[0].duplicate, "the retry was answered with the first answer"
    (recs,) = logs.by_request("Submit").values()
    assert [r.attempt for r in recs][-1] >= 2, "answered on a retry"  # type: ignore[attr-defined]
    c.wait(tx.id, timeout=COMMIT_TIMEOUT)
    assert stack.ctl.applied(tx.id) == ["applied"]
    assert stack.ctl.observations(unit) == ["RUNNING"], "one observation row, not two"


def test_every_attempt_logged_and_budget(stack, driver, proxy_healed):
    attempts = 4
    lg, logs = new_logger()
    c = driver.client(
        stack.proxy, policy=chasqui.RetryPolicy(max_attempts=attempts, retry_budget=2, retry_burst=8), logger=lg
    )
    stack.ctl.post("/proxy/cut-calls")  # every call's connection closes as its headers arrive

    before = stack.ctl.stats()
    with pytest.raises(grpc.RpcError) as e:
        c.start_observation("PYTEST", obs_unit=tag("logged"))
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert stack.ctl.stats()["requests"] - before["requests"] == attempts, "each attempt reached the wire"
    (recs,) = logs.by_request("Submit").values()
    assert [r.attempt for r in recs] == list(range(1, attempts + 1))  # type: ignore[attr-defined]
    for r in recs:
        assert f"attempt {r.attempt}/{attempts}" in r.getMessage()  # type: ignore[attr-defined]

    # 32 callers failing at once: the client-wide budget (burst 8, 2/s)
    # holds their retries; without it they would send 32 x 4.
    before = stack.ctl.stats()
    t0 = time.monotonic()
    errs: List[BaseException] = []
    threads = [
        threading.Thread(target=lambda: _expect_error(c, errs)) for _ in range(32)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    took = time.monotonic() - t0
    sent = stack.ctl.stats()["requests"] - before["requests"]
    bound = 32 + 8 + 2 * took + 4
    assert len(errs) == 32
    assert sent <= bound, f"{sent} calls on the wire in {took:.1f} s (bound {bound:.0f}; unbudgeted 128)"
    spent = [r for r in logs.records if getattr(r, "give_up", "") == "client retry budget spent"]
    assert spent, "the budget turned retries away"


def _expect_error(c: Any, errs: List[BaseException]) -> None:
    try:
        c.start_observation("PYTEST", obs_unit=tag("budget"))
    except BaseException as e:
        errs.append(e)


def _watch_until(c: Any, ids: List[str], on_event: Any, done: Any, timeout: float) -> None:
    """Consumes a watch (sync or asyncio client) until done() holds."""
    if isinstance(c, chasqui.Client):
        for r in c.watch(ids, timeout=timeout):
            on_event(r)
            if done():
                return
        return

    async def go() -> None:
        gen = c._c.watch(ids, timeout=timeout)
        try:
            async for r in gen:
                on_event(r)
                if done():
                    return
        finally:
            await gen.aclose()

    c._drv.run(go)


def test_watch_resumes_after_an_outage(stack, driver, proxy_healed):
    lg, logs = new_logger()
    c = driver.client(stack.proxy, logger=lg)
    direct = driver.client(stack.edge)
    tx1 = records.transaction(records.observation("PYTEST", obs_unit=tag("watch")))
    tx2 = records.transaction(records.observation("PYTEST", obs_unit=tag("watch")))
    direct.submit(tx1)
    seen: List[Any] = []
    mu = threading.Lock()
    failure: List[BaseException] = []

    def states(tx_id: str) -> List[int]:
        with mu:
            return [r.transaction.state for r in seen if r.transaction.transaction_id == tx_id]

    committed = (edge_pb2.TRANSACTION_STATE_COMMITTED, edge_pb2.TRANSACTION_STATE_VISIBLE)

    def on_event(r: Any) -> None:
        with mu:
            seen.append(r)

    def run() -> None:
        try:
            _watch_until(c, [tx1.id, tx2.id], on_event, lambda: any(s in committed for s in states(tx2.id)), 300)
        except BaseException as e:
            failure.append(e)

    t = threading.Thread(target=run)
    t.start()
    eventually(lambda: any(s in committed for s in states(tx1.id)), COMMIT_TIMEOUT, "the watch saw tx1 committed")
    stack.ctl.post("/proxy/down")  # breaks the stream
    direct.submit(tx2)  # changes while the watcher is cut off
    eventually(lambda: any(r.grpc_method == "WatchTransactions" for r in logs.records), 60, "the broken stream was logged")  # type: ignore[attr-defined]
    time.sleep(1.0)  # the rest of the outage
    stack.ctl.post("/proxy/up")
    t.join(timeout=COMMIT_TIMEOUT + 60)
    assert not t.is_alive() and failure == [], failure
    assert edge_pb2.TRANSACTION_STATE_ACCEPTED in states(tx2.id) or states(tx2.id)[0] in committed
    changes = [r.change for r in seen]
    assert changes == sorted(changes), "changes in order across the reconnect"
    broke = [r for r in logs.records if r.grpc_method == "WatchTransactions"]  # type: ignore[attr-defined]
    assert broke and broke[0].grpc_code == "UNAVAILABLE"  # type: ignore[attr-defined]
