"""The synchronous client. Safe for use from many threads at once: they
share one channel and one retry budget."""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Callable, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import grpc

from . import records
from ._base import _Base, reached
from .policy import RetryPolicy
from .tls import TLSFiles
from .edge.v1 import edge_pb2, edge_pb2_grpc
from .ops.v1 import ops_pb2

__all__ = ["Client"]



class Client(_Base):
    """Writes to and reads from one edge, with the project's retry policy.

    Args:
        target: the edge's "host:port".
        tls: TLS files (the CLI's --tls-ca, --tls-cert, --tls-key); None
            dials plaintext.
        token: the bearer token, where the edge requires one (sent over TLS
            only, unless the edge is on this machine).
        policy: the retry and connection policy. Default :class:`RetryPolicy()`.
        logger: where every attempt is logged. Default ``logging.getLogger("chasqui")``.
        channel_options: extra gRPC channel arguments.
        rand: the backoff's jitter source, uniform in [0, 1).

    The channel connects lazily: creating a client does not wait for the
    edge; each call waits for it, one attempt at a time.

    Every method taking ``timeout`` (seconds) gives up when it passes;
    None allows ``policy.max_attempts`` attempts of ``policy.per_attempt_timeout``
    each. A call that gives up raises the last attempt's :class:`grpc.RpcError`.
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
            self.channel = grpc.secure_channel(target, self._credentials, self._options)
        else:
            self.channel = grpc.insecure_channel(target, self._options)
        self._edge = edge_pb2_grpc.EdgeServiceStub(self.channel)
        self._admin = edge_pb2_grpc.AdminServiceStub(self.channel)

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, fn: Any, request: Any, timeout: Optional[float]) -> Any:
        a = self._attempts(method, timeout)
        while True:
            t, md = a.begin()
            try:
                resp = fn(request, timeout=t, metadata=md, wait_for_ready=True)
            except grpc.RpcError as err:
                wait = a.failed(err)
                if wait is None:
                    raise
                time.sleep(wait)
                continue
            a.succeeded()
            return resp

    # Writes.

    def submit(self, *txs: ops_pb2.Transaction, timeout: Optional[float] = None) -> List[edge_pb2.SubmitResult]:
        """Stores transactions at the edge, each atomically, and returns one
        result per transaction. Empty transaction and record ids are filled
        in (in the messages given) before the first attempt, so retries are
        safe; a repeated transaction is answered with its first answer
        (``duplicate`` set)."""
        req = self._submit_request(txs)
        resp: edge_pb2.SubmitResponse = self._call("Submit", self._edge.Submit, req, timeout)
        return list(resp.results)

    def write(self, *recs: records.Record, timeout: Optional[float] = None) -> edge_pb2.SubmitResult:
        """Stores the records as one transaction (any kinds of Mutation, see
        :mod:`chasqui.records`). The result's record_ids are the records'
        ids in order."""
        return self.submit(records.transaction(*recs), timeout=timeout)[0]

    def start_observation(
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
        """Records an observation as it starts (status RUNNING, start_time
        now unless given). The result's ``record_ids[0]`` is the observation id."""
        obs = records.observation(
            instrument, id=id, source=source, obs_unit=obs_unit, start_time=start_time, attributes=attributes
        )
        return self.write(obs, timeout=timeout)

    def finish_observation(
        self,
        observation_id: str,
        *,
        status: "ops_pb2.ObservationStatus" = ops_pb2.OBSERVATION_STATUS_COMPLETED,
        end_time: Optional[records.TimeLike] = None,
        attributes: Optional[Mapping[str, Any]] = None,
        timeout: Optional[float] = None,
    ) -> edge_pb2.SubmitResult:
        """Records an observation's end (status COMPLETED, end_time now
        unless given); attributes are merged into the observation's."""
        upd = records.observation_update(observation_id, status=status, end_time=end_time, attributes=attributes)
        return self.write(upd, timeout=timeout)

    def register_raw_file(
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
        """Records a raw data file's metadata (created_at now unless given)."""
        f = records.raw_data_file(
            observation_id, path, id=id, size_bytes=size_bytes, checksum=checksum, created_at=created_at
        )
        return self.write(f, timeout=timeout)

    def record_config(
        self,
        instrument: str,
        config: Mapping[str, Any],
        *,
        observation_id: str = "",
        id: str = "",
        recorded_at: Optional[records.TimeLike] = None,
        timeout: Optional[float] = None,
    ) -> edge_pb2.SubmitResult:
        """Records an instrument configuration (recorded_at now unless given)."""
        ic = records.instrument_config(
            instrument, config, id=id, observation_id=observation_id, recorded_at=recorded_at
        )
        return self.write(ic, timeout=timeout)

    # Reads.

    def get_transaction(self, transaction_id: str, *, timeout: Optional[float] = None) -> edge_pb2.TransactionStatus:
        """How far a transaction has come. Raises :class:`grpc.RpcError`
        NOT_FOUND when the edge does not know it."""
        req = edge_pb2.GetTransactionRequest(transaction_id=transaction_id)
        resp: edge_pb2.GetTransactionResponse = self._call("GetTransaction", self._edge.GetTransaction, req, timeout)
        return resp.transaction

    def watch(
        self, transaction_ids: Iterable[str] = (), *, after_change: int = 0, timeout: Optional[float] = None
    ) -> Iterator[edge_pb2.WatchTransactionsResponse]:
        """Streams state changes of the transactions (all when none given):
        accepted, committed at central (with its LSN), visible in the site
        replica, or rejected. With after_change 0 the current state of each
        comes first. A broken stream is reopened after the last change seen
        (attempts and retry budget as for calls; attempts count afresh once
        a change arrives), so nothing is missed. Ends when the edge ends the
        stream; raises DEADLINE_EXCEEDED when timeout passes. Closing the
        iterator cancels the stream."""
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
                for resp in call:
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
                time.sleep(wait)
            finally:
                call.cancel()

    def wait(
        self,
        transaction_id: str,
        state: "edge_pb2.TransactionState" = edge_pb2.TRANSACTION_STATE_COMMITTED,
        *,
        timeout: float = 60.0,
    ) -> edge_pb2.TransactionStatus:
        """Waits until the transaction has reached state (COMMITTED: in
        PostgreSQL at central; VISIBLE: readable in the site replica) and
        returns its status.

        Raises:
            TransactionRejected: central refused it.
            grpc.RpcError: DEADLINE_EXCEEDED when timeout passes first.
            ConnectionError: the edge ended the stream (it is stopping).
        """
        for resp in self.watch([transaction_id], timeout=timeout):
            if reached(resp.transaction, state):
                return resp.transaction
        raise ConnectionError(f"chasqui: the edge ended the watch of {transaction_id}")

    def get_observation(self, observation_id: str, *, timeout: Optional[float] = None) -> edge_pb2.GetObservationResponse:
        """One observation with its files and configs, merged from the
        edge's buffer (records not yet at central) and the site replica;
        ``observation.source`` says where it was read."""
        req = edge_pb2.GetObservationRequest(id=observation_id)
        return self._call("GetObservation", self._edge.GetObservation, req, timeout)

    def list_observations(
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
        """One page of observations, merged from the buffer and the replica
        (buffered records included: an instrument reads what it just wrote)."""
        req = self._list_request(instrument, obs_unit, status, start_after, start_before, page_size, page_token)
        return self._call("ListObservations", self._edge.ListObservations, req, timeout)

    def schema(self, *, timeout: Optional[float] = None) -> edge_pb2.GetSchemaResponse:
        """The tables the edge takes rows for, with their columns, types and
        keys, as it last learned them from central (``learned_at``).
        ``schema`` is unset when it never did: rows are then accepted after
        a shape check only, and a wrong one ends as a dead letter."""
        return self._call("GetSchema", self._edge.GetSchema, edge_pb2.GetSchemaRequest(), timeout)

    def get_row(
        self, table: str, key: Mapping[str, Any], *, timeout: Optional[float] = None
    ) -> edge_pb2.GetRowResponse:
        """One row of table by its primary key (column -> value), merged
        from the edge's buffer (writes not yet at central) and the site
        replica; ``row.source`` says where it was read, ``row.values`` holds
        it (:func:`chasqui.records.row_values` makes it a dict). Raises
        :class:`grpc.RpcError` NOT_FOUND when there is no such row."""
        req = self._get_row_request(table, key)
        return self._call("GetRow", self._edge.GetRow, req, timeout)

    def list_rows(
        self,
        table: str,
        *,
        where: Optional[Mapping[str, Any]] = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: Optional[float] = None,
    ) -> edge_pb2.ListRowsResponse:
        """One page of rows of table in primary key order, those equal to
        where on each of its columns, merged from the buffer and the replica
        (buffered writes included). Pass ``next_page_token`` for the next
        page; it is empty on the last."""
        req = self._list_rows_request(table, where, page_size, page_token)
        return self._call("ListRows", self._edge.ListRows, req, timeout)

    def status(self, *, timeout: Optional[float] = None) -> edge_pb2.GetStatusResponse:
        """The edge's status (AdminService.GetStatus)."""
        return self._call("GetStatus", self._admin.GetStatus, edge_pb2.GetStatusRequest(), timeout)


