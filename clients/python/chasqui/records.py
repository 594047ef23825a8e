"""Building the records an instrument writes, and making every call safe to
retry: transaction ids and empty record ids are filled in here, before the
first attempt, so a retried Submit is answered with its first answer and
never stores anything twice.

A record is any message that is one of the kinds of
:class:`chasqui.ops.v1.ops_pb2.Mutation` (today Observation,
ObservationUpdate, InstrumentConfig and RawDataFile). The kinds are read
from the Mutation descriptor, not listed here, so a kind added to the proto
(rows of any table, for one) is written with :func:`transaction` and
``Client.write`` as soon as the stubs are regenerated, with no change here.
"""

from __future__ import annotations

import base64 as _base64
import datetime as _dt
import decimal as _decimal
import uuid as _uuid
from typing import Any, Dict, Mapping, Optional, TypeAlias, Union

from google.protobuf import json_format as _json_format
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from .ops.v1 import ops_pb2
from .uuid7 import uuid7_str

__all__ = [
    "Record",
    "TimeLike",
    "mutation",
    "transaction",
    "fill_ids",
    "observation",
    "observation_update",
    "raw_data_file",
    "instrument_config",
    "RowOpLike",
    "row",
    "insert_row",
    "upsert_row",
    "update_row",
    "delete_row",
    "row_values",
]

#: A record: a message that is one of the kinds of Mutation, or a Mutation.
Record: TypeAlias = Message
#: A point in time: an aware datetime (naive ones are taken as UTC) or a Timestamp.
TimeLike = Union[_dt.datetime, Timestamp]

# Mutation's oneof "kind": message full name -> field name.
_KINDS: Dict[str, str] = {
    f.message_type.full_name: f.name
    for f in ops_pb2.Mutation.DESCRIPTOR.oneofs_by_name["kind"].fields
    if f.message_type is not None
}


def _timestamp(t: Optional[TimeLike]) -> Timestamp:
    ts = Timestamp()
    if t is None:
        ts.GetCurrentTime()
    elif isinstance(t, Timestamp):
        ts.CopyFrom(t)
    else:
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.timezone.utc)
        ts.FromDatetime(t.astimezone(_dt.timezone.utc).replace(tzinfo=None))
    return ts


def _struct(d: Optional[Mapping[str, Any]]) -> Optional[Struct]:
    if d is None:
        return None
    s = Struct()
    s.update(d)
    return s


def mutation(record: Record) -> ops_pb2.Mutation:
    """Wraps a record in a Mutation (a Mutation is returned as it is).

    Raises:
        TypeError: the message is not a kind of Mutation.
    """
    if isinstance(record, ops_pb2.Mutation):
        return record
    name = _KINDS.get(record.DESCRIPTOR.full_name)
    if name is None:
        raise TypeError(
            f"chasqui: {record.DESCRIPTOR.full_name} is not a kind of chasqui.ops.v1.Mutation "
            f"(kinds: {', '.join(sorted(_KINDS))})"
        )
    m = ops_pb2.Mutation()
    getattr(m, name).CopyFrom(record)
    return m


def transaction(*records: Record, id: str = "") -> ops_pb2.Transaction:
    """One transaction of the records, applied at central all or nothing.
    Its id (a new UUIDv7 unless given) and empty record ids are filled in."""
    if not records:
        raise ValueError("chasqui: a transaction needs at least one record")
    tx = ops_pb2.Transaction(id=id, mutations=[mutation(r) for r in records])
    fill_ids(tx)
    return tx


def fill_ids(tx: ops_pb2.Transaction) -> ops_pb2.Transaction:
    """Gives the transaction and each new record an id where it has none
    (an ObservationUpdate names an existing observation: its id is the
    caller's). Done once, before the first attempt, so retries are safe."""
    if not tx.id:
        tx.id = uuid7_str()
    for m in tx.mutations:
        kind = m.WhichOneof("kind")
        if kind is None or kind == "observation_update":
            continue
        rec = getattr(m, kind)
        if "id" in rec.DESCRIPTOR.fields_by_name and not rec.id:
            rec.id = uuid7_str()
    return tx


def observation(
    instrument: str,
    *,
    id: str = "",
    source: str = "",
    obs_unit: str = "",
    status: "ops_pb2.ObservationStatus" = ops_pb2.OBSERVATION_STATUS_RUNNING,
    start_time: Optional[TimeLike] = None,
    attributes: Optional[Mapping[str, Any]] = None,
) -> ops_pb2.Observation:
    """An observation as it starts: status RUNNING and start_time now unless given."""
    return ops_pb2.Observation(
        id=id,
        instrument=instrument,
        source=source,
        obs_unit=obs_unit,
        status=status,
        start_time=_timestamp(start_time),
        attributes=_struct(attributes),
    )


def observation_update(
    observation_id: str,
    *,
    status: "ops_pb2.ObservationStatus" = ops_pb2.OBSERVATION_STATUS_COMPLETED,
    end_time: Optional[TimeLike] = None,
    attributes: Optional[Mapping[str, Any]] = None,
) -> ops_pb2.ObservationUpdate:
    """An observation's end: status COMPLETED and end_time now unless given;
    attributes are merged into the observation's."""
    if not observation_id:
        raise ValueError("chasqui: finishing an observation needs its id")
    return ops_pb2.ObservationUpdate(
        id=observation_id, status=status, end_time=_timestamp(end_time), attributes=_struct(attributes)
    )


def raw_data_file(
    observation_id: str,
    path: str,
    *,
    id: str = "",
    size_bytes: int = 0,
    checksum: str = "",
    created_at: Optional[TimeLike] = None,
) -> ops_pb2.RawDataFile:
    """A raw data file's metadata (created_at now unless given)."""
    return ops_pb2.RawDataFile(
        id=id,
        observation_id=observation_id,
        path=path,
        size_bytes=size_bytes,
        checksum=checksum,
        created_at=_timestamp(created_at),
    )


def instrument_config(
    instrument: str,
    config: Mapping[str, Any],
    *,
    id: str = "",
    observation_id: str = "",
    recorded_at: Optional[TimeLike] = None,
) -> ops_pb2.InstrumentConfig:
    """An instrument configuration (recorded_at now unless given)."""
    return ops_pb2.InstrumentConfig(
        id=id,
        instrument=instrument,
        observation_id=observation_id,
        recorded_at=_timestamp(recorded_at),
        config=_struct(config),
    )


# Rows of any table central allows (the site's own tables).

#: A row op: the enum value, or its name without the prefix ("insert",
#: "upsert", "update", "delete", any case).
RowOpLike = Union["ops_pb2.RowOp", int, str]

# Integers past this lose digits as a JSON number (a double): they travel
# as strings, which PostgreSQL's integer input parses exactly.
_MAX_EXACT_INT = 2**53


def _row_op(op: RowOpLike) -> int:
    if isinstance(op, str):
        name = op.upper()
        if not name.startswith("ROW_OP_"):
            name = "ROW_OP_" + name
        try:
            return ops_pb2.RowOp.Value(name)
        except ValueError:
            raise ValueError(f"chasqui: row op {op!r}: want insert, upsert, update or delete") from None
    return int(op)


def _row_value(v: Any) -> Any:
    """A Python value in the shape Row.values carries it (see Row in
    ops.proto): exact numbers and big integers as strings, bytes as
    base64, times as ISO 8601, lists element by element; dicts (json,
    jsonb) as they are."""
    if v is None or isinstance(v, (bool, str, float, dict)):
        return v
    if isinstance(v, int):
        return v if abs(v) < _MAX_EXACT_INT else str(v)
    if isinstance(v, _decimal.Decimal):
        return str(v)
    if isinstance(v, _dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=_dt.timezone.utc)
        return v.isoformat()
    if isinstance(v, (_dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, _uuid.UUID):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, (list, tuple)):
        return [_row_value(e) for e in v]
    if isinstance(v, Mapping):
        return dict(v)
    raise TypeError(f"chasqui: a row value of type {type(v).__name__} has no JSON-like form")


def row(table: str, values: Mapping[str, Any], *, op: RowOpLike = "insert") -> ops_pb2.Row:
    """A change to one row of a table central allows ("schema.table").

    values maps column names to values and must hold the table's primary
    key, chosen before the first attempt (for example
    :func:`chasqui.uuid7_str`) so a retry never writes the row twice.
    INSERT and UPSERT carry the whole row (columns left out take their
    defaults), UPDATE the key and the changed columns, DELETE the key only.
    Python values are converted to the shapes the edge expects: ints past
    2**53 and Decimals as strings (exact), bytes as base64, datetimes
    (naive taken as UTC), dates and UUIDs as strings, lists and tuples for
    arrays, dicts for json/jsonb; None is SQL NULL.
    """
    if not table:
        raise ValueError("chasqui: a row needs its table (schema.table)")
    if not values:
        raise ValueError(f"chasqui: a row of {table} needs values (at least its primary key)")
    s = Struct()
    s.update({str(k): _row_value(v) for k, v in values.items()})
    return ops_pb2.Row(table=table, op=_row_op(op), values=s)


def insert_row(table: str, values: Mapping[str, Any]) -> ops_pb2.Row:
    """INSERT: a row with the same key already there is a rejection."""
    return row(table, values, op="insert")


def upsert_row(table: str, values: Mapping[str, Any]) -> ops_pb2.Row:
    """UPSERT: inserts the row, or sets the given columns of the row with its key."""
    return row(table, values, op="upsert")


def update_row(table: str, values: Mapping[str, Any]) -> ops_pb2.Row:
    """UPDATE: values hold the key and the changed columns; no such row is a rejection."""
    return row(table, values, op="update")


def delete_row(table: str, key: Mapping[str, Any]) -> ops_pb2.Row:
    """DELETE of the row with key (the primary key's columns only)."""
    return row(table, key, op="delete")


def row_values(values: Struct) -> Dict[str, Any]:
    """A row's values as read back (RowView.values, ListRowsResponse rows)
    as a plain dict: numbers (as floats), strings, bools, None, lists and dicts."""
    return _json_format.MessageToDict(values)
