"""ledger/bulk.py: many rows per INSERT, in the order given (the order of entry the rules use)."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payalloc.ledger import bulk
from tests.builders import add_client

HEAD = "INSERT INTO t (k, n, note)"
cells = st.tuples(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), st.none() | st.text(max_size=3))


def table() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL, n INTEGER NOT NULL, note TEXT) STRICT")
    return conn


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(cells, max_size=2 * bulk.ROWS_PER_STATEMENT + 7), step=st.sampled_from([1, 3, 250]))
def test_rows_are_inserted_exactly_once_in_the_order_given(rows: list[tuple[str, int, str | None]], step: int) -> None:
    conn = table()
    bulk.insert_rows(conn, HEAD, 3, rows, step=step)  # full statements, a tail, or both
    assert conn.execute("SELECT k, n, note FROM t ORDER BY id").fetchall() == rows
    assert conn.execute("SELECT count(*), coalesce(max(id), 0) FROM t").fetchone() == (len(rows), len(rows))


def test_a_refused_row_refuses_its_whole_statement(conn: sqlite3.Connection) -> None:
    """Rows of a statement go in together or not at all: a duplicate key in the middle of the first
    statement leaves none of its rows, even before the transaction rolls back (the import's
    savepoint then drops the rest of the batch)."""
    add_client(conn, "C1")
    rows = [(f"K{i}", "name", None) for i in range(bulk.ROWS_PER_STATEMENT + 5)]
    rows[100] = ("C1", "again", None)  # inside the first 250-row statement
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        bulk.insert_rows(conn, "INSERT INTO clients (client_key, name, responsible_party)", 3, rows)
    assert conn.in_transaction  # still open: what it holds is what the failed statement left
    assert conn.execute("SELECT client_key FROM clients").fetchall() == [("C1",)]
    conn.execute("ROLLBACK")
