"""The throttle's state in Postgres (the deployed mode): the SQLite tables of `_throttle` in schema `sales_channel`,
decided under row locks.

A decision locks the bucket row (`SELECT ... FOR UPDATE`, created first when missing) and, when caps are on, the
seller's window owners' rows in `throttle_locks`; a feed submission locks its seller × feed type's row. Window rows of
a slot not yet used cannot be locked, so the owner's row stands for all of them. Nothing takes a table lock: decisions
for different sellers never wait for each other. Read Committed is enough: every statement after a lock sees what the
lock's previous holder committed.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extensions

from resources.postgres import SCHEMA, StateUnavailable, connect, ensure_schema, scrub
from resources.state import redact_dsn

__all__ = ["PostgresStore"]

_TABLES = {
    "buckets": "throttle_buckets",
    "windows": "throttle_windows",
    "feed_submissions": "throttle_feed_submissions",
}
_TABLE_REF = re.compile(r"\b(FROM|INTO|UPDATE) (buckets|windows|feed_submissions)\b")


def _translate(sql: str) -> str:
    """`_throttle`'s SQL (SQLite's `?` placeholders, bare table names) for psycopg2 and schema `sales_channel` (each
    table aliased to its bare name, which the SQL may use to qualify a column)."""
    sql = _TABLE_REF.sub(lambda m: f"{m.group(1)} {SCHEMA}.{_TABLES[m.group(2)]} AS {m.group(2)}", sql)
    return sql.replace("?", "%s")


class _PgTx:
    """One transaction on an autocommit connection, in as few round trips as its reads allow: `BEGIN` and the writes
    (whose results the throttle never reads) wait and go out with the next read or with the `COMMIT`."""

    def __init__(self, cur: psycopg2.extensions.cursor) -> None:
        self._cur = cur
        self._pending: list[str] = ["BEGIN"]
        self.begun = False

    def _send(self, sql: str, params: Sequence[Any] = ()) -> psycopg2.extensions.cursor:
        statement = self._cur.mogrify(sql, tuple(params)).decode() if params else sql
        batch, self._pending = [*self._pending, statement], []
        self.begun = True
        self._cur.execute(";\n".join(batch))
        return self._cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg2.extensions.cursor:
        sql = _translate(sql)
        if sql.lstrip().upper().startswith("SELECT"):
            return self._send(sql, params)
        self._pending.append(self._cur.mogrify(sql, tuple(params)).decode())
        return self._cur

    def commit(self) -> None:
        if self.begun or len(self._pending) > 1:
            self._send("COMMIT")

    def bucket(self, seller: str, operation: str, initial: Callable[[], tuple[Any, ...]] | None) -> Any:
        select = (
            f"SELECT tokens, updated, rate, default_rate, burst FROM {SCHEMA}.throttle_buckets "
            "WHERE seller=%s AND operation=%s FOR UPDATE"
        )
        row = self._send(select, (seller, operation)).fetchone()
        if row is None and initial is not None:
            # The first decision for this bucket: create it as a fresh one would be computed, then lock it (another
            # process may have created it in between: then its row is the one to use).
            self._pending.append(
                self._cur.mogrify(
                    f"INSERT INTO {SCHEMA}.throttle_buckets(seller, operation, tokens, updated, rate, default_rate, "
                    "burst) VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (seller, operation) DO NOTHING",
                    (seller, operation, *initial()),
                ).decode()
            )
            row = self._send(select, (seller, operation)).fetchone()
        return row

    def lock(self, name: str) -> None:
        select = f"SELECT 1 FROM {SCHEMA}.throttle_locks WHERE name=%s FOR UPDATE"
        if self._send(select, (name,)).fetchone() is None:
            self._pending.append(
                self._cur.mogrify(
                    f"INSERT INTO {SCHEMA}.throttle_locks(name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (name,)
                ).decode()
            )
            self._send(select, (name,))


class PostgresStore:
    """The throttle's tables in Postgres, one connection per thread (and per process: a fork reconnects)."""

    def __init__(self, dsn: str, ddl: str) -> None:
        self._dsn = dsn
        self._local = threading.local()
        objects = [f"{SCHEMA}.{table}" for table in (*_TABLES.values(), "throttle_locks")]
        objects.append(f"{SCHEMA}.throttle_feed_submissions_by_owner")
        with self._failures():
            ensure_schema(self._connect(), ddl.format(schema=SCHEMA), objects)

    def describe(self) -> str:
        return repr(redact_dsn(self._dsn))

    def _connect(self) -> psycopg2.extensions.connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed and getattr(self._local, "pid", None) == os.getpid():
            return conn
        conn = connect(self._dsn, application_name="sales-channel throttle")
        conn.autocommit = True  # transactions are explicit (`_PgTx`); a single statement is its own
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextmanager
    def _failures(self) -> Iterator[None]:
        """A statement Postgres refused or a lost connection, as `StateUnavailable` without the DSN's password."""
        try:
            yield
        except psycopg2.Error as exc:
            raise StateUnavailable(
                f"throttle state in {redact_dsn(self._dsn)}: {scrub(str(exc).strip(), self._dsn)}"
            ) from None

    @contextmanager
    def transaction(self) -> Iterator[_PgTx]:
        """One short transaction on this thread's connection: committed when the block ends, rolled back when it
        raises (the row locks go with either)."""
        conn = self._connect()
        with self._failures(), conn.cursor() as cur:
            tx = _PgTx(cur)
            try:
                yield tx
            except BaseException:
                if tx.begun and not conn.closed:
                    cur.execute("ROLLBACK")
                raise
            tx.commit()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg2.extensions.cursor:
        """One statement, a transaction of its own."""
        conn = self._connect()
        with self._failures():
            cur = conn.cursor()
            cur.execute(_translate(sql), tuple(params))
        return cur

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
