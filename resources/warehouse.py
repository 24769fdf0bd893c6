"""The embedded default store: one DuckDB file per channel, plus the generated feed files, under the data directory.

DuckDB allows one writing process per file, and a process holding a file open read-write locks out every other
process, readers included. Channels are partitions that run concurrently, so each channel gets its own file
(`<data_dir>/warehouse/<channel>.duckdb`): runs for different channels never wait on each other. Two runs of the
*same* channel take turns: opening retries on the lock with backoff (`lock_timeout_s`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from pricing.money import install_money_macros
from resources import notification_store
from resources.state import state_from_env

__all__ = ["Warehouse"]


class Warehouse(dg.ConfigurableResource):
    """Per-channel DuckDB files and feed folders under `data_dir` (the seller's data directory)."""

    data_dir: str
    lock_timeout_s: float = 120.0
    # DuckDB caches up to 80 % of RAM by default; a bound keeps concurrent channel runs polite (it spills beyond).
    memory_limit: str = "1GB"

    def database_path(self, channel: str) -> Path:
        return Path(self.data_dir) / "warehouse" / f"{channel}.duckdb"

    def feeds_dir(self, channel: str) -> Path:
        return Path(self.data_dir) / "feeds" / channel

    @contextmanager
    def connect(self, channel: str, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the channel's database with the money macros installed (not on a read-only one: DuckDB
        stores a macro in the file); closed on exit."""
        path = self.database_path(channel)
        con = self._open(path, read_only, self.lock_timeout_s, max_delay=2.0)
        try:
            if not (read_only and path.exists()):
                install_money_macros(con)
            yield con
        finally:
            con.close()

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
