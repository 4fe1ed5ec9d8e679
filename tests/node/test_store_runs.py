"""A transaction runs each run of one SQL text as one call (node/store/database.py): the database must end as it
would with every statement run on its own, in order, whatever the mix of single and many-row statements."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

from hypothesis import given, settings, strategies as st

from node.store.database import _run_transaction, _runs

SCHEMA = "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT); CREATE TABLE log (n INTEGER PRIMARY KEY AUTOINCREMENT, k INTEGER, v TEXT)"
PUT = "INSERT OR REPLACE INTO t (k, v) VALUES (?, ?)"
LOG = "INSERT INTO log (k, v) VALUES (?, (SELECT v FROM t WHERE k = ?))"  # reads what the statements before wrote
DROP = "DELETE FROM t WHERE k = ?"

one = st.sampled_from([PUT, LOG, DROP]).flatmap(lambda sql: st.tuples(
    st.just(sql), st.integers(0, 5), st.text(max_size=3), st.booleans(), st.integers(0, 3)))


def statement(sql: str, k: int, v: str, many: bool, count: int) -> tuple[str, Any, bool]:
    params = (k, v) if sql == PUT else (k, k) if sql == LOG else (k,)
    return (sql, [params] * count, True) if many else (sql, params, False)


def state(db: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
    return db.execute("SELECT * FROM t ORDER BY k").fetchall(), db.execute("SELECT * FROM log ORDER BY n").fetchall()


@settings(max_examples=200, deadline=None)
@given(st.lists(one, max_size=30))
def test_runs_end_as_one_statement_at_a_time(drawn: list[tuple[str, int, str, bool, int]]) -> None:
    statements = [statement(*d) for d in drawn]
    with closing(sqlite3.connect(":memory:", isolation_level=None)) as grouped, \
            closing(sqlite3.connect(":memory:", isolation_level=None)) as alone:
        for db in (grouped, alone):
            db.executescript(SCHEMA)
        _run_transaction(grouped, statements)
        for sql, params, many in statements:
            if many:
                alone.executemany(sql, params)
            else:
                alone.execute(sql, params)
        assert state(grouped) == state(alone)


def test_a_run_is_one_sql_text_in_a_row() -> None:
    statements = [(PUT, (1, "a"), False), (PUT, [(2, "b"), (3, "c")], True), (DROP, (1,), False), (PUT, (4, "d"), False),
                  (PUT, [], True), (LOG, (4, 4), False)]
    assert list(_runs(statements)) == [(PUT, [(1, "a"), (2, "b"), (3, "c")]), (DROP, [(1,)]), (PUT, [(4, "d")]),
                                       (LOG, [(4, 4)])]
