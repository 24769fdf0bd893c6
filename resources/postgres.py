"""Postgres for the deployed mode's coordination state (`resources.state`): connections whose errors never show the
DSN's password, the schema created once however many processes start at the same time, and session advisory locks.

Everything lives in schema `SCHEMA` (`sales_channel`). Creating it races when two processes start together
(`CREATE ... IF NOT EXISTS` is not atomic in Postgres: the loser of the race gets a unique violation), so the DDL
runs under one transaction-level advisory lock, and is skipped once its objects exist: even `IF NOT EXISTS` takes
table locks that a running decision would wait for.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from resources.state import SCHEMA, redact_dsn

__all__ = ["SCHEMA", "StateUnavailable", "advisory_key", "advisory_lock", "connect", "ensure_schema"]


class StateUnavailable(RuntimeError):
    """The coordination database could not be reached or refused a statement (the message never shows a password)."""


def _passwords(dsn: str) -> list[str]:
    """The DSN's password as written and decoded (longest first), or nothing."""
    try:
        password = urlsplit(dsn).password
    except ValueError:
        return []
    return sorted({password, unquote(password)}, key=len, reverse=True) if password else []


def scrub(text: str, dsn: str) -> str:
    """`text` (an error message) without `dsn`'s password, whatever form it appears in."""
    for password in _passwords(dsn):
        text = text.replace(password, "***")
    return redact_dsn(text)


def connect(dsn: str, application_name: str = "sales-channel") -> psycopg2.extensions.connection:
    """A new connection (not in autocommit: every block is a transaction the caller commits or rolls back)."""
    try:
        return psycopg2.connect(dsn, application_name=application_name)
    except psycopg2.Error as exc:
        raise StateUnavailable(
            f"cannot connect to the coordination database {redact_dsn(dsn)}: {scrub(str(exc).strip(), dsn)}"
        ) from None


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (Postgres advisory locks take a bigint), the same in every process."""
    return int.from_bytes(hashlib.sha256(f"{SCHEMA}:{name}".encode()).digest()[:8], "big", signed=True)


# What `CREATE ... IF NOT EXISTS` raises when another transaction created the same object in the meantime.
_RACED = (
    psycopg2.errors.UniqueViolation,
    psycopg2.errors.DuplicateObject,
    psycopg2.errors.DuplicateSchema,
    psycopg2.errors.DuplicateTable,
)


def ensure_schema(conn: psycopg2.extensions.connection, ddl: str, objects: Sequence[str]) -> None:
    """Run `ddl` (idempotent `CREATE ... IF NOT EXISTS` statements) unless every relation in `objects`
    (schema-qualified names) exists already; concurrent callers run it one after the other."""
    with conn.cursor() as cur:
        cur.execute("SELECT " + ", ".join(["to_regclass(%s)"] * len(objects)), list(objects))
        row = cur.fetchone()
        conn.commit()
        if row is not None and all(found is not None for found in row):
            return
        for attempt in range(3):
            try:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key("schema"),))
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                cur.execute(ddl)
            except _RACED:
                # Raced by a creator that does not take the lock: what it created is there now.
                conn.rollback()
                if attempt == 2:
                    raise
                continue
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
            return


@contextmanager
def advisory_lock(
    dsn: str,
    name: str,
    wait_seconds: float,
    on_timeout: Callable[[], BaseException],
    poll_seconds: float = 0.1,
) -> Iterator[None]:
    """Hold the session-level advisory lock for `name` for the block, on a connection of its own.

    Polls `pg_try_advisory_lock` for up to `wait_seconds`, then raises `on_timeout()`. Released on exit; when the
    process dies, its connection ends and Postgres releases the lock with it.
    """
    conn = connect(dsn, application_name=f"sales-channel lock {name}")
    conn.autocommit = True  # a session lock outlives transactions: nothing may stay open while it is held
    key = advisory_key(name)
    try:
        deadline = time.monotonic() + wait_seconds
        with conn.cursor() as cur:
            while True:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                row: Any = cur.fetchone()
                if row[0]:
                    break
                if time.monotonic() >= deadline:
                    raise on_timeout()
                time.sleep(poll_seconds)
        try:
            yield
        finally:
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s)", (key,))
            except psycopg2.Error:
                pass  # the connection is gone, and the lock with it
    finally:
        conn.close()
