"""Where the pipeline keeps what must outlive a run: the embedded default (local files) or the deployed mode.

`SALES_CHANNEL_STATE` selects the mode. Unset: everything stays under the data directory as it always did (SQLite
throttle, DuckDB files per channel, a DuckDB notification store, feed documents on disk). Set to a Postgres URL
(`postgresql://user:password@host:5432/db`): every piece of shared state lives where many machines can reach it, so
a run in a fresh pod starts from what earlier runs left:
- coordination state (throttle buckets, the module's minute/day windows, feed-submission windows, the notification
  store and its dead letters, the push lock) in that database, schema `sales_channel`;
- channel data in a DuckLake whose catalog is the same database and whose data files live under
  `SALES_CHANNEL_LAKE` (`s3://bucket/prefix`, required in the deployed mode): `<lake>/lake/` for the lake's files,
  `<lake>/feeds/<channel>/` for the generated feed documents, `<lake>/inputs/` for the validated input snapshots.
Access tokens are not cached across processes in the deployed mode (one token per run); refresh tokens never are.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["LAKE_ENV", "STATE_ENV", "State", "StateConfigError", "postgres_params", "redact_dsn", "state_from_env"]

STATE_ENV = "SALES_CHANNEL_STATE"
LAKE_ENV = "SALES_CHANNEL_LAKE"
SCHEMA = "sales_channel"  # the Postgres schema of the coordination state


class StateConfigError(ValueError):
    """The state settings are wrong; the message names the variable and never shows a password."""


def redact_dsn(dsn: str) -> str:
    """`dsn` with any password replaced by `***` (URL form `user:pw@` and keyword form `password=pw`)."""
    dsn = re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", dsn)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", dsn, flags=re.IGNORECASE)


def postgres_params(dsn: str) -> dict[str, str]:
    """The Postgres URL as libpq keywords: host, port, dbname, user, password (percent-decoded) and any query
    parameters (`sslmode=require`, ...). The one place the URL is taken apart: callers hand the password to a secret
    or a keyword, never to a connection string DuckDB would show (in `duckdb_databases()` and its errors)."""
    url = urlsplit(dsn)
    params = {
        "host": url.hostname,
        "port": str(url.port) if url.port else None,
        "dbname": unquote(url.path.lstrip("/")) or None,
        "user": unquote(url.username) if url.username else None,
        "password": unquote(url.password) if url.password else None,
        **dict(parse_qsl(url.query)),
    }
    return {key: value for key, value in params.items() if value}


@dataclass(frozen=True)
class State:
    """`dsn` None: the embedded default. Otherwise the Postgres URL and the lake root (`s3://bucket/prefix`)."""

    dsn: str | None = None
    lake: str | None = None

    @property
    def deployed(self) -> bool:
        return self.dsn is not None

    @property
    def lake_data_path(self) -> str:
        """The DuckLake DATA_PATH (ends with a slash)."""
        return f"{self._lake_root()}/lake/"

    def feeds_path(self, channel: str) -> str:
        return f"{self._lake_root()}/feeds/{channel}"

    @property
    def inputs_path(self) -> str:
        """Where the validated input snapshots live (seller.snapshots)."""
        return f"{self._lake_root()}/inputs"

    def _lake_root(self) -> str:
        if not self.lake:
            raise StateConfigError(f"{LAKE_ENV} is not set")
        return self.lake.rstrip("/")

    def __repr__(self) -> str:  # never show the password
        return f"State(dsn={redact_dsn(self.dsn) if self.dsn else None!r}, lake={self.lake!r})"


def state_from_env(environ: dict[str, str] | None = None) -> State:
    """The mode the environment selects; raises `StateConfigError` naming the variable when it is malformed."""
    env = os.environ if environ is None else environ
    dsn = env.get(STATE_ENV, "").strip()
    if not dsn:
        return State()
    if not re.match(r"^postgres(ql)?://", dsn):
        raise StateConfigError(
            f"{STATE_ENV} must be a Postgres URL (postgresql://user:password@host:port/database), "
            f"not {redact_dsn(dsn)!r}"
        )
    lake = env.get(LAKE_ENV, "").strip()
    if not lake:
        raise StateConfigError(f"{STATE_ENV} is set, so {LAKE_ENV} must name the lake's root (s3://bucket/prefix)")
    if not re.match(r"^(s3|gs|az|file)://", lake) and not lake.startswith("/"):
        raise StateConfigError(f"{LAKE_ENV} must be s3://bucket/prefix (or an absolute path), not {lake!r}")
    return State(dsn=dsn, lake=lake)
