from chasqui.ops.v1 import ops_pb2 as _ops_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
OUTCOME_APPLIED: Outcome
OUTCOME_REJECTED: Outcome
OUTCOME_UNSPECIFIED: Outcome

class CommitRequest(_message.Message):
    __slots__ = ["edge_id", "epoch", "first_seq", "transactions", "withdraw_reason"]
    EDGE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    WITHDRAW_REASON_FIELD_NUMBER: _ClassVar[int]
    edge_id: str
    epoch: str
    first_seq: int
    transactions: _containers.RepeatedCompositeFieldContainer[_ops_pb2.Transaction]
    withdraw_reason: str
    def __init__(self, edge_id: _Optional[str] = ..., epoch: _Optional[str] = ..., first_seq: _Optional[int] = ..., transactions: _Optional[_Iterable[_Union[_ops_pb2.Transaction, _Mapping]]] = ..., withdraw_reason: _Optional[str] = ...) -> None: ...

class CommitResponse(_message.Message):
    __slots__ = ["commit_lsn", "commit_lsn_value", "committed_through_seq", "results"]
    COMMITTED_THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    COMMIT_LSN_FIELD_NUMBER: _ClassVar[int]
    COMMIT_LSN_VALUE_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    commit_lsn: str
    commit_lsn_value: int
    committed_through_seq: int
    results: _containers.RepeatedCompositeFieldContainer[TransactionResult]
    def __init__(self, committed_through_seq: _Optional[int] = ..., commit_lsn: _Optional[str] = ..., commit_lsn_value: _Optional[int] = ..., results: _Optional[_Iterable[_Union[TransactionResult, _Mapping]]] = ...) -> None: ...

class CursorConflict(_message.Message):
    __slots__ = ["applied_transaction_id", "cursor_seq", "epoch", "request_transaction_id", "seq"]
    APPLIED_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    CURSOR_SEQ_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    applied_transaction_id: str
    cursor_seq: int
    epoch: str
    request_transaction_id: str
    seq: int
    def __init__(self, seq: _Optional[int] = ..., applied_transaction_id: _Optional[str] = ..., request_transaction_id: _Optional[str] = ..., epoch: _Optional[str] = ..., cursor_seq: _Optional[int] = ...) -> None: ...

class GetCursorRequest(_message.Message):
    __slots__ = ["edge_id"]
    EDGE_ID_FIELD_NUMBER: _ClassVar[int]
    edge_id: str
    def __init__(self, edge_id: _Optional[str] = ...) -> None: ...

class GetCursorResponse(_message.Message):
    __slots__ = ["edge_id", "epoch", "last_seq"]
    EDGE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    edge_id: str
    epoch: str
    last_seq: int
    def __init__(self, edge_id: _Optional[str] = ..., epoch: _Optional[str] = ..., last_seq: _Optional[int] = ...) -> None: ...

class GetSchemaRequest(_message.Message):
    __slots__ = ["edge_id", "known_version"]
    EDGE_ID_FIELD_NUMBER: _ClassVar[int]
    KNOWN_VERSION_FIELD_NUMBER: _ClassVar[int]
    edge_id: str
    known_version: str
    def __init__(self, edge_id: _Optional[str] = ..., known_version: _Optional[str] = ...) -> None: ...

class GetSchemaResponse(_message.Message):
    __slots__ = ["schema", "unchanged"]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    schema: _ops_pb2.Schema
    unchanged: bool
    def __init__(self, schema: _Optional[_Union[_ops_pb2.Schema, _Mapping]] = ..., unchanged: bool = ...) -> None: ...

class SequenceGap(_message.Message):
    __slots__ = ["expected_seq"]
    EXPECTED_SEQ_FIELD_NUMBER: _ClassVar[int]
    expected_seq: int
    def __init__(self, expected_seq: _Optional[int] = ...) -> None: ...

class TransactionResult(_message.Message):
    __slots__ = ["duplicate", "outcome", "reason", "seq", "sqlstate", "transaction_id"]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SQLSTATE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    duplicate: bool
    outcome: Outcome
    reason: str
    seq: int
    sqlstate: str
    transaction_id: str
    def __init__(self, transaction_id: _Optional[str] = ..., seq: _Optional[int] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., reason: _Optional[str] = ..., sqlstate: _Optional[str] = ..., duplicate: bool = ...) -> None: ...

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
