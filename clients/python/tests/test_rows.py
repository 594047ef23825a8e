"""Rows of the site's own tables (the ops schema of examples/ops-schema.sql,
which the Go driver's stack holds and central may write) through the real
edge, central and PostgreSQL, with the sync and the asyncio client."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import grpc
import pytest

import chasqui
from chasqui import edge_pb2, ops_pb2
from conftest import eventually

COMMIT_TIMEOUT = 120.0  # a loaded 2-core machine commits in seconds; be generous
UNIT = "ops.observation_unit"
PACKAGE = "ops.raw_data_package"
BIG = 2**53 + 1  # a JSON number cannot hold it: it must travel as a string


def tag(name: str) -> str:
    """A unique unit name, so PostgreSQL rows of one test can be found."""
    return f"py-{name}-{uuid.uuid4().hex[:12]}"


def learned(c, table: str) -> bool:
    return any(t.name == table for t in c.schema().schema.tables)


def committed(st: edge_pb2.TransactionStatus) -> bool:
    return st.state in (edge_pb2.TRANSACTION_STATE_COMMITTED, edge_pb2.TRANSACTION_STATE_VISIBLE)


def test_row_helpers_convert_python_values():
    r = chasqui.upsert_row(UNIT, {
        "id": uuid.UUID(int=7), "pwv_mm": Decimal("0.420"), "big": BIG, "small": 42, "blob": b"\x00\xff",
        "at": dt.datetime(2026, 11, 23, 3, 12, 45), "tags": ("a", "b"), "doc": {"k": [1]}, "none": None,
    })
    assert r.table == UNIT and r.op == ops_pb2.ROW_OP_UPSERT
    v = chasqui.row_values(r.values)
    assert v["id"] == "00000000-0000-0000-0000-000000000007"
    assert v["pwv_mm"] == "0.420", "exact numerics travel as strings"
    assert v["big"] == str(BIG) and v["small"] == 42
    assert v["blob"] == "AP8=", "bytea as standard base64"
    assert v["at"] == "2026-11-23T03:12:45+00:00", "a naive datetime is UTC"
    assert v["tags"] == ["a", "b"] and v["doc"] == {"k": [1]} and v["none"] is None
    assert chasqui.delete_row(UNIT, {"id": "x"}).op == ops_pb2.ROW_OP_DELETE
    assert chasqui.row(UNIT, {"id": "x"}, op="UPDATE").op == ops_pb2.ROW_OP_UPDATE
    with pytest.raises(ValueError):
        chasqui.row(UNIT, {"id": "x"}, op="merge")
    with pytest.raises(ValueError):
        chasqui.insert_row(UNIT, {})
    with pytest.raises(TypeError):
        chasqui.insert_row(UNIT, {"id": object()})


def write_unit(c, name: str):
    """A unit and its package (parent then child, one transaction), then
    the unit's update; returns the unit id, the package id and the update's
    status once committed."""
    unit_id, pkg_id = chasqui.uuid7_str(), chasqui.uuid7_str()
    started = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    first = c.write(
        chasqui.insert_row(UNIT, {
            "id": unit_id, "name": name, "instrument": "PYTEST", "status": "RUNNING", "started_at": started,
            "pwv_mm": Decimal("0.420"), "tags": ["science", "py"], "parameters": {"source": "Orion-KL"},
        }),
        chasqui.insert_row(PACKAGE, {"id": pkg_id, "unit_id": unit_id, "path": "/data/py/0001.tar", "size_bytes": BIG}),
    )
    assert first.transaction_id and not first.duplicate
    done = c.write(chasqui.update_row(UNIT, {"id": unit_id, "status": "COMPLETED", "ended_at": dt.datetime.now(dt.timezone.utc)}))
    return unit_id, pkg_id, c.wait(done.transaction_id, timeout=COMMIT_TIMEOUT)


def test_rows_written(stack, driver):
    c = driver.client(stack.edge)
    eventually(lambda: learned(c, UNIT) and learned(c, PACKAGE), COMMIT_TIMEOUT, "the edge learns the ops schema")
    schema = {t.name: t for t in c.schema().schema.tables}
    status = next(col for col in schema[UNIT].columns if col.name == "status")
    assert status.kind == ops_pb2.VALUE_KIND_ENUM and "COMPLETED" in status.enum_labels
    assert list(schema[UNIT].primary_key) == ["id"]

    name = tag("rows")
    _, pkg_id, st = write_unit(c, name)
    assert committed(st) and st.commit_lsn, "a committed transaction carries its PostgreSQL LSN"
    assert stack.ctl.units(name) == ["COMPLETED"], "one row, updated after its insert"
    assert stack.ctl.packages(name) == [str(BIG)], "a bigint past 2**53 exact"

    gone = c.write(chasqui.delete_row(PACKAGE, {"id": pkg_id}))
    c.wait(gone.transaction_id, timeout=COMMIT_TIMEOUT)
    assert stack.ctl.packages(name) == []


def test_row_of_unknown_column_refused(stack, driver):
    c = driver.client(stack.edge)
    eventually(lambda: learned(c, UNIT), COMMIT_TIMEOUT, "the edge learns the ops schema")
    with pytest.raises(grpc.RpcError) as e:
        c.write(chasqui.insert_row(UNIT, {"id": chasqui.uuid7_str(), "name": "x", "instrument": "PY", "no_such_column": 1}))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no_such_column" in e.value.details()


@pytest.fixture
def wan_healed(stack):
    """Brings the edge's link to central back up whatever the test did."""
    yield
    stack.ctl.post("/wan/up")


def test_rows_read_back(stack, driver, wan_healed):
    c = driver.client(stack.edge)
    eventually(lambda: learned(c, UNIT) and learned(c, PACKAGE), COMMIT_TIMEOUT, "the edge learns the ops schema")
    name = tag("read")
    unit_id, pkg_id, st = write_unit(c, name)
    assert committed(st)

    v = chasqui.row_values(c.get_row(UNIT, {"id": unit_id}).row.values)
    assert v["name"] == name and v["status"] == "COMPLETED" and v["tags"] == ["science", "py"]
    assert Decimal(str(v["pwv_mm"])) == Decimal("0.420")
    page = c.list_rows(PACKAGE, where={"unit_id": unit_id}, page_size=10)
    assert [chasqui.row_values(r.values)["id"] for r in page.rows] == [pkg_id]
    assert int(chasqui.row_values(page.rows[0].values)["size_bytes"]) == BIG, "exact past 2**53"

    # Read your writes: an update buffered at the edge (its link to central
    # down) merges over the committed row.
    stack.ctl.post("/wan/down")
    pending = c.write(chasqui.update_row(UNIT, {"id": unit_id, "status": "FAILED"}))
    got = c.get_row(UNIT, {"id": unit_id}).row
    assert got.source == edge_pb2.RECORD_SOURCE_BUFFERED
    v = chasqui.row_values(got.values)
    assert v["status"] == "FAILED" and v["name"] == name, "the buffered column over the committed row"
    stack.ctl.post("/wan/up")
    c.wait(pending.transaction_id, timeout=COMMIT_TIMEOUT)
    assert stack.ctl.units(name) == ["FAILED"]

    with pytest.raises(grpc.RpcError) as e:
        c.get_row(UNIT, {"id": chasqui.uuid7_str()})
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
