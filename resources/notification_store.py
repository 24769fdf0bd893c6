"""The notification store in the deployed mode: a schema of its own (`sales_channel_notifications`) in the state
database (`SALES_CHANNEL_STATE`), reached through DuckDB's postgres extension, so the sensor, the order poll and every
reader keep their DuckDB SQL and nothing takes a file lock.

What the extension does that the store's code must allow for (DuckDB 1.5.5's postgres extension):
- a DuckDB transaction is one Postgres transaction at REPEATABLE READ: it sees what was committed when its first
  statement ran. Two processes storing one key at once: the later one fails (a unique violation, as the extension
  writes with COPY and resolves ON CONFLICT itself against what it read; or a serialization failure for an UPDATE or
  DELETE). `is_conflict` tells such a failure, and the store's writers run the transaction again
  (`resources.transaction`, `STORE_ATTEMPTS` times at most): the retry sees the other's rows and skips them, so a
  notification is stored once and reported new once.
- RETURNING is not implemented; joins, IN (SELECT ...) and ON CONFLICT read the whole Postgres table (only a
  constant filter is pushed down): the store's transactions are short and its tables small next to a channel's.
- concurrent `CREATE ... IF NOT EXISTS` of one name can fail in Postgres (its catalog's unique indexes): the schema
  and the tables are created once per process, under an advisory transaction lock.
"""

from __future__ import annotations

import os
import threading
from contextlib import closing

import duckdb
import psycopg2

from resources.duckdb_extensions import load_extensions
from resources.state import postgres_params, redact_dsn

__all__ = ["SCHEMA", "StoreUnavailable", "connect", "STORE_ATTEMPTS", "is_conflict"]

SCHEMA = "sales_channel_notifications"
_READ_WRITE, _READ_ONLY = "notification_store", "notification_store_read_only"
_SECRET = "notification_store_secret"
# Postgres secret options for the libpq keywords of the state URL; the others stay in the (password-free) path.
_SECRET_KEYS = {"host": "HOST", "port": "PORT", "dbname": "DATABASE", "user": "USER", "password": "PASSWORD"}
# The advisory lock key of the store's DDL: a fixed number, so every process and version takes the same lock.
_DDL_LOCK = 0x5CA1E50001
# What Postgres (through the extension) and DuckDB say when a concurrent transaction wrote the same rows first.
_CONFLICTS = ("duplicate key value violates unique constraint", "could not serialize access", "deadlock detected")

# One in-memory DuckDB database per process (and state database), the postgres extension loaded into it (that load
# alone takes ~0.1 s) and the store attached twice, read-write and read-only; each connection is a cursor of it.
_shared: dict[tuple[int, str], duckdb.DuckDBPyConnection] = {}
_shared_lock = threading.Lock()


class StoreUnavailable(RuntimeError):
    """The notification store's database cannot be reached; the message never shows a password."""


def connect(dsn: str, *, read_only: bool = False, memory_limit: str = "1GB") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection whose unqualified table names are the store's tables in Postgres (the schema and tables
    are created by the process's first connection); `read_only`: through the read-only attachment. Close it after
    one transaction or a few reads, like the embedded store's."""
    key = (os.getpid(), dsn)  # a forked process must not use its parent's database
    with _shared_lock:
        if key not in _shared:
            for stale in [k for k in _shared if k[0] != key[0] or k[1] != dsn]:
                _shared.pop(stale).close()
            _shared[key] = _open(dsn, memory_limit)
        con = _shared[key].cursor()
    con.execute(f"USE {_READ_ONLY if read_only else _READ_WRITE}.{SCHEMA}")
    return con


def _open(dsn: str, memory_limit: str) -> duckdb.DuckDBPyConnection:
    """The process's database: the extension loaded, the schema and tables created (each under the DDL lock), the
    store attached read-write and read-only."""
    from sync.notifications import ensure_schema  # the store's tables are defined with the code that writes them
    from sync.order_poll import ensure_poll_schema

    try:
        # psycopg2 for the schema: the attachments below need it to exist.
        with closing(psycopg2.connect(dsn)) as pg, pg, pg.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [_DDL_LOCK])
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    except psycopg2.Error as exc:
        raise StoreUnavailable(_unavailable(dsn, exc)) from None
    # The connection keywords go into a secret: DuckDB shows an attachment's connection string in its errors (a
    # query failing on a lost connection included), so the string keeps only what is not secret.
    params = postgres_params(dsn)
    secret = ", ".join(f"{_SECRET_KEYS[k]} {_literal(v)}" for k, v in params.items() if k in _SECRET_KEYS)
    path = _literal(" ".join(f"{k}={v}" for k, v in params.items() if k not in _SECRET_KEYS))
    con = duckdb.connect()
    try:
        con.execute("SET memory_limit = $limit", {"limit": memory_limit})
        load_extensions(con, "postgres")
        con.execute(f"CREATE SECRET {_SECRET} (TYPE postgres, {secret})")
        con.execute(f"ATTACH {path} AS {_READ_WRITE} (TYPE postgres, SECRET {_SECRET}, SCHEMA '{SCHEMA}')")
        con.execute(f"USE {_READ_WRITE}.{SCHEMA}")
        con.execute("BEGIN")
        # Postgres resolves IF NOT EXISTS against its latest catalog, so tables another process created while this
        # one waited for the lock are skipped even though this transaction's snapshot predates them.
        con.execute(f"CALL postgres_execute('{_READ_WRITE}', 'SELECT pg_advisory_xact_lock({_DDL_LOCK})')")
        ensure_schema(con)
        ensure_poll_schema(con)
        con.execute("COMMIT")
        # The extension caches the schema's table list as it first saw it (duckdb_tables() lists only that): read
        # it again now that every table exists, and attach the read-only side only now.
        con.execute("CALL pg_clear_cache()")
        con.execute(f"ATTACH {path} AS {_READ_ONLY} (TYPE postgres, SECRET {_SECRET}, SCHEMA '{SCHEMA}', READ_ONLY)")
    except duckdb.Error as exc:
        con.close()
        raise StoreUnavailable(_unavailable(dsn, exc)) from None
    return con


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _unavailable(dsn: str, exc: Exception) -> str:
    text = redact_dsn(str(exc))
    password = postgres_params(dsn).get("password")
    return f"notification store ({redact_dsn(dsn)}): " + (text.replace(password, "***") if password else text)


# A store transaction that loses to a concurrent writer runs again, this many times in all.
STORE_ATTEMPTS = 8


def is_conflict(exc: BaseException) -> bool:
    """Whether `exc` is a transaction that lost to a concurrent one writing the same rows (retrying it is safe)."""
    if isinstance(exc, duckdb.TransactionException):
        return True
    return isinstance(exc, duckdb.Error) and any(text in str(exc) for text in _CONFLICTS)
