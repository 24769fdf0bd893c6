"""Sending the changed offers of one channel to Amazon, recording Amazon's answer per SKU. Dagster-free.

`Push.run(updates)` does, in order: resume every feed a previous run left open (poll it, never resubmit; one still
IN_QUEUE past `FeedPolling.in_queue_deadline` since its submission is cancelled and its SKUs resent), detect the
offers that differ from `published_state`, send them by JSON_LISTINGS_FEED or per-SKU patchListingsItem
(`choose_path`), read back a sample plus every warned SKU with getListingsItem (`not_applied` when Amazon shows other
values), then write one `submit` row per mapped SKU to sync_history and the accepted values to published_state.

Ledger: each feed document is recorded (content hash, marketplaces, SKUs with the values sent) before createFeed and
its feedId right after, in committed transactions; an open submission is what the next run polls instead of submitting
again. createFeed is sent once (the client never retries it once it may have reached Amazon): when its answer is lost
(a 5xx, a read timeout, a dropped connection) the submission stays `recorded` and its SKUs `pending` for this run. The
same run does not look for the feed — getFeeds may not list a feed created a moment ago, so it could only adopt, never
rule out —; the next run's resume does, with getFeeds (one code path with a run that died after createFeed): it adopts
the earliest feed the ledger does not know whose type and marketplaces are the submission's and that was created since
it was recorded, and otherwise abandons the submission, so its SKUs are detected again and resent. A feed that
cannot be read this run (getFeed, getFeedDocument, the report download or getFeeds failing after the client's
retries) stays open and its SKUs `pending`; the next run polls it. A patch whose answer is lost after the retries is
settled by reading the listing back (`_settle_patch`).

The channel's DuckDB file is open only around reads and writes (`Push._open`), never while the push waits on Amazon
(feed processing, getFeeds, createFeed and the wait for its JSON_LISTINGS_FEED submission slot, patches, read-back):
DuckDB lets one process at a time hold a file, readers included. What must outlive a connection is kept in
Python or in the real tables `push_updates`, `push_changed` and `push_numbered` of the channel's file, dropped at the
end. Two pushes of one channel never interleave: each holds an exclusive lock on `<channel>.push.lock`, next to the
file, for its whole run (in the deployed mode a Postgres advisory lock keyed by the channel).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from feeds.flat_files import PRICE_QUANTITY, write_flat_file
from feeds.listings_json import FEED_TYPE, MAX_MESSAGES, listings_feed_documents
from feeds.store import FeedStore
from resources.archive import write_report
from resources.spapi import FeedPolling, ServerError, SpApiClient, SpApiError, SpApiTimeout, Throttled, Unauthorized
from resources.spapi._feeds import JSON_CONTENT_TYPE, TSV_CONTENT_TYPE
from resources.state import state_from_env
from resources.transaction import transaction
from seller.config import Channel
from seller.marketplaces import FBA_CHANNEL_CODE
from sync.changes import FEED_THRESHOLD, OFFER_COLUMNS, changed_offers_sql, choose_path
from sync.outcomes import Outcome, from_error, from_issues, from_report
from sync.tables import ensure_tables

__all__ = ["Push", "PushBusy", "PushSettings", "PushSummary", "patches_for", "minor_to_decimal"]

log = logging.getLogger(__name__)

_OPEN = ("recorded", "submitted")
_OUTCOME_SCHEMA = pa.schema(
    [("sku", pa.string()), ("status", pa.string()), ("code", pa.string()), ("message", pa.string())]
)
_SENT_SCHEMA = pa.schema(
    [
        ("sku", pa.string()),
        ("asin", pa.string()),
        ("fulfillment", pa.string()),
        ("price_minor", pa.int64()),
        ("min_minor", pa.int64()),
        ("max_minor", pa.int64()),
        ("quantity", pa.int64()),
        ("handling_time_days", pa.int64()),
        ("via", pa.string()),
    ]
)
# One row per SKU (push_sent has one per SKU): the values Amazon accepted replace the SKU's previous ones.
_PUBLISH = """
MERGE INTO published_state p
USING (SELECT sku, asin, price_minor, min_minor, max_minor, quantity, handling_time_days, via FROM push_sent) s
ON p.sku = s.sku
WHEN MATCHED THEN UPDATE SET asin = s.asin, price_minor = s.price_minor, min_minor = s.min_minor,
    max_minor = s.max_minor, quantity = s.quantity, handling_time_days = s.handling_time_days, via = s.via,
    run_id = $run_id, confirmed_at = $now
WHEN NOT MATCHED THEN INSERT VALUES (s.sku, s.asin, s.price_minor, s.min_minor, s.max_minor, s.quantity,
    s.handling_time_days, s.via, $run_id, $now)
"""
# Real tables of the channel's file that carry one push across its connections (dropped at its end).
_STAGING = ("push_updates", "push_changed", "push_numbered")
# Amazon's createdTime against our clock: a feed created this long before the submission was recorded still fits.
_CLOCK_SKEW = timedelta(seconds=60)


HELD = "restricted_held"  # the outcome code of a gated SKU not resent this run


@dataclass(frozen=True)
class PushSettings:
    """Knobs of one push (the asset's run config fills them)."""

    feed_threshold: int = FEED_THRESHOLD
    max_messages: int = MAX_MESSAGES
    legacy_flat_files: bool = False  # submit POST_FLAT_FILE_PRICEANDQUANTITYONLY_UPDATE_DATA (Amazon: FATAL)
    readback_sample: int = 20  # accepted SKUs read back per run, on top of every warned SKU
    # A SKU Amazon answered category_restricted (gated: the seller needs approval) is not resent for this long;
    # then it is tried again, so an approval granted in Seller Central is picked up without resending every run.
    restricted_retry_hours: float = 24.0
    polling: FeedPolling = field(default_factory=FeedPolling)
    lock_wait_seconds: float = 120.0  # another push of the same channel running: wait this long, then fail


@dataclass
class PushSummary:
    path: str = "none"
    changed: int = 0
    resumed_feeds: int = 0
    feeds_submitted: int = 0
    patches_sent: int = 0
    read_back: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    feed_ids: list[str] = field(default_factory=list)


def minor_to_decimal(minor: int, decimals: int) -> Decimal:
    """Integer minor units → the exact Decimal amount Amazon gets (JPY: whole yen)."""
    return Decimal(int(minor)).scaleb(-decimals) if decimals else Decimal(int(minor))


def patches_for(row: dict[str, Any], channel: Channel) -> list[dict[str, Any]]:
    """The patchListingsItem patches of one offer row: purchasable_offer always, fulfillment_availability only when a
    quantity may be sent (FBM)."""

    def money(minor: int) -> list[dict[str, Any]]:
        return [{"schedule": [{"value_with_tax": minor_to_decimal(minor, channel.decimals)}]}]

    offer = {
        "marketplace_id": channel.marketplace_id,
        "currency": channel.currency,
        "audience": "ALL",
        "our_price": money(row["price_minor"]),
        "minimum_seller_allowed_price": money(row["min_minor"]),
        "maximum_seller_allowed_price": money(row["max_minor"]),
    }
    patches: list[dict[str, Any]] = [{"op": "replace", "path": "/attributes/purchasable_offer", "value": [offer]}]
    if row.get("quantity") is not None:
        availability: dict[str, Any] = {"fulfillment_channel_code": "DEFAULT", "quantity": int(row["quantity"])}
        if row.get("handling_time_days") is not None:
            availability["lead_time_to_ship_max_days"] = int(row["handling_time_days"])
        patches.append({"op": "replace", "path": "/attributes/fulfillment_availability", "value": [availability]})
    return patches


class PushBusy(RuntimeError):
    """Another push of the same channel held its lock for longer than `PushSettings.lock_wait_seconds`."""


@contextmanager
def _exclusive(channel: str, path: Path | None, wait_seconds: float) -> Iterator[None]:
    """One push of `channel` at a time. In the deployed mode a Postgres advisory lock (session-level, released by
    Postgres if the process dies); else an exclusive lock on `path` (an advisory flock, released by the OS if the
    process dies), or nothing for None."""
    state = state_from_env()
    if state.dsn is not None:
        from resources.postgres import advisory_lock

        with advisory_lock(
            state.dsn,
            f"push:{channel}",
            wait_seconds,
            lambda: PushBusy(
                f"another push of channel {channel} holds its lock; not started after {wait_seconds:.0f} s"
            ),
        ):
            yield
        return
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise PushBusy(f"another push holds {path}; not started after {wait_seconds:.0f} s") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[dict[str, Any]]:
    result = con.execute(sql, params) if params is not None else con.execute(sql)
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


class Push:
    """One push of one channel. `connect()` opens the channel's database (a context manager that closes it); the push
    opens it for each read or write and never across a wait on Amazon. `after_feed_recorded(feed_id)` is called right
    after a feedId is committed to the ledger (tests use it to simulate a run killed there)."""

    def __init__(
        self,
        connect: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]],
        client: SpApiClient,
        channel: Channel,
        *,
        run_id: str,
        settings: PushSettings | None = None,
        now: datetime | None = None,
        after_feed_recorded: Callable[[str], None] | None = None,
        feeds: FeedStore | None = None,
    ) -> None:
        self.connect, self.client, self.channel = connect, client, channel
        self.con: Any = None  # the open connection inside `_open()`, None outside
        self.run_id = run_id
        self.settings = settings or PushSettings()
        self.now = now or datetime.now(UTC)
        self.after_feed_recorded = after_feed_recorded
        self.feeds = feeds  # where the processing reports are kept (None: not kept)
        self.outcomes: dict[str, Outcome] = {}
        self.summary = PushSummary()
        # sku → the offer values sent this run (for published_state and read-back)
        self.sent: dict[str, dict[str, Any]] = {}
        # (submission_id, status, processing_status) of feeds finished this run: marked in the ledger in the same
        # transaction as their SKUs' sync_history rows, so a run that dies in between polls the feed again instead of
        # re-detecting (and resubmitting) its SKUs.
        self.finished: list[tuple[str, str, str]] = []

    @property
    def feed_type(self) -> str:
        return PRICE_QUANTITY if self.settings.legacy_flat_files else FEED_TYPE

    @property
    def _marketplaces(self) -> list[str]:
        """The marketplaces a feed is created for (recorded with the submission: what adoption must match)."""
        return [self.channel.marketplace_id]

    # -- the whole push ---------------------------------------------------------------------------------------------
    @contextmanager
    def _open(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The channel's database, open for this block only (an enclosing block's connection when nested). Never
        call Amazon inside one: DuckDB lets one process at a time hold the file, readers included."""
        if self.con is not None:
            yield self.con
            return
        with self.connect() as con:
            self.con = con
            try:
                yield con
            finally:
                self.con = None

    def run(self, updates: Callable[[duckdb.DuckDBPyConnection], str]) -> PushSummary:
        """Push the offers `updates(con)` exposes on a connection (it returns the relation's name, in the
        `offer_updates` shape); they are copied into `push_updates` once, under the channel's push lock."""
        with self._open() as con:
            path = con.execute(
                "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
            ).fetchall()[0][0]
        # in memory or in the lake (its path names the catalog, not a file): no file to lock beside
        lock = Path(path).with_suffix(".push.lock") if path and Path(path).is_file() else None
        with _exclusive(self.channel.name, lock, self.settings.lock_wait_seconds):
            with self._open() as con:
                ensure_tables(con)
                con.execute(f"CREATE OR REPLACE TABLE push_updates AS SELECT * FROM {updates(con)}")
            self._push()
        return self.summary

    def _push(self) -> None:
        self._resume()
        with self._open() as con:
            # What a resumed feed got accepted is Amazon's state now: the baseline for this run's change detection,
            # so unchanged SKUs are not sent again and values computed since a crash go out in this same run.
            con.register("push_sent", self._confirmed())
            con.execute(_PUBLISH, {"run_id": self.run_id, "now": self.now})
            con.unregister("push_sent")
            self._hold_restricted()
            finished = {submission_id for submission_id, _, _ in self.finished}  # marked done only when written
            open_skus = [
                row
                for row in _rows(
                    con,
                    "SELECT DISTINCT i.sku, i.submission_id FROM submission_items i JOIN submissions s "
                    "USING (submission_id) WHERE s.status IN ('recorded', 'submitted')",
                )
                if row["submission_id"] not in finished
            ]
            # A resumed feed's rejected SKUs keep their outcome for this run; its open ones wait for their feed.
            settled = [sku for sku, outcome in self.outcomes.items() if outcome.status not in ("accepted", "warning")]
            exclude = pa.table({"sku": pa.array([*settled, *(r["sku"] for r in open_skus)], pa.string())})
            con.register("push_exclude", exclude)
            con.execute(f"CREATE OR REPLACE TABLE push_changed AS {changed_offers_sql('push_updates', 'push_exclude')}")
            con.unregister("push_exclude")
            # Never send a price outside the seller's floor and ceiling (pricing clamps; this is the last guard).
            for row in _rows(con, "SELECT sku FROM push_changed WHERE price_minor NOT BETWEEN min_minor AND max_minor"):
                self.outcomes[row["sku"]] = Outcome(row["sku"], "error", "InvalidInput", "price outside [min, max]")
            con.execute("DELETE FROM push_changed WHERE price_minor NOT BETWEEN min_minor AND max_minor")
            count = con.execute("SELECT count(*) FROM push_changed").fetchall()[0][0]
        self.summary.changed = count
        self.summary.path = choose_path(self.channel.use_feed, count, self.settings.feed_threshold)
        if self.summary.path == "feed":
            self._feeds()
        elif self.summary.path == "patch":
            self._patches()
        self._read_back()
        with self._open() as con:
            self._write("push_updates")
            for table in _STAGING:
                con.execute(f"DROP TABLE IF EXISTS {table}")

    def _hold_restricted(self) -> None:
        """SKUs whose last real answer (not a hold) was category_restricted within `restricted_retry_hours` keep that
        outcome this run, with code `restricted_held`, and are not sent."""
        since = self.now - timedelta(hours=self.settings.restricted_retry_hours)
        held = self.con.execute(
            "SELECT sku, max(recorded_at) FROM sync_history WHERE operation = 'submit' AND status <> 'unchanged' "
            "AND code IS DISTINCT FROM $held GROUP BY sku "
            "HAVING arg_max(status, recorded_at) = 'category_restricted' AND max(recorded_at) > $since",
            {"since": since, "held": HELD},
        ).fetchall()
        retry = timedelta(hours=self.settings.restricted_retry_hours)
        for sku, last in held:
            last = last.astimezone(UTC)
            self.outcomes[sku] = Outcome(
                sku,
                "category_restricted",
                HELD,
                f"gated category (answered {last:%Y-%m-%d %H:%M} UTC): not resent before "
                f"{last + retry:%Y-%m-%d %H:%M} UTC; approval in Seller Central is picked up then",
            )

    # -- resuming ---------------------------------------------------------------------------------------------------
    def _resume(self) -> None:
        with self._open() as con:
            open_submissions = _rows(
                con,
                "SELECT * FROM submissions WHERE channel = ? AND status IN ('recorded', 'submitted') "
                "ORDER BY recorded_at",
                [self.channel.name],
            )
        for sub in open_submissions:
            try:
                feed_id = sub["feed_id"] or self._adopt(sub)
            except SpApiError as exc:
                # getFeeds failed past the client's retries: the submission stays open for the next run to look.
                log.warning("feed submission %s: getFeeds failed (%s); looked for next run", sub["submission_id"], exc)
                self._left_open(sub["submission_id"], "feed_unconfirmed", f"getFeeds failed ({exc.code})")
                continue
            if feed_id is None:
                # Died before createFeed answered and Amazon shows no such feed: its SKUs are detected again.
                self._set_status(sub["submission_id"], "abandoned")
                continue
            self.summary.resumed_feeds += 1
            if self._cancel_if_overdue(sub, feed_id):
                continue
            self._finish(sub["submission_id"], feed_id)

    def _cancel_if_overdue(self, sub: dict[str, Any], feed_id: str) -> bool:
        """A feed a previous run left open that Amazon still shows IN_QUEUE longer than `in_queue_deadline` after it
        was submitted is cancelled (cancelFeed: only IN_QUEUE feeds can be) and the submission marked `cancelled` in
        the ledger, committed at once; its SKUs are then detected again and resent by this run. True when cancelled.
        A feed that left IN_QUEUE meanwhile (cancelFeed refused) is polled as usual."""
        since = sub["submitted_at"] or sub["recorded_at"]
        if since is None or (datetime.now(UTC) - since).total_seconds() < self.settings.polling.in_queue_deadline:
            return False
        try:
            status = self.client.get_feed(feed_id).get("processingStatus")
            if status != "IN_QUEUE":
                return False
            self.client.cancel_feed(feed_id)
        except (Throttled, Unauthorized):
            raise
        except SpApiError as exc:
            log.warning("feed %s overdue in IN_QUEUE but not cancelled (%s); polling it", feed_id, exc)
            return False
        log.warning("feed %s still IN_QUEUE past its deadline: cancelled, its SKUs are resent", feed_id)
        self._set_status(sub["submission_id"], "cancelled", "CANCELLED")
        return True

    def _adopt(self, sub: dict[str, Any]) -> str | None:
        """A feed createFeed made for a submission whose feedId was never recorded (its answer lost, or the run died
        before recording it): the earliest feed the ledger does not know whose type and marketplaces are the
        submission's, created since the submission was recorded. Its creation time becomes `submitted_at`."""
        with self._open() as con:
            known = {r["feed_id"] for r in _rows(con, "SELECT feed_id FROM submissions WHERE feed_id IS NOT NULL")}
        # Rows recorded before the ledger kept marketplaces were all sent to the channel's own marketplace.
        marketplaces = sorted(sub["marketplace_ids"] or [self.channel.marketplace_id])
        since = sub["recorded_at"] - _CLOCK_SKEW
        candidates = []
        for feed in self.client.iter_feeds([sub["feed_type"]], marketplace_ids=marketplaces):
            created = feed.get("createdTime")
            if feed.get("feedId") in known or not created or sorted(feed.get("marketplaceIds") or []) != marketplaces:
                continue
            when = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
            if feed.get("feedType") == sub["feed_type"] and when >= since:
                candidates.append((when, str(feed["feedId"])))
        if not candidates:
            return None
        created, feed_id = min(candidates)
        with self._open() as con:
            con.execute(
                "UPDATE submissions SET feed_id = ?, status = 'submitted', submitted_at = ? WHERE submission_id = ?",
                [feed_id, created, sub["submission_id"]],
            )
        return feed_id

    def _set_status(self, submission_id: str, status: str, processing: str | None = None) -> None:
        finished = status not in _OPEN
        with self._open() as con:
            con.execute(
                "UPDATE submissions SET status = ?, processing_status = coalesce(?, processing_status), "
                "finished_at = CASE WHEN ? THEN ? END, finished_run_id = CASE WHEN ? THEN ? END "
                "WHERE submission_id = ?",
                [status, processing, finished, self.now, finished, self.run_id, submission_id],
            )

    # -- feeds ------------------------------------------------------------------------------------------------------
    def _feeds(self) -> None:
        size = self.settings.max_messages
        submitted: list[tuple[str, str]] = []
        stop: SpApiError | None = None
        # The documents stream from a query on one connection, which must not stay open while they are submitted:
        # spool them to disk first, then record and submit each one.
        with tempfile.TemporaryDirectory(dir=self._spool_dir()) as spool:
            spooled = []
            with self._open() as con:
                con.execute(
                    "CREATE OR REPLACE TABLE push_numbered AS SELECT *, row_number() OVER (ORDER BY sku) AS message_id "
                    "FROM push_changed"
                )
                for number, (document, count) in enumerate(self._documents(size), start=1):
                    path = Path(spool) / f"{number:05d}"
                    path.write_bytes(document)
                    spooled.append((path, count))
            for number, (path, count) in enumerate(spooled, start=1):
                document = path.read_bytes()
                first = (number - 1) * size + 1
                if stop is not None:
                    self._not_submitted(first, first + count - 1, stop)
                    continue
                submission_id = self._record(document, first, first + count - 1)
                if submission_id is None:
                    continue
                try:
                    feed_id = self._submit(submission_id, document)
                except SpApiError as exc:
                    stop = exc
                    self._unconfirmed(submission_id, exc)
                    continue
                submitted.append((submission_id, feed_id))
        for submission_id, feed_id in submitted:
            self._finish(submission_id, feed_id)

    def _spool_dir(self) -> Path | None:
        return self.feeds.spool_dir() if self.feeds is not None else None

    def _documents(self, size: int):
        channel = self.channel
        if not self.settings.legacy_flat_files:
            yield from listings_feed_documents(
                self.con,
                "push_changed",
                seller_id=channel.seller_id,
                marketplace_id=channel.marketplace_id,
                currency=channel.currency,
                decimals=channel.decimals,
                max_messages=size,
            )
            return
        total = self.con.execute("SELECT count(*) FROM push_numbered").fetchall()[0][0]
        with tempfile.TemporaryDirectory(dir=self._spool_dir()) as tmp:
            for start in range(0, total, size):
                view = f"push_flat_{start}"
                self.con.execute(
                    f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM push_numbered "
                    f"WHERE message_id > {start} AND message_id <= {start + size}"
                )
                path = Path(tmp) / f"{view}.txt"
                rows = write_flat_file(
                    self.con,
                    PRICE_QUANTITY,
                    view,
                    path,
                    decimals=channel.decimals,
                    fba_code=FBA_CHANNEL_CODE[channel.region],
                )
                yield path.read_bytes(), rows

    def _record(self, document: bytes, first: int, last: int) -> str | None:
        """Write the submission (hash, SKUs and values) before createFeed; None when identical content is open."""
        digest = hashlib.sha256(self.feed_type.encode() + b"\0" + document).hexdigest()
        with self._open() as con:
            duplicate = con.execute(
                "SELECT feed_id FROM submissions WHERE content_hash = ? AND status IN ('recorded', 'submitted')",
                [digest],
            ).fetchall()
            if duplicate:
                return None
            submission_id = uuid.uuid4().hex
            for attempt in transaction(con):
                with attempt:
                    con.execute(
                        "INSERT INTO submissions (submission_id, channel, feed_type, marketplace_ids, content_hash, "
                        "messages, status, run_id, recorded_at) VALUES (?, ?, ?, ?, ?, ?, 'recorded', ?, ?)",
                        [
                            submission_id,
                            self.channel.name,
                            self.feed_type,
                            self._marketplaces,
                            digest,
                            last - first + 1,
                            self.run_id,
                            self.now,
                        ],
                    )
                    con.execute(
                        f"INSERT INTO submission_items SELECT ?, message_id - ? + 1, {OFFER_COLUMNS} "
                        "FROM push_numbered WHERE message_id BETWEEN ? AND ?",
                        [submission_id, first, first, last],
                    )
        return submission_id

    def _submit(self, submission_id: str, document: bytes) -> str:
        content_type = TSV_CONTENT_TYPE if self.settings.legacy_flat_files else JSON_CONTENT_TYPE
        feed_id = self.client.submit_feed(self.feed_type, self._marketplaces, document, content_type=content_type)
        with self._open() as con:
            con.execute(
                "UPDATE submissions SET feed_id = ?, status = 'submitted', submitted_at = ? WHERE submission_id = ?",
                [feed_id, datetime.now(UTC), submission_id],
            )
        self.summary.feeds_submitted += 1
        self.summary.feed_ids.append(feed_id)
        if self.after_feed_recorded is not None:
            self.after_feed_recorded(feed_id)
        return feed_id

    def _unconfirmed(self, submission_id: str, exc: SpApiError) -> None:
        """createFeed (or the upload before it) failed. Throttled/Unauthorized: nothing was created, the SKUs are
        `deferred`. Otherwise Amazon may have created the feed without us hearing the answer (the client does not
        resend createFeed once it may have reached Amazon): the submission stays `recorded` (the next run adopts the
        feed or, when Amazon shows none, abandons it and resends) and its SKUs are `pending`."""
        with self._open() as con:
            items = _rows(con, "SELECT sku FROM submission_items WHERE submission_id = ?", [submission_id])
        if isinstance(exc, Throttled | Unauthorized):
            self._set_status(submission_id, "abandoned")
            for row in items:
                self.outcomes[row["sku"]] = from_error(row["sku"], exc)
            return
        log.warning("feed submission %s unconfirmed: %s", submission_id, exc)
        for row in items:
            self.outcomes[row["sku"]] = Outcome(
                row["sku"], "pending", "feed_unconfirmed", f"createFeed not confirmed ({exc.code}); checked next run"
            )

    def _left_open(self, submission_id: str, code: str, reason: str) -> None:
        """The submission stays open in the ledger for the next run; its SKUs are `pending` this run."""
        with self._open() as con:
            items = _rows(con, "SELECT sku FROM submission_items WHERE submission_id = ?", [submission_id])
        for row in items:
            self.outcomes[row["sku"]] = Outcome(row["sku"], "pending", code, f"{reason}; checked next run")

    def _not_submitted(self, first: int, last: int, exc: SpApiError) -> None:
        """Documents after a failed submission are not sent this run: their SKUs are `deferred`."""
        with self._open() as con:
            rows = _rows(con, "SELECT sku FROM push_numbered WHERE message_id BETWEEN ? AND ?", [first, last])
        for row in rows:
            outcome = from_error(row["sku"], exc)
            if outcome.status != "deferred":
                outcome = Outcome(row["sku"], "deferred", outcome.code, "not sent this run: " + (outcome.message or ""))
            self.outcomes[row["sku"]] = outcome

    def _finish(self, submission_id: str, feed_id: str) -> None:
        """Poll the feed, read its report (kept as `reports/<feed_id>.json` in the feeds folder, for the S3 archive)
        and turn it into one outcome per SKU it carried."""
        with self._open() as con:
            items = _rows(
                con,
                f"SELECT message_id, {OFFER_COLUMNS} FROM submission_items WHERE submission_id = ? ORDER BY message_id",
                [submission_id],
            )
        by_message = {row["message_id"]: row["sku"] for row in items}
        try:
            result = self.client.finish_feed(
                feed_id, marketplace_ids=[self.channel.marketplace_id], polling=self.settings.polling
            )
        except SpApiError as exc:
            # getFeed, getFeedDocument or the report download failed past the client's retries (a burst of 5xx, a
            # throttle, a dropped connection): the feed exists on Amazon's side, so it stays open in the ledger and
            # the next run polls it, as after a crash.
            log.warning("feed %s not read this run (%s); polled next run", feed_id, exc)
            self._left_open(submission_id, "feed_unread", f"feed {feed_id}: {exc.code} in {exc.operation}")
            return
        if result.stuck:
            for row in items:
                self.outcomes[row["sku"]] = Outcome(
                    row["sku"], "pending", "feed_in_progress", f"feed {feed_id} still {result.processing_status}"
                )
            return
        if result.report_text is not None and self.feeds is not None:
            write_report(self.feeds, feed_id, result.report_text)
        for outcome in from_report(by_message, result.rows, result.processing_status):
            self.outcomes[outcome.sku] = outcome
        for row in items:
            self.sent[row["sku"]] = {**row, "via": f"feed:{feed_id}"}
        status = "done" if result.processing_status == "DONE" else result.processing_status.lower()
        self.finished.append((submission_id, status, result.processing_status))

    # -- patches ----------------------------------------------------------------------------------------------------
    def _patches(self) -> None:
        with self._open() as con:
            rows = _rows(con, f"SELECT {OFFER_COLUMNS} FROM push_changed ORDER BY sku")
        stop: Outcome | None = None
        for row in rows:
            sku = row["sku"]
            if stop is not None:
                self.outcomes[sku] = Outcome(sku, stop.status, stop.code, "not sent this run: " + (stop.message or ""))
                continue
            try:
                answer = self.client.patch_listings_item(
                    sku, [self.channel.marketplace_id], patches=patches_for(row, self.channel)
                )
            except (Throttled, Unauthorized) as exc:
                # A spent quota or revoked access ends the push cleanly; the rest is sent next run.
                stop = from_error(sku, exc)
                self.outcomes[sku] = stop
                continue
            except (ServerError, SpApiTimeout) as exc:
                # The answer was lost (5xx or no answer past the client's retries): Amazon may have applied the
                # patch. A patch is a replace, so reading the listing back tells.
                self.outcomes[sku] = self._settle_patch(sku, row, exc)
                continue
            except SpApiError as exc:
                self.outcomes[sku] = from_error(sku, exc)
                continue
            self.summary.patches_sent += 1
            self.outcomes[sku] = from_issues(sku, answer)
            self.sent[sku] = {**row, "via": f"patch:{answer.get('submissionId', '')}"}

    def _settle_patch(self, sku: str, row: dict[str, Any], exc: SpApiError) -> Outcome:
        """A patch whose answer was lost, settled with getListingsItem: `accepted` when Amazon shows the values sent
        (then recorded as sent and published), the patch's error when it shows others (nothing applied: resent next
        run), `pending` when the listing cannot be read either (resent next run: a replace is harmless twice)."""
        try:
            item = self.client.get_listings_item(sku, [self.channel.marketplace_id], included_data=["attributes"])
        except SpApiError as unread:
            return Outcome(
                sku,
                "pending",
                "answer_lost",
                f"patchListingsItem answered {exc.code}, getListingsItem {unread.code}: resent next run",
            )
        self.summary.read_back += 1
        if self._differs(row, item.get("attributes") or {}) is not None:
            return from_error(sku, exc)
        self.sent[sku] = {**row, "via": "patch:read-back"}
        shown = f"patchListingsItem answered {exc.code}; getListingsItem shows it applied"
        return Outcome(sku, "accepted", None, shown)

    # -- read-back --------------------------------------------------------------------------------------------------
    def _read_back(self) -> None:
        accepted = sorted(
            (o.sku for o in self.outcomes.values() if o.status == "accepted" and o.sku in self.sent),
            key=lambda sku: hashlib.md5(f"{self.run_id}:{sku}".encode()).hexdigest(),
        )
        warned = [o.sku for o in self.outcomes.values() if o.status == "warning" and o.sku in self.sent]
        for sku in [*warned, *accepted[: self.settings.readback_sample]]:
            try:
                item = self.client.get_listings_item(sku, [self.channel.marketplace_id], included_data=["attributes"])
            except Throttled:
                log.warning("read-back stopped: quota spent")
                return
            except SpApiError as exc:
                self.outcomes[sku] = Outcome(sku, "not_applied", exc.code, f"read-back failed: {exc.message}")
                continue
            self.summary.read_back += 1
            problem = self._differs(self.sent[sku], item.get("attributes") or {})
            if problem:
                self.outcomes[sku] = Outcome(sku, "not_applied", "not_applied", problem)

    def _differs(self, sent: dict[str, Any], attributes: dict[str, Any]) -> str | None:
        decimals = self.channel.decimals
        want = minor_to_decimal(sent["price_minor"], decimals)
        try:
            shown = Decimal(str(attributes["purchasable_offer"][0]["our_price"][0]["schedule"][0]["value_with_tax"]))
        except (KeyError, IndexError, TypeError):
            shown = None
        problems = []
        if shown != want:
            problems.append(f"price on Amazon {shown}, accepted {want}")
        if sent.get("quantity") is not None:
            try:
                quantity = attributes["fulfillment_availability"][0].get("quantity")
            except (KeyError, IndexError, AttributeError):
                quantity = None
            if quantity is None or int(quantity) != int(sent["quantity"]):
                problems.append(f"quantity on Amazon {quantity}, accepted {sent['quantity']}")
        return "; ".join(problems) or None

    # -- recording --------------------------------------------------------------------------------------------------
    def _confirmed(self) -> pa.Table:
        """The values Amazon accepted this run (every SKU sent with an `accepted` or `warning` outcome)."""
        rows = [
            {k: v for k, v in row.items() if k != "message_id"}
            for sku, row in self.sent.items()
            if self.outcomes.get(sku, Outcome(sku, "")).status in ("accepted", "warning")
        ]
        return pa.Table.from_pylist(rows, schema=_SENT_SCHEMA)

    def _write(self, updates: str) -> None:
        outcomes = pa.Table.from_pylist(
            [{"sku": o.sku, "status": o.status, "code": o.code, "message": o.message} for o in self.outcomes.values()],
            schema=_OUTCOME_SCHEMA,
        )
        sent = self._confirmed()
        self.con.register("push_outcomes", outcomes)
        self.con.register("push_sent", sent)
        params = {"channel": self.channel.name, "run_id": self.run_id, "now": self.now}
        for attempt in transaction(self.con):
            with attempt:
                for submission_id, status, processing in self.finished:
                    self._set_status(submission_id, status, processing)
                self.con.execute(_PUBLISH, {"run_id": self.run_id, "now": self.now})
                self.con.execute(
                    "DELETE FROM published_state "
                    "WHERE sku IN (SELECT sku FROM push_outcomes WHERE status = 'not_applied')"
                )
                self.con.execute(
                    "DELETE FROM sync_history WHERE run_id = $run_id AND operation = 'submit'", {"run_id": self.run_id}
                )
                self.con.execute(
                    "INSERT INTO sync_history SELECT $channel, o.sku, u.asin, 'submit', o.status, o.code, o.message, "
                    f"$run_id, $now FROM push_outcomes o LEFT JOIN {updates} u USING (sku)",
                    params,
                )
                self.con.execute(
                    "INSERT INTO sync_history SELECT $channel, u.sku, u.asin, 'submit', 'unchanged', NULL, NULL, "
                    f"$run_id, $now FROM {updates} u WHERE u.sku NOT IN (SELECT sku FROM push_outcomes)",
                    params,
                )
        self.con.unregister("push_outcomes")
        self.con.unregister("push_sent")
        self.summary.statuses = dict(
            self.con.execute(
                "SELECT status, count(*) FROM sync_history WHERE run_id = $run_id AND operation = 'submit' "
                "GROUP BY ALL ORDER BY 1",
                {"run_id": self.run_id},
            ).fetchall()
        )
