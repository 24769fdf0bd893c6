"""Validated input snapshots: each input file parsed and validated once per file version, for every channel at once.

A snapshot is what `validated_input` makes of the whole file (every channel's rows): its valid typed rows as Parquet
(a channel-scoped file ordered by channel, then row, so one channel's read skips the other channels' row groups),
its problems (ERROR_SCHEMA, every channel's) as a second Parquet file, and a small JSON manifest written last (a
snapshot without its manifest does not exist). The three are named by the snapshot's key: the SHA-256 of the file's
bytes, the file's name, the channel-config fields validation reads (channel names, decimals, seller, region,
allocation) and `SNAPSHOT_VERSION`; so an unchanged file under an unchanged config is never parsed again, and any
change to either is validated once, by whichever run needs it first (the others wait on a lock, then read it).

Where: embedded, `<data>/warehouse/_inputs/` (beside the channel files); deployed (`SALES_CHANNEL_STATE`),
`<lake>/inputs/` on S3, so a run in a fresh pod reuses what another pod validated. The build lock is a file lock
(embedded) or a Postgres advisory lock (deployed). The two newest versions of each input are kept: a run that
resolved the previous version just before a rebuild can still read it. Dagster-free.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from feeds.store import FeedStore, LocalFeedStore, feed_store_at
from resources.postgres import advisory_lock
from resources.state import State, state_from_env
from seller.config import Channel
from seller.inputs import ERROR_SCHEMA, INPUTS, SIDE_INPUTS, find_input, validated_input

__all__ = [
    "SNAPSHOT_INPUTS",
    "SNAPSHOT_VERSION",
    "Snapshot",
    "ensure_snapshot",
    "read_errors",
    "rows_sql",
    "snapshot_store",
]

# Bump when validation changes what a snapshot holds (a rule, a type, a column): every file is validated again.
SNAPSHOT_VERSION = "1"
KEEP_VERSIONS = 2
# Every input file of the seller: the input assets' and those their own assets read (fees, shipments).
SNAPSHOT_INPUTS = {**INPUTS, **SIDE_INPUTS}
LOCK_WAIT_S = 900.0  # a 1M-SKU competitor file validates in well under a minute; another run's build is awaited
_HASH_CHUNK = 8 << 20
_ALLOCATION = ("safety_buffer", "max_quantity", "allocation_percent")


@dataclass(frozen=True)
class Snapshot:
    name: str  # the input (master_inventory, ...)
    file: str | None  # the file's name in the data directory; None: absent
    sha256: str | None  # the file's SHA-256; None: absent
    key: str  # the snapshot's key (file hash + config fields + version)
    rows_location: str  # the valid rows' Parquet (a local path or an s3:// URL)
    errors_location: str  # the problems' Parquet
    rows: int  # valid rows, every channel's
    problems: int  # problems, every channel's
    built_at: str  # ISO 8601, when it was validated
    built: bool  # validated by this call (False: an existing snapshot was reused)


def snapshot_store(data_dir: str | Path, state: State | None = None) -> FeedStore:
    """`<data>/warehouse/_inputs/` embedded; `<lake>/inputs/` (S3) in the deployed mode."""
    state = state_from_env() if state is None else state
    if not state.deployed:
        return LocalFeedStore(Path(data_dir) / "warehouse" / "_inputs")
    return feed_store_at(state.inputs_path)


def config_fields(channels: Mapping[str, Channel]) -> list[dict]:
    """What validation reads of the channels config: names and decimals (the channel and money rules) and, for the
    unified-account check, seller, region and allocation."""
    return [
        {
            "name": c.name,
            "decimals": int(c.decimals),
            "seller_id": c.seller_id,
            "region": c.region,
            "allocation": {k: str(getattr(c.allocation, k)) for k in _ALLOCATION},
        }
        for c in sorted(channels.values(), key=lambda c: c.name)
    ]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _key(name: str, path: Path | None, sha: str | None, channels: Mapping[str, Channel]) -> str:
    basis = {
        "version": SNAPSHOT_VERSION,
        "input": name,
        "file": path.name if path else None,
        "sha256": sha,
        "channels": config_fields(channels),
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()


def _names(name: str, key: str) -> tuple[str, str, str]:
    stem = f"{name}-{key[:24]}"
    return f"{stem}.parquet", f"{stem}.errors.parquet", f"{stem}.json"


def _manifest(store: FeedStore, name: str) -> dict | None:
    try:
        store.stat(name)
    except FileNotFoundError:
        return None
    with store.open(name) as f:
        return json.loads(f.read())


def _from_manifest(store: FeedStore, manifest: dict, built: bool) -> Snapshot:
    rows_name, errors_name, _ = _names(manifest["input"], manifest["key"])
    return Snapshot(
        name=manifest["input"],
        file=manifest["file"],
        sha256=manifest["sha256"],
        key=manifest["key"],
        rows_location=store.stat(rows_name).location,
        errors_location=store.stat(errors_name).location,
        rows=manifest["rows"],
        problems=manifest["problems"],
        built_at=manifest["built_at"],
        built=built,
    )


@contextmanager
def _build_lock(store: FeedStore, state: State, name: str) -> Iterator[None]:
    if state.deployed:

        def timeout() -> BaseException:
            return TimeoutError(f"another run has been validating {name} for more than {LOCK_WAIT_S:.0f} s")

        with advisory_lock(state.dsn or "", f"input-snapshot:{name}", LOCK_WAIT_S, on_timeout=timeout):
            yield
        return
    root = Path(store.location)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_snapshot(
    name: str,
    data_dir: str | Path,
    channels: Mapping[str, Channel],
    *,
    state: State | None = None,
    memory_limit: str = "1GB",
) -> Snapshot:
    """The snapshot of input `name` as the data directory holds it now: the existing one when the file (and the
    config fields validation reads) did not change, else validated now, under the build lock."""
    state = state_from_env() if state is None else state
    store = snapshot_store(data_dir, state)
    while True:
        path = find_input(Path(data_dir), name)
        sha = file_sha256(path) if path else None
        key = _key(name, path, sha, channels)
        manifest_name = _names(name, key)[2]
        found = _manifest(store, manifest_name)
        if found is not None:
            return _from_manifest(store, found, built=False)
        with _build_lock(store, state, name):
            found = _manifest(store, manifest_name)  # another run built it while this one waited
            if found is not None:
                return _from_manifest(store, found, built=False)
            manifest = _build(name, data_dir, channels, store, key, path, sha, memory_limit)
            if manifest is None:
                continue  # the file changed while it was read: validate the new version
            _prune(store, name)
            return _from_manifest(store, manifest, built=True)


def _build(
    name: str,
    data_dir: str | Path,
    channels: Mapping[str, Channel],
    store: FeedStore,
    key: str,
    path: Path | None,
    sha: str | None,
    memory_limit: str,
) -> dict | None:
    """Validate the file into the three snapshot files; None (nothing stored) when the file's bytes changed
    meanwhile."""
    rows_name, errors_name, manifest_name = _names(name, key)
    with tempfile.TemporaryDirectory(prefix="input-snapshot-") as spill:
        con = duckdb.connect()
        try:
            con.execute("SET memory_limit = $limit", {"limit": memory_limit}).fetchall()
            con.execute("SET temp_directory = $dir", {"dir": spill}).fetchall()
            with validated_input(con, name, data_dir, dict(channels), table="valid_rows") as loaded:
                if (file_sha256(path) if path else None) != sha:
                    return None
                with store.target(errors_name) as target:
                    pq.write_table(loaded.errors, target)
                # valid_rows is in file order already: a file of several channels is sorted by channel so a channel's
                # read skips the others' row groups; a one-channel file is written as it is.
                scoped = SNAPSHOT_INPUTS[name].channel_scoped
                several = scoped and con.execute("SELECT count(DISTINCT channel) > 1 FROM valid_rows").fetchall()[0][0]
                order = " ORDER BY channel, _row" if several else ""
                with store.target(rows_name) as target:
                    con.execute(
                        f"COPY (SELECT * FROM valid_rows{order}) TO '{target}' (FORMAT parquet, COMPRESSION 'lz4')"
                    )
                manifest = {
                    "input": name,
                    "key": key,
                    "file": path.name if path else None,
                    "sha256": sha,
                    "rows": loaded.rows,
                    "problems": loaded.errors.num_rows,
                    "built_at": datetime.now(UTC).isoformat(),
                    "version": SNAPSHOT_VERSION,
                }
        finally:
            con.close()
    store.write(manifest_name, json.dumps(manifest, indent=1).encode())
    return manifest


def _prune(store: FeedStore, name: str) -> None:
    """Delete all but the `KEEP_VERSIONS` newest snapshots of `name` (newest by manifest)."""
    manifests = [f for f in store.files() if f.name.startswith(f"{name}-") and f.name.endswith(".json")]
    manifests.sort(key=lambda f: f.modified, reverse=True)
    for old in manifests[KEEP_VERSIONS:]:
        stem = old.name.removesuffix(".json")
        for suffix in (".json", ".parquet", ".errors.parquet"):  # the manifest first: no half snapshot is ever found
            store.delete(stem + suffix)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def rows_sql(snapshot: Snapshot, channel: str | None) -> str:
    """SQL of the snapshot's valid rows, with `channel` only that channel's (a channel-scoped input) and those for
    every channel (a blank channel: pricing_rules), in file order."""
    sql = f"SELECT * FROM read_parquet({_literal(snapshot.rows_location)})"
    if channel is not None and SNAPSHOT_INPUTS[snapshot.name].channel_scoped:
        sql += f" WHERE channel IS NULL OR channel = {_literal(channel)}"
    return sql


def read_errors(con: duckdb.DuckDBPyConnection, snapshot: Snapshot) -> pa.Table:
    """Every problem of the snapshot (ERROR_SCHEMA), read through `con` (a local path or S3)."""
    if snapshot.problems == 0:
        return ERROR_SCHEMA.empty_table()
    table = con.sql(f"SELECT * FROM read_parquet({_literal(snapshot.errors_location)})").to_arrow_table()
    return table.cast(ERROR_SCHEMA)
