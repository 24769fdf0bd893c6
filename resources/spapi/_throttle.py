"""Token buckets per seller × operation, the seller's global request caps and the feed-submission windows, shared by
every process of a machine.

State lives in a small SQLite database in the client's state directory (the embedded default), or, in the deployed
mode, in Postgres tables of schema `sales_channel` that every machine reaches. Every decision is one short
transaction (SQLite: `BEGIN IMMEDIATE`; Postgres: row locks on the bucket and on the seller's window owners, never a
table lock, so different sellers never wait for each other), so two Dagster runs (processes) for the same seller
share the same buckets and never jointly exceed a limit. A caller *reserves* its token: the bucket may go negative,
and the reservation says when the caller may send. The caller sleeps outside the lock. Reservations queue callers
in order instead of letting them race for each freed token, which keeps throughput close to the limit.

Amazon's model (§3.4 of the facts): `rate` tokens/s refill a bucket of size `burst`, one token per call. We run a
little under Amazon's numbers (`rate_safety`, one token less burst) so that network jitter between our clock and
Amazon's does not turn an on-time call into a 429. An operation whose bucket holds a single token (getItemOffersBatch,
getMyFeesEstimates, ...) has no burst to spare: each interval also gets `single_token_slack_s` (at most a tenth of the
interval), because two calls' network delays differ and Amazon counts from their arrival.

Global caps (the Sales Channel module's "30 requests/minute, 36,000/day per seller") are sliding windows counted in
slots (1/60 of the window each); a slot counts in full until the whole slot has left the window, so the count never
underestimates. A reservation may lie in the future (a bucket's queue), so a new request must fit every window that
contains its send time, the reservations after it included. A cap of 0 switches it off. A request may carry a
`cap_share` (the budgeted offers pull, leaving the rest of the caps to pushes): its operation's own requests may fill
at most floor(cap × share) of each window (counted in windows of their own, `<seller>#<operation>`), while every
request still counts toward the seller's whole cap. The pull thus spends at most its share, and the pushes always
have the rest.

Feed-submission windows (JSON_LISTINGS_FEED: 5 per 5 minutes per selling-partner account and region, on top of
createFeed's usage plan) are kept per seller × feed type as the times of the submissions themselves: a slot is taken
only when it fits now, counts as sent "now" while the createFeed call is in flight, and keeps the time the call ended
(never earlier than Amazon saw it).

`seller` is the owner of a budget as the client names it: the seller id and the region (`A3SELLER@eu`), because
Amazon's usage plans are per selling-partner account and region (or the endpoint, when one override serves every
region: `SpApiClient.budget_region`). The global caps are the seller's across regions
(the module counts requests per seller), so their windows are keyed by the seller id alone (`window_owner`).
"""

from __future__ import annotations

import bisect
import math
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from resources.spapi._exceptions import Throttled

__all__ = ["Throttle", "Reservation"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    seller TEXT NOT NULL, operation TEXT NOT NULL,
    tokens REAL NOT NULL, updated REAL NOT NULL,
    rate REAL NOT NULL, default_rate REAL NOT NULL, burst REAL NOT NULL,
    PRIMARY KEY (seller, operation)
);
CREATE TABLE IF NOT EXISTS windows (
    seller TEXT NOT NULL, kind TEXT NOT NULL, slot INTEGER NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (seller, kind, slot)
);
CREATE TABLE IF NOT EXISTS feed_submissions (
    id TEXT PRIMARY KEY, seller TEXT NOT NULL, feed_type TEXT NOT NULL,
    taken REAL NOT NULL, ended REAL
);
CREATE INDEX IF NOT EXISTS feed_submissions_by_owner ON feed_submissions (seller, feed_type);
"""

# The same tables in Postgres (schema `sales_channel`), plus `throttle_locks`: one row per window owner and per
# seller × feed type, locked for the decision, since a row lock cannot cover window rows that do not exist yet.
_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS {schema}.throttle_buckets (
    seller TEXT NOT NULL, operation TEXT NOT NULL,
    tokens DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL,
    rate DOUBLE PRECISION NOT NULL, default_rate DOUBLE PRECISION NOT NULL, burst DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (seller, operation)
);
CREATE TABLE IF NOT EXISTS {schema}.throttle_windows (
    seller TEXT NOT NULL, kind TEXT NOT NULL, slot BIGINT NOT NULL, count BIGINT NOT NULL,
    PRIMARY KEY (seller, kind, slot)
);
CREATE TABLE IF NOT EXISTS {schema}.throttle_feed_submissions (
    id TEXT PRIMARY KEY, seller TEXT NOT NULL, feed_type TEXT NOT NULL,
    taken DOUBLE PRECISION NOT NULL, ended DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS throttle_feed_submissions_by_owner ON {schema}.throttle_feed_submissions (seller, feed_type);
CREATE TABLE IF NOT EXISTS {schema}.throttle_locks (name TEXT PRIMARY KEY);
"""

# A createFeed call is bounded by the retry policy (minutes at most); a submission whose process died mid-call is
# counted as sent at `taken` + this, the latest moment the call could have reached Amazon.
_IN_FLIGHT_LIMIT = 900.0


def window_owner(seller: str) -> str:
    """Whose global caps a budget owner's requests count against: the seller id without the region."""
    return seller.split("@", 1)[0]


@dataclass(frozen=True)
class Reservation:
    """The outcome of one attempt to take a token: `wait` seconds from now; `reserved` False means "ask again then"."""

    wait: float
    reserved: bool
    limited_by: str  # "bucket", "minute" or "day"


@dataclass(frozen=True)
class _Window:
    kind: str
    cap: int
    period: float

    @property
    def slots(self) -> int:
        """How many slots the window spans: two requests whose slots differ by at most this may share a window."""
        return 60 if self.kind == "minute" else 1440

    @property
    def slot_len(self) -> float:
        return self.period / self.slots

    def slot(self, at: float) -> int:
        # The epsilon keeps a time computed as slot × slot_len in that slot despite float rounding.
        return math.floor(at / self.slot_len + 1e-9)

    def share(self, cap_share: float) -> int:
        """The requests a caller holding `cap_share` of this window may see in it, its own included."""
        # The epsilon keeps e.g. 100 × 0.29 (28.999…) at 29.
        return math.floor(self.cap * cap_share + 1e-9)


# -- where the state lives ---------------------------------------------------------------------------------------------
class _Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class _Tx(Protocol):
    """One open transaction. SQL uses `?` placeholders and the table names `buckets`, `windows`, `feed_submissions`."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor: ...

    def bucket(self, seller: str, operation: str, initial: Callable[[], tuple[Any, ...]] | None) -> Any:
        """The bucket row (tokens, updated, rate, default_rate, burst), held until the transaction ends; None when
        there is none, unless the store must create it (with the values `initial()`, when given) to hold it."""
        ...

    def lock(self, name: str) -> None:
        """Hold `name` (a window owner's or a feed window's) until the transaction ends."""
        ...


class _Store(Protocol):
    def transaction(self) -> Any: ...  # a context manager yielding a `_Tx`

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor: ...  # one statement, committed

    def describe(self) -> str: ...

    def close(self) -> None: ...


_BUCKET = "SELECT tokens, updated, rate, default_rate, burst FROM buckets WHERE seller=? AND operation=?"


class _SqliteTx:
    """SQLite: `BEGIN IMMEDIATE` already holds the whole file for the transaction; nothing to lock row by row."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.execute = conn.execute

    def bucket(self, seller: str, operation: str, initial: Callable[[], tuple[Any, ...]] | None) -> Any:
        return self.execute(_BUCKET, (seller, operation)).fetchone()

    def lock(self, name: str) -> None:
        pass


class _SqliteStore:
    """A SQLite file shared by the processes of one machine (WAL mode), one connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connect().executescript(_SCHEMA)

    def describe(self) -> str:
        return repr(str(self.path))

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        # Switching a new file to WAL takes an exclusive lock without waiting on the busy timeout: two processes
        # opening the file at once get "database is locked" here, so the switch is tried again for a while.
        deadline = time.monotonic() + 60.0
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        conn.execute("PRAGMA synchronous=NORMAL")
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextmanager
    def transaction(self) -> Iterator[_SqliteTx]:
        """One short `BEGIN IMMEDIATE` transaction on this thread's connection: committed when the block ends,
        rolled back when it raises."""
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield _SqliteTx(conn)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        return self._connect().execute(sql, params)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class Throttle:
    """The shared limiter. Thread-safe; every process that opens the same `path` (a SQLite file: the embedded
    default) or the same `dsn` (a Postgres URL: the deployed mode) shares its state. Give exactly one of them.

    `requests_per_minute` / `requests_per_day` are per seller over all operations (0 = off). `minute_seconds` and
    `day_seconds` exist so tests can shrink the windows; production keeps 60 and 86,400. `feed_window_seconds`
    replaces every feed type's documented window likewise (None: Amazon's, from `operations.FEED_SUBMISSION_LIMITS`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        dsn: str | None = None,
        requests_per_minute: int = 30,
        requests_per_day: int = 36_000,
        rate_safety: float = 0.97,
        burst_margin: int = 1,
        single_token_slack_s: float = 0.25,
        minute_seconds: float = 60.0,
        day_seconds: float = 86_400.0,
        feed_window_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if (path is None) == (dsn is None):
            raise ValueError("give the throttle exactly one of path (a SQLite file) or dsn (a Postgres URL)")
        if requests_per_minute < 0 or requests_per_day < 0:
            raise ValueError("request caps must be >= 0 (0 switches a cap off)")
        if not 0 < rate_safety <= 1:
            raise ValueError("rate_safety must be in (0, 1]")
        self.windows = [
            w
            for w in (
                _Window("minute", requests_per_minute, minute_seconds),
                _Window("day", requests_per_day, day_seconds),
            )
            if w.cap > 0
        ]
        if feed_window_seconds is not None and not feed_window_seconds > 0:
            raise ValueError("feed_window_seconds must be > 0 (None: Amazon's documented window)")
        self.feed_window_seconds = feed_window_seconds
        self.rate_safety = rate_safety
        self.burst_margin = burst_margin
        self.single_token_slack_s = single_token_slack_s
        self._clock = clock
        self._sleep = sleep
        if dsn is not None:
            from resources.spapi._throttle_pg import PostgresStore

            self.path: Path | None = None
            self._store: _Store = PostgresStore(dsn, _PG_SCHEMA)
        else:
            assert path is not None
            self.path = Path(path)
            self._store = _SqliteStore(self.path)

    def __repr__(self) -> str:
        caps = ", ".join(f"{w.kind}={w.cap}" for w in self.windows) or "no caps"
        return f"Throttle({self._store.describe()}, {caps})"

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        self._store.close()

    # -- the core decision ------------------------------------------------------------------------------------------
    def _effective(self, rate: float, burst: float) -> tuple[float, float]:
        effective = rate * self.rate_safety
        if burst <= 1:
            interval = 1.0 / effective
            effective = 1.0 / (interval + min(self.single_token_slack_s, interval / 10))
        return effective, max(1.0, burst - self.burst_margin)

    def reserve(
        self,
        seller: str,
        operation: str,
        rate: float,
        burst: int,
        deadline: float | None = None,
        cap_share: float = 1.0,
    ) -> Reservation:
        """Take (or schedule) one token for `operation` of `seller` with the documented default `rate`/`burst`.

        Returns how long to wait. When `reserved` is True the token is ours and the call may be sent after `wait`;
        when False a global cap (or this operation's `cap_share` of it) is full and the caller should ask again after
        `wait`. Nothing is reserved when the send time would fall after `deadline`, or when `cap_share` of a cap
        leaves no request at all; then `Throttled` is raised.
        """
        if not 0 < cap_share <= 1:
            raise ValueError(f"cap_share must be in (0, 1], not {cap_share!r}")
        owner = window_owner(seller)
        # A shared request is also counted in its operation's own windows, which hold floor(cap × share).
        owners = [owner] if cap_share >= 1 else [owner, f"{owner}#{operation}"]
        with self._store.transaction() as tx:
            # Held in this order (bucket, then the owners in list order) by every decision, so none deadlocks; the
            # clock is read once they are held, so no decision is timed before the one it waited for.
            row = tx.bucket(
                seller, operation, lambda: (self._effective(rate, burst)[1], self._clock(), rate, rate, burst)
            )
            if self.windows:
                for who in owners:
                    tx.lock(f"window:{who}")
            now = self._clock()
            if row is None or row[3] != rate:
                stored_rate = rate
                tokens = self._effective(rate, burst)[1] if row is None else row[0]
                updated = now if row is None else row[1]
            else:
                tokens, updated, stored_rate = row[0], row[1], row[2]
            eff_rate, eff_burst = self._effective(stored_rate, burst)
            tokens = min(eff_burst, tokens + max(0.0, now - updated) * eff_rate)
            send_at = now if tokens >= 1 else now + (1 - tokens) / eff_rate
            limited_by = "bucket"
            for window in self.windows:
                share = window.share(cap_share)
                if share < 1:
                    raise Throttled(
                        f"no token for seller {seller}: a {cap_share:g} share of the {window.kind} cap "
                        f"({window.cap}) leaves no request",
                        operation=operation,
                    )
                for who, cap in zip(owners, (window.cap, share), strict=False):
                    ready = self._window_ready(tx, who, window, send_at, now, cap)
                    if ready > send_at:
                        send_at, limited_by = ready, window.kind
            reserved = limited_by == "bucket"
            if deadline is not None and send_at > deadline:
                share_note = f" at a {cap_share:g} share" if cap_share < 1 and limited_by != "bucket" else ""
                raise Throttled(
                    f"no token for seller {seller} within the call's time budget: the {limited_by} limit{share_note} "
                    f"frees one in {send_at - now:.1f} s",
                    operation=operation,
                )
            if reserved:
                tokens -= 1
                for window in self.windows:
                    for who in owners:
                        tx.execute(
                            "INSERT INTO windows(seller, kind, slot, count) VALUES (?,?,?,1) "
                            "ON CONFLICT(seller, kind, slot) DO UPDATE SET count = windows.count + 1",
                            (who, window.kind, window.slot(send_at)),
                        )
            tx.execute(
                "INSERT INTO buckets(seller, operation, tokens, updated, rate, default_rate, burst) "
                "VALUES (?,?,?,?,?,?,?) ON CONFLICT(seller, operation) DO UPDATE SET tokens = excluded.tokens, "
                "updated = excluded.updated, rate = excluded.rate, default_rate = excluded.default_rate, "
                "burst = excluded.burst",
                (seller, operation, tokens, now, stored_rate, rate, burst),
            )
        return Reservation(max(0.0, send_at - now), reserved, limited_by)

    def _window_ready(self, tx: _Tx, seller: str, window: _Window, at: float, now: float, cap: int) -> float:
        """The earliest time ≥ `at` at which one more request fits every span of `window` that contains it, a span
        counting as full at `cap` requests (the window's cap, or the caller's share of it).

        Slots are counted in whole: a request in slot x shares a window with every request whose slot is within
        `window.slots` of x, before or after (reservations placed in the future count too). Only slots that no
        request from `now` on can share a window with are pruned: `at` may be a future send time, and the history
        between `now` and it still limits the requests of other operations sent before it.
        """
        span = window.slots
        first = window.slot(now) - span
        tx.execute("DELETE FROM windows WHERE seller=? AND kind=? AND slot < ?", (seller, window.kind, first))
        rows = tx.execute(
            "SELECT slot, count FROM windows WHERE seller=? AND kind=? ORDER BY slot", (seller, window.kind)
        ).fetchall()
        if sum(count for _, count in rows) < cap:
            return at
        slots = [slot for slot, _ in rows]
        totals = [0]
        for _, count in rows:
            totals.append(totals[-1] + count)

        def in_span(lo: int, hi: int) -> int:
            return totals[bisect.bisect_right(slots, hi)] - totals[bisect.bisect_left(slots, lo)]

        def fits(x: int) -> bool:
            # Of the windows [j, j + span] containing x, the fullest starts at x - span or where its right edge
            # reaches a slot after x.
            later = slots[bisect.bisect_right(slots, x) : bisect.bisect_right(slots, x + span)]
            starts = [x - span, *(s - span for s in later)]
            return all(in_span(j, j + span) < cap for j in starts)

        # x becomes possible where a slot leaves the spans around it: the candidates are `at` and every s + span + 1.
        start = window.slot(at)
        for x in [start, *sorted({s + span + 1 for s in slots if s + span + 1 > start})]:
            if fits(x):
                return at if x == start else x * window.slot_len
        return at  # unreachable: past the last slot every window is empty

    def acquire(
        self,
        seller: str,
        operation: str,
        rate: float,
        burst: int,
        deadline: float | None = None,
        cap_share: float = 1.0,
    ) -> float:
        """Block until a token for `operation` is ours within `cap_share` of the caps; return the seconds waited.
        Raises `Throttled`, holding nothing, as soon as the token could not be ours by `deadline`."""
        waited = 0.0
        while True:
            reservation = self.reserve(seller, operation, rate, burst, deadline, cap_share)
            if reservation.wait > 0:
                self._sleep(reservation.wait)
                waited += reservation.wait
            if reservation.reserved:
                return waited

    # -- feed submissions ---------------------------------------------------------------------------------------------
    @contextmanager
    def feed_submission(
        self, seller: str, feed_type: str, limit: int, period: float, max_wait: float | None = None
    ) -> Iterator[float]:
        """Hold one of the `limit` submissions of `feed_type` that `seller` may make per `period` seconds around the
        createFeed call in the `with` block; yields the seconds waited for it.

        Waits (sleeping outside the lock) until a submission leaves the window; raises `Throttled`, holding nothing,
        when none frees within `max_wait` seconds. On exit the submission keeps the time the call ended, whatever its
        outcome (a failed call may still have reached Amazon).
        """
        period = self.feed_window_seconds or period
        deadline = None if max_wait is None else self._clock() + max_wait
        waited = 0.0
        while True:
            taken, wait = self._take_feed_slot(seller, feed_type, limit, period, deadline)
            if taken is not None:
                break
            self._sleep(wait)
            waited += wait
        try:
            yield waited
        finally:
            self._store.execute("UPDATE feed_submissions SET ended=? WHERE id=?", (self._clock(), taken))

    def _take_feed_slot(
        self, seller: str, feed_type: str, limit: int, period: float, deadline: float | None
    ) -> tuple[str | None, float]:
        """(the submission's id, 0) when one fits now, else (None, seconds until one may)."""
        with self._store.transaction() as tx:
            tx.lock(f"feed:{seller}:{feed_type}")
            now = self._clock()
            rows = tx.execute(
                "SELECT id, taken, ended FROM feed_submissions WHERE seller=? AND feed_type=?", (seller, feed_type)
            ).fetchall()
            # A call still in flight counts as sent now (a dead process's, at the latest time it could have been).
            sent = {row[0]: row[2] if row[2] is not None else min(now, row[1] + _IN_FLIGHT_LIMIT) for row in rows}
            gone = [key for key, at in sent.items() if at <= now - period]
            for key in gone:
                tx.execute("DELETE FROM feed_submissions WHERE id=?", (key,))
            times = sorted(at for key, at in sent.items() if key not in gone)
            if len(times) < limit:
                taken = uuid.uuid4().hex
                tx.execute(
                    "INSERT INTO feed_submissions(id, seller, feed_type, taken) VALUES (?,?,?,?)",
                    (taken, seller, feed_type, now),
                )
                return taken, 0.0
        free_at = times[len(times) - limit] + period
        if deadline is not None and free_at > deadline:
            raise Throttled(
                f"no {feed_type} submission for seller {seller} within the call's time budget: {limit} per "
                f"{period:g} s are taken, the next frees in {free_at - now:.1f} s",
                operation="createFeed",
            )
        return None, max(free_at - now, 1e-3)

    # -- feedback from Amazon -----------------------------------------------------------------------------------------
    def adopt_rate(self, seller: str, operation: str, rate: float) -> bool:
        """Use the rate Amazon reported in `x-amzn-RateLimit-Limit`; True when it changed the stored rate."""
        if not rate > 0 or not math.isfinite(rate):
            return False
        cur = self._store.execute(
            "UPDATE buckets SET rate=? WHERE seller=? AND operation=? AND abs(rate - ?) > 1e-9",
            (rate, seller, operation, rate),
        )
        return cur.rowcount > 0

    def on_throttled(self, seller: str, operation: str) -> None:
        """Amazon answered 429: its bucket is empty, so ours must not hold tokens either (queued reservations stay)."""
        with self._store.transaction() as tx:
            row = tx.bucket(seller, operation, None)
            now = self._clock()
            if row is not None:
                eff_rate, eff_burst = self._effective(row[2], row[4])
                tokens = min(eff_burst, row[0] + max(0.0, now - row[1]) * eff_rate)
                tx.execute(
                    "UPDATE buckets SET tokens=?, updated=? WHERE seller=? AND operation=?",
                    (min(tokens, 0.0), now, seller, operation),
                )

    def snapshot(self, seller: str, operation: str) -> dict[str, float] | None:
        """The stored bucket (tokens as of its last update, rate, burst), for tests and diagnostics."""
        row = self._store.execute(
            "SELECT tokens, updated, rate, burst FROM buckets WHERE seller=? AND operation=?", (seller, operation)
        ).fetchone()
        return None if row is None else {"tokens": row[0], "updated": row[1], "rate": row[2], "burst": row[3]}
