"""The asyncio client (grpc.aio), for services that run an event loop.
Same policy, helpers and results as :class:`chasqui.Client`; every method
is a coroutine (``watch`` an async iterator). Create it inside the loop
that uses it."""

from __future__ import annotations

import logging
import random
import asyncio
import time
from typing import Any, AsyncIterator, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple

import grpc
import grpc.aio

from . import records
from ._base import _Base, reached
from .policy import RetryPolicy
from .tls import TLSFiles
from .edge.v1 import edge_pb2, edge_pb2_grpc
from .ops.v1 import ops_pb2

__all__ = ["AsyncClient"]


class AsyncClient(_Base):
    """Writes to and reads from one edge from asyncio code.

    Takes the arguments of :class:`chasqui.Client`. Concurrent calls share
    one channel and one retry budget. Close it with ``await client.close()``
    or ``async with``.
    """

    def __init__(
        self,
        target: str,
        *,
        tls: Optional[TLSFiles] = None,
        token: Optional[str] = None,
        policy: Optional[RetryPolicy] = None,
        logger: Optional[logging.Logger] = None,
        channel_options: Sequence[Tuple[str, Any]] = (),
        rand: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(
            target, tls=tls, token=token, policy=policy, logger=logger, channel_options=channel_options, rand=rand
        )
        if self._credentials is not None:
            self.channel = grpc.aio.secure_channel(target, self._credentials, self._options)
        else:
            self.channel = grpc.aio.insecure_channel(target, self._options)
        self._edge = edge_pb2_grpc.EdgeServiceStub(self.channel)
        self._admin = edge_pb2_grpc.AdminServiceStub(self.channel)

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        await self.channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: str, fn: Any, request: Any, timeout: Optional[float]) -> Any:
        a = self._attempts(method, timeout)
        while True:
            t, md = a.begin()
            try:
                resp = await fn(request, timeout=t, metadata=md, wait_for_ready=True)
            except grpc.RpcError as err:
                wait = a.failed(err)
                if wait is None:
                    raise
                await asyncio.sleep(wait)
                continue
            a.succeeded()
            return resp

    # Writes.

    async def submit(self, *txs: ops_pb2.Transaction, timeout: Optional[float] = None) -> List[edge_pb2.SubmitResult]:
        """See :meth:`chasqui.Client.submit`."""
        req = self._submit_request(txs)
        resp: edge_pb2.SubmitResponse = await self._call("Submit", self._edge.Submit, req, timeout)
        return list(resp.results)

    async def write(self, *recs: records.Record, timeout: Optional[float] = None) -> edge_pb2.SubmitResult:
        """See :meth:`chasqui.Client.write`."""
        return (await self.submit(records.transaction(*recs), timeout=timeout))[0]

    async def start_observation(
        self,
        instrument: str,
        *,
        id: str = "",
        source: str = "",
        obs_unit: str = "",
        attributes: Optional[Mapping[str, Any]] = None,
        start_time: Optional[records.TimeLike] = None,
        timeout: Optional[float] = None,
    ) -> edge_pb2.SubmitResult:
        """See :meth:`chasqui.Client.start_observation`."""
        obs = records.observation(
            instrument, id=id, source=source, obs_unit=obs_unit, start_time=start_time, attributes=attributes
        )
        return await self.write(obs, timeout=timeout)

    async def finish_observation(
        self,
        observation_id: str,
        *,
        status: "ops_pb2.ObservationStatus" = ops_pb2.OBSERVATION_STATUS_COMPLETED,
        end_time: Optional[records.TimeLike] = None,
        attributes: Optional[Mapping[str, Any]] = None,
        timeout: Optional[float] = None,
    ) -> edge_pb2.SubmitResult:
        """See :meth:`chasqui.Client.finish_observation`."""
        upd = records.observation_update(observation_id, status=status, end_time=end_time, attributes=attributes)
        return await self.write(upd, timeout=timeout)

    async def register_raw_file(
        self,
        observation_id: str,
        path: str,
        *,
        size_bytes: int = 0,
        checksum: str = "",
        id: str = "",
        created_at: Optional[records.TimeLike] = None,
        timeout: Optional[float] = None,
    ) -> edge_pb2.SubmitResult:
        """See :meth:`chasqui.Client.register_raw_file`."""
        f = records.raw_data_file(
            observation_id, path, id=id, size_bytes=size_bytes, checksum=checksum, created_at=created_at
        )
        return await self.write(f, timeout=timeout)

    async def record_config(
        self,
        instrument: str,
        config: Mapping[str, Any],
        *,
        observation_id: str = "",
        id: str = "",
        recorded_at: Optional[records.TimeLike] = None,
        timeout: Optional[float] = None,
    ) -> edge_pb2.SubmitResult:
        """See :meth:`chasqui.Client.record_config`."""
        ic = records.instrument_config(
            instrument, config, id=id, observation_id=observation_id, recorded_at=recorded_at
        )
        return await self.write(ic, timeout=timeout)

    # Reads.

    async def get_transaction(
        self, transaction_id: str, *, timeout: Optional[float] = None
    ) -> edge_pb2.TransactionStatus:
        """See :meth:`chasqui.Client.get_transaction`."""
        req = edge_pb2.GetTransactionRequest(transaction_id=transaction_id)
        resp: edge_pb2.GetTransactionResponse = await self._call(
            "GetTransaction", self._edge.GetTransaction, req, timeout
        )
        return resp.transaction

    async def watch(
        self, transaction_ids: Iterable[str] = (), *, after_change: int = 0, timeout: Optional[float] = None
    ) -> AsyncIterator[edge_pb2.WatchTransactionsResponse]:
        """See :meth:`chasqui.Client.watch`."""
        ids = list(transaction_ids)
        after = after_change
        deadline = None if timeout is None else time.monotonic() + timeout
        a = self._attempts("WatchTransactions", None)
        while True:
            _, md = a.begin()
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            req = edge_pb2.WatchTransactionsRequest(transaction_ids=ids, after_change=after)
            call = self._edge.WatchTransactions(req, timeout=left, metadata=md, wait_for_ready=True)
            got = False
            try:
                async for resp in call:
                    got = True
                    after = resp.change
                    yield resp
                return
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and deadline is not None:
                    raise
                if got:
                    a = self._attempts("WatchTransactions", None)
                    a.begin()
                wait = a.failed(err)
                if wait is None:
                    raise
                await asyncio.sleep(wait)
            finally:
                call.cancel()

    async def wait(
        self,
        transaction_id: str,
        state: "edge_pb2.TransactionState" = edge_pb2.TRANSACTION_STATE_COMMITTED,
        *,
        timeout: float = 60.0,
    ) -> edge_pb2.TransactionStatus:
        """See :meth:`chasqui.Client.wait`."""
        gen = self.watch([transaction_id], timeout=timeout)
        try:
            async for resp in gen:
                if reached(resp.transaction, state):
                    return resp.transaction
        finally:
            await gen.aclose()  # type: ignore[attr-defined]
        raise ConnectionError(f"chasqui: the edge ended the watch of {transaction_id}")

    async def get_observation(
        self, observation_id: str, *, timeout: Optional[float] = None
    ) -> edge_pb2.GetObservationResponse:
        """See :meth:`chasqui.Client.get_observation`."""
        req = edge_pb2.GetObservationRequest(id=observation_id)
        return await self._call("GetObservation", self._edge.GetObservation, req, timeout)

    async def list_observations(
        self,
        *,
        instrument: str = "",
        obs_unit: str = "",
        status: "ops_pb2.ObservationStatus" = ops_pb2.OBSERVATION_STATUS_UNSPECIFIED,
        start_after: Optional[records.TimeLike] = None,
        start_before: Optional[records.TimeLike] = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: Optional[float] = None,
    ) -> edge_pb2.ListObservationsResponse:
        """See :meth:`chasqui.Client.list_observations`."""
        req = self._list_request(instrument, obs_unit, status, start_after, start_before, page_size, page_token)
        return await self._call("ListObservations", self._edge.ListObservations, req, timeout)

    async def schema(self, *, timeout: Optional[float] = None) -> edge_pb2.GetSchemaResponse:
        """See :meth:`chasqui.Client.schema`."""
        return await self._call("GetSchema", self._edge.GetSchema, edge_pb2.GetSchemaRequest(), timeout)

    async def get_row(
        self, table: str, key: Mapping[str, Any], *, timeout: Optional[float] = None
    ) -> edge_pb2.GetRowResponse:
        """See :meth:`chasqui.Client.get_row`."""
        req = self._get_row_request(table, key)
        return await self._call("GetRow", self._edge.GetRow, req, timeout)

    async def list_rows(
        self,
        table: str,
        *,
        where: Optional[Mapping[str, Any]] = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: Optional[float] = None,
    ) -> edge_pb2.ListRowsResponse:
        """See :meth:`chasqui.Client.list_rows`."""
        req = self._list_rows_request(table, where, page_size, page_token)
        return await self._call("ListRows", self._edge.ListRows, req, timeout)

    async def status(self, *, timeout: Optional[float] = None) -> edge_pb2.GetStatusResponse:
        """See :meth:`chasqui.Client.status`."""
        return await self._call("GetStatus", self._admin.GetStatus, edge_pb2.GetStatusRequest(), timeout)
