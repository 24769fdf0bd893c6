"""The deployed mode's channel data: one DuckLake shared by every channel and every run, its catalog in the state
Postgres (schema `sales_channel_lake`, beside the coordination state's `sales_channel`) and its data files under
`State.lake_data_path` (S3), so a run in a fresh pod reads what earlier runs wrote. Dagster-free.

A connection is an in-memory DuckDB with the lake attached as `lake` and `USE lake.<channel>` (a schema per
channel), so the channel's unqualified SQL reads and writes its own tables, as on the embedded file. The extensions
load from their packages (`resources.duckdb_extensions`: no download). Credentials never reach a connection string
DuckDB would show (`duckdb_databases()`, its error messages): the catalog's come from a Postgres secret, S3's from
an S3 secret, both temporary (this connection only).

DuckLake has no PRIMARY KEY/UNIQUE nor ON CONFLICT (every channel table is written with MERGE INTO or
DELETE + INSERT, in both modes), and two runs of one channel that change the same table at once can make the later
COMMIT fail with a conflict (`resources.transaction` retries those).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import boto3
import duckdb

from resources.duckdb_extensions import load_extensions
from resources.postgres import StateUnavailable, advisory_lock
from resources.postgres import connect as pg_connect
from resources.state import State, postgres_params, redact_dsn

__all__ = [
    "ALIAS",
    "METADATA_SCHEMA",
    "LakeError",
    "MaintenanceSummary",
    "connect",
    "has_schema",
    "maintain",
    "use_schema",
]

log = logging.getLogger(__name__)

ALIAS = "lake"
METADATA_SCHEMA = "sales_channel_lake"  # the catalog's tables, in the state Postgres
# DuckLake retries a commit that lost the race for the next snapshot id (no logical conflict) by itself, 10 times by
# default; every channel's commits share one snapshot sequence, so many concurrent channels need more.
MAX_RETRY_COUNT = 100
# Postgres secret options for the libpq keywords of the state URL; the others stay in the (password-free) path.
_SECRET_KEYS = {"host": "HOST", "port": "PORT", "dbname": "DATABASE", "user": "USER", "password": "PASSWORD"}


class LakeError(RuntimeError):
    """The lake could not be attached or maintained; the message never shows a password or a secret key."""


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _s3_secret(environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """CREATE SECRET for the lake's S3 (the credentials botocore's chain finds: the environment, the shared files,
    a web identity (IRSA), the ECS task or EC2 instance role; `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL` for an S3
    server of one's own, such as moto), and the values to keep out of error messages."""
    session = boto3.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise LakeError("no AWS credentials for the lake's S3 (environment, shared files, web identity or role)")
    frozen = credentials.get_frozen_credentials()
    options = {
        "KEY_ID": frozen.access_key,
        "SECRET": frozen.secret_key,
        "REGION": session.region_name or environ.get("AWS_REGION") or "us-east-1",
    }
    if frozen.token:
        options["SESSION_TOKEN"] = frozen.token
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    extra = ""
    if endpoint:
        url = urlsplit(endpoint)
        options["ENDPOINT"] = url.netloc
        extra = f", URL_STYLE 'path', USE_SSL {'true' if url.scheme == 'https' else 'false'}"
    sql = "CREATE SECRET (TYPE s3, " + ", ".join(f"{k} {_literal(v)}" for k, v in options.items()) + extra + ")"
    return sql, [v for v in (frozen.secret_key, frozen.token) if v]


def _catalog_secret(dsn: str) -> tuple[str, str]:
    """The default Postgres secret (what DuckLake's catalog connection uses) and the rest of the libpq keywords."""
    params = postgres_params(dsn)
    options = ", ".join(f"{_SECRET_KEYS[k]} {_literal(v)}" for k, v in params.items() if k in _SECRET_KEYS)
    rest = " ".join(f"{k}={v}" for k, v in params.items() if k not in _SECRET_KEYS)
    return f"CREATE SECRET (TYPE postgres, {options})", rest


# The DSNs whose catalog this process has seen created.
_CATALOG_READY: set[str] = set()


def connect(state: State, *, read_only: bool = False, memory_limit: str = "1GB") -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached as `lake` (read-only when asked); the caller closes it.

    The first attach of a deployment creates the catalog's tables, and DuckLake's CREATE TABLE races when several
    pods start at once on an empty catalog; so while the catalog is missing, attaching happens under a Postgres
    advisory lock, one process after the other."""
    dsn = state.dsn or ""
    if dsn in _CATALOG_READY or _catalog_exists(dsn):
        _CATALOG_READY.add(dsn)
        return _attach(state, read_only, memory_limit)
    timeout = lambda: LakeError(f"the lake's catalog in {redact_dsn(dsn)} was not created within 300 s")  # noqa: E731
    with advisory_lock(dsn, "lake-catalog", 300.0, on_timeout=timeout):
        con = _attach(state, read_only, memory_limit)
    _CATALOG_READY.add(dsn)
    return con


def _catalog_exists(dsn: str) -> bool:
    try:
        conn = pg_connect(dsn, application_name="sales-channel lake")
    except StateUnavailable as exc:  # its message is scrubbed of the password already
        raise LakeError(f"attaching the lake failed: {exc}") from None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (f"{METADATA_SCHEMA}.ducklake_metadata",))
            return cur.fetchone()[0] is not None
    finally:
        conn.close()


def _attach(state: State, read_only: bool, memory_limit: str) -> duckdb.DuckDBPyConnection:
    environ = os.environ
    con = duckdb.connect()
    hidden: list[str] = []
    try:
        con.execute("SET memory_limit = $limit", {"limit": memory_limit}).fetchall()
        load_extensions(con, "ducklake", "postgres", "httpfs")
        s3, hidden = _s3_secret(environ)
        hidden += [v for k, v in postgres_params(state.dsn or "").items() if k == "password"]
        con.execute(s3)
        catalog, rest = _catalog_secret(state.dsn or "")
        con.execute(catalog)
        con.execute(f"SET ducklake_max_retry_count = {MAX_RETRY_COUNT}")
        options = f"DATA_PATH {_literal(state.lake_data_path)}, METADATA_SCHEMA {_literal(METADATA_SCHEMA)}"
        attach = f"ATTACH {_literal('ducklake:postgres:' + rest)} AS {ALIAS} ({options}"
        try:
            con.execute(attach + (", READ_ONLY)" if read_only else ")"))
        except duckdb.InvalidInputException as exc:
            if not (read_only and "does not exist" in str(exc)):
                raise
            con.execute(attach + ")")  # the first connection of a deployment creates the (empty) lake
    except duckdb.Error as exc:
        con.close()
        message = redact_dsn(str(exc))
        for value in hidden:
            message = message.replace(value, "***")
        raise LakeError(f"attaching the lake ({redact_dsn(state.dsn or '')}, {state.lake}) failed: {message}") from None
    except BaseException:
        con.close()
        raise
    return con


def has_schema(con: duckdb.DuckDBPyConnection, schema: str) -> bool:
    """Whether the attached lake holds schema `schema` with at least one table."""
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = $lake AND schema_name = $schema",
        {"lake": ALIAS, "schema": schema},
    ).fetchall()
    return found[0][0] > 0


def use_schema(con: duckdb.DuckDBPyConnection, schema: str, *, create: bool) -> None:
    """`USE lake.<schema>`, creating the schema first when `create`."""
    if create:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {ALIAS}.{_identifier(schema)}")
    con.execute(f"USE {ALIAS}.{_identifier(schema)}")


@dataclass(frozen=True)
class MaintenanceSummary:
    expired_snapshots: int
    merged_files: int
    rewritten_files: int
    deleted_files: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def maintain(state: State, expire_older_than: timedelta, now: datetime | None = None) -> MaintenanceSummary:
    """One round of the lake's upkeep: merge adjacent small files (each run's commits write small ones), rewrite
    files with many deleted rows (MERGE and DELETE leave delete files), expire the snapshots older than
    `expire_older_than` (time travel stops there), then delete the files no snapshot references any more (those
    scheduled for deletion and orphans, e.g. from an aborted write) once they are that old too, so no reader still
    scans them."""

    def cutoff() -> dict[str, datetime]:  # at each step: a file the previous one released is that old from then on
        return {"cutoff": (now or datetime.now(UTC)) - expire_older_than}

    con = connect(state)
    name = _literal(ALIAS)
    try:
        # Merge and rewrite first: the files they replace are then released by this round's expiry, not the next.
        merged = con.execute(f"CALL ducklake_merge_adjacent_files({name})").fetchall()
        rewritten = con.execute(f"CALL ducklake_rewrite_data_files({name})").fetchall()
        expired = con.execute(f"CALL ducklake_expire_snapshots({name}, older_than => $cutoff)", cutoff()).fetchall()
        cleaned = con.execute(f"CALL ducklake_cleanup_old_files({name}, older_than => $cutoff)", cutoff()).fetchall()
        orphans = con.execute(
            f"CALL ducklake_delete_orphaned_files({name}, older_than => $cutoff)", cutoff()
        ).fetchall()
    finally:
        con.close()
    return MaintenanceSummary(
        expired_snapshots=len(expired),
        merged_files=sum(row[2] for row in merged),  # rows: (schema, table, files merged, files written)
        rewritten_files=sum(row[2] for row in rewritten),
        deleted_files=len(cleaned) + len(orphans),
    )
