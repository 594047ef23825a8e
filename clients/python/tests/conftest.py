"""Fixtures: the stack the Go driver (systest/e2e TestPythonClient) started,
and one driver per client kind, so every stack test runs against the sync
client and the asyncio one."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, List, Optional

import pytest

# Runnable straight from the tree: the package is the parent directory.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import chasqui  # noqa: E402


class Control:
    """The Go driver's control endpoint: the fault proxy in front of the
    edge, and counts of rows in central's PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _do(self, path: str, data: Optional[bytes] = None, **params: str) -> Dict[str, Any]:
        q = ("?" + urllib.parse.urlencode(params)) if params else ""
        with urllib.request.urlopen(self.url + path + q, data=data, timeout=60) as r:
            return json.loads(r.read())

    def post(self, path: str) -> None:
        self._do(path, data=b"")

    def stats(self) -> Dict[str, Any]:
        return self._do("/proxy/stats")

    def applied(self, tx_id: str) -> List[str]:
        """Outcomes of the rows of chasqui.applied_transactions for tx_id."""
        return self._do("/db/applied", tx_id=tx_id)["statuses"]

    def observations(self, obs_unit: str) -> List[str]:
        """Statuses of the rows of chasqui.observations with obs_unit."""
        return self._do("/db/observations", obs_unit=obs_unit)["statuses"]

    def units(self, name: str) -> List[str]:
        """Statuses of the rows of ops.observation_unit named name."""
        return self._do("/db/units", name=name)["statuses"]

    def packages(self, unit_name: str) -> List[str]:
        """size_bytes (as PostgreSQL prints it) of the raw data packages of
        the unit named unit_name."""
        return self._do("/db/packages", unit_name=unit_name)["statuses"]


class Stack:
    def __init__(self) -> None:
        self.edge = os.environ["CHASQUI_EDGE_ADDR"]
        self.proxy = os.environ["CHASQUI_PROXY_ADDR"]
        self.ctl = Control(os.environ["CHASQUI_CONTROL_URL"])


@pytest.fixture(scope="session")
def stack() -> Stack:
    if "CHASQUI_EDGE_ADDR" not in os.environ:
        pytest.skip("needs the stack: run through `make test-python` (systest/e2e TestPythonClient)")
    return Stack()


@pytest.fixture
def proxy_healed(stack: Stack):
    """Restores the proxy whatever the test left it as."""
    yield
    stack.ctl.post("/proxy/heal")
    stack.ctl.post("/proxy/up")


class Records(logging.Handler):
    """Collects log records (thread-safe)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: List[logging.LogRecord] = []
        self._mu = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._mu:
            self.records.append(record)

    def by_request(self, method: str) -> Dict[str, List[logging.LogRecord]]:
        with self._mu:
            out: Dict[str, List[logging.LogRecord]] = {}
            for r in self.records:
                if getattr(r, "grpc_method", None) == method:
                    out.setdefault(r.request_id, []).append(r)  # type: ignore[attr-defined]
            return out


_seq = 0


def new_logger() -> "tuple[logging.Logger, Records]":
    global _seq
    _seq += 1
    lg = logging.getLogger(f"chasqui.test.{_seq}")
    lg.setLevel(logging.DEBUG)
    lg.propagate = False
    h = Records()
    lg.addHandler(h)
    return lg, h


class SyncDriver:
    name = "sync"

    def __init__(self) -> None:
        self._clients: List[chasqui.Client] = []

    def client(self, target: str, **kw: Any) -> Any:
        c = chasqui.Client(target, **kw)
        self._clients.append(c)
        return c

    def close(self) -> None:
        for c in self._clients:
            c.close()


class _Bound:
    """An AsyncClient whose coroutines are run on the driver's loop and
    waited for: tests call it like the sync client, from many threads."""

    def __init__(self, drv: "AsyncDriver", c: "chasqui.AsyncClient") -> None:
        self._drv, self._c = drv, c

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._c, name)
        if not callable(attr):
            return attr

        def call(*a: Any, **kw: Any) -> Any:
            return self._drv.run(lambda: attr(*a, **kw))

        return call


class AsyncDriver:
    name = "async"

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._t = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._t.start()
        self._clients: List[chasqui.AsyncClient] = []

    def run(self, make: Callable[[], Any]) -> Any:
        async def go() -> Any:
            return await make()

        return asyncio.run_coroutine_threadsafe(go(), self.loop).result()

    def client(self, target: str, **kw: Any) -> Any:
        async def make() -> chasqui.AsyncClient:
            return chasqui.AsyncClient(target, **kw)

        c = self.run(make)
        self._clients.append(c)
        return _Bound(self, c)

    def close(self) -> None:
        for c in self._clients:
            self.run(c.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._t.join(timeout=30)


@pytest.fixture(params=["sync", "async"])
def driver(request: pytest.FixtureRequest):
    d = SyncDriver() if request.param == "sync" else AsyncDriver()
    yield d
    d.close()


def eventually(cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Polls cond until it holds, failing the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout} s: {what}")
        time.sleep(interval)  # poll interval
