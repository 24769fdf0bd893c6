"""The channel store: one DuckDB file per channel under the data directory (the embedded default), or one schema per
channel in the DuckLake of the deployed mode (`SALES_CHANNEL_STATE`; `resources.lake`), plus the generated feed files.

Embedded: DuckDB allows one writing process per file, and a process holding a file open read-write locks out every
other process, readers included. Channels are partitions that run concurrently, so each channel gets its own file
(`<data_dir>/warehouse/<channel>.duckdb`): runs for different channels never wait on each other. Two runs of the
*same* channel take turns: opening retries on the lock with backoff (`lock_timeout_s`). Deployed: every connection
is an in-memory DuckDB with the lake attached and the channel's schema in use, so the same SQL runs unchanged and
runs of one channel write at once (`resources.transaction` runs a conflicting commit again).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from pricing.money import install_money_macros
from resources import lake, notification_store
from resources.state import State, state_from_env

__all__ = ["Warehouse", "channel_tables"]


def channel_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The tables of the channel a `Warehouse.connect` connection is on (its database and schema; not temporary)."""
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE NOT temporary "
        "AND database_name = current_database() AND schema_name = current_schema()"
    ).fetchall()
    return {r[0] for r in rows}


class Warehouse(dg.ConfigurableResource):
    """Per-channel DuckDB files and feed folders under `data_dir` (the seller's data directory)."""

    data_dir: str
    lock_timeout_s: float = 120.0
    # DuckDB caches up to 80 % of RAM by default; a bound keeps concurrent channel runs polite (it spills beyond).
    memory_limit: str = "1GB"

    def database_path(self, channel: str) -> Path:
        """The channel's DuckDB file (the embedded default only: see `has_data` for both modes)."""
        return Path(self.data_dir) / "warehouse" / f"{channel}.duckdb"

    def feeds_dir(self, channel: str) -> Path:
        return Path(self.data_dir) / "feeds" / channel

    def has_data(self, channel: str) -> bool:
        """Whether any run has written the channel's data: its file exists (embedded) or its lake schema holds a
        table (deployed)."""
        state = state_from_env()
        if not state.deployed:
            return self.database_path(channel).exists()
        con = lake.connect(state, read_only=True, memory_limit=self.memory_limit)
        try:
            return lake.has_schema(con, channel)
        finally:
            con.close()

    @contextmanager
    def connect(self, channel: str, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the channel's data (its file, or its schema in the lake) with the money macros installed
        (TEMP: on read-only connections too, and never stored); closed on exit. Read-only on a channel nothing has
        written yet opens it read-write, as an empty channel."""
        state = state_from_env()
        if state.deployed:
            con = self._open_lake(state, channel, read_only)
        else:
            con = self._open(self.database_path(channel), read_only, self.lock_timeout_s, max_delay=2.0)
        try:
            install_money_macros(con)
            yield con
        finally:
            con.close()

    def _open_lake(self, state: State, channel: str, read_only: bool) -> duckdb.DuckDBPyConnection:
        con = lake.connect(state, read_only=read_only, memory_limit=self.memory_limit)
        if read_only and not lake.has_schema(con, channel):
            con.close()
            con = lake.connect(state, memory_limit=self.memory_limit)
            read_only = False
        try:
            lake.use_schema(con, channel, create=not read_only)
        except BaseException:
            con.close()
            raise
        return con

    # -- the seller-level notification store (additive: written by the SQS sensor, read by channel runs) ------------
    def notifications_path(self) -> Path:
        """`<data_dir>/warehouse/_notifications.duckdb` (a leading underscore: never a channel name)."""
        return Path(self.data_dir) / "warehouse" / "_notifications.duckdb"

    def has_notifications(self) -> bool:
        """Whether the notification store exists: the file once written; always in the deployed mode (its first
        connection creates it)."""
        return state_from_env().deployed or self.notifications_path().exists()

    @contextmanager
    def connect_notifications(
        self, read_only: bool = False, lock_timeout_s: float = 20.0
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection to the notification store. The sensor (daemon process) and runs take turns on
        the file, so keep the connection for one transaction; opening retries on the lock for `lock_timeout_s`. In
        the deployed mode the store is a Postgres schema (resources.notification_store): no file, no lock."""
        state = state_from_env()
        if state.deployed:
            con = notification_store.connect(state.dsn, read_only=read_only, memory_limit=self.memory_limit)
        else:
            con = self._open(self.notifications_path(), read_only, lock_timeout_s, max_delay=0.5)
        try:
            yield con
        finally:
            con.close()

    def _open(self, path: Path, read_only: bool, timeout_s: float, max_delay: float) -> duckdb.DuckDBPyConnection:
        """Open `path`, retrying while another process holds DuckDB's file lock, for at most `timeout_s`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        while True:
            try:
                con = duckdb.connect(str(path), read_only=read_only and path.exists())
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, max_delay)
        con.execute("SET memory_limit = $limit", {"limit": self.memory_limit}).fetchall()
        return con
