"""Competitor offers as observations: the channel's `offer_observations` and `offer_snapshots`, what they say now, and
which ASINs the budgeted pull should ask Amazon about next.

Three sources feed them: ANY_OFFER_CHANGED notifications (stored by the sensor, imported here), getItemOffersBatch
answers (`pull`) and the seller's `competitor_prices` file (`file`). An Amazon snapshot (a notification or a pulled
ASIN) lists every offer on the ASIN (up to 20), so a competitor missing from an ASIN's newest snapshot has left; the
file's rows are the seller's own sightings and merge in per (ASIN, seller), newest first. Observations are append-only
(only the retention deletes them); money is DECIMAL(18,2), never a float.

Dagster-free: every function takes an open DuckDB connection to the channel's database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import duckdb
import pyarrow as pa

from resources.transaction import transaction

__all__ = [
    "OBSERVATION_SCHEMA",
    "SNAPSHOT_SCHEMA",
    "SOURCES",
    "age_stats",
    "append",
    "append_file",
    "apply_retention",
    "ensure_tables",
    "import_notified",
    "load_notified",
    "lower_keys",
    "notified_since",
    "offer_fields",
    "pull_plan",
    "summary_fields",
    "write_current",
]

SOURCES = ("notification", "pull", "file")

# What the parsers hand over: money and ratings as exact decimal strings (cast to DECIMAL in SQL), times as UTC.
OBSERVATION_SCHEMA = pa.schema(
    [
        ("asin", pa.string()),
        ("seller_id", pa.string()),
        ("observed_at", pa.timestamp("us", tz="UTC")),
        ("price", pa.string()),
        ("shipping", pa.string()),
        ("fulfillment", pa.string()),
        ("is_featured_merchant", pa.bool_()),
        ("is_buybox_winner", pa.bool_()),
        ("feedback_rating", pa.string()),
        ("feedback_count", pa.int64()),
        ("is_prime", pa.bool_()),
    ]
)
SNAPSHOT_SCHEMA = pa.schema(
    [
        ("asin", pa.string()),
        ("observed_at", pa.timestamp("us", tz="UTC")),
        ("status", pa.string()),
        ("number_of_offers", pa.int64()),
        ("buybox_landed_price", pa.string()),
        ("lowest_landed_price", pa.string()),
        ("competitive_price_threshold", pa.string()),
        ("our_buybox", pa.bool_()),
    ]
)

_TABLES = """
CREATE TABLE IF NOT EXISTS offer_observations (
    asin VARCHAR NOT NULL, seller_id VARCHAR NOT NULL, observed_at TIMESTAMPTZ NOT NULL,
    price DECIMAL(18,2) NOT NULL, shipping DECIMAL(18,2) NOT NULL, fulfillment VARCHAR NOT NULL,
    is_featured_merchant BOOLEAN, is_buybox_winner BOOLEAN, feedback_rating DECIMAL(6,2), feedback_count BIGINT,
    is_prime BOOLEAN, source VARCHAR NOT NULL, recorded_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS offer_snapshots (
    asin VARCHAR NOT NULL, observed_at TIMESTAMPTZ NOT NULL, source VARCHAR NOT NULL, status VARCHAR NOT NULL,
    number_of_offers BIGINT, buybox_landed_price DECIMAL(18,2), lowest_landed_price DECIMAL(18,2),
    competitive_price_threshold DECIMAL(18,2), our_buybox BOOLEAN, recorded_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS offer_imports (source VARCHAR NOT NULL, received_through TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS offer_file_imports (version VARCHAR NOT NULL, imported_at TIMESTAMPTZ NOT NULL);
"""

# The sensor stamps a batch's received_at before it waits for the store, so a batch may commit with an older stamp
# than one committed just before it: each import looks this far behind its mark (the key dedup absorbs the overlap).
IMPORT_OVERLAP = timedelta(minutes=10)


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create `offer_observations`, `offer_snapshots` and the import mark (no-op when present)."""
    con.execute(_TABLES)


# --- one offer and one summary, from Amazon's documents (keys lower-cased) -------------------------------------------


def lower_keys(value: Any) -> Any:
    """The document with every object key lower-cased: notifications are PascalCase, getItemOffers mixes casings."""
    if isinstance(value, dict):
        return {str(k).lower(): lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lower_keys(v) for v in value]
    return value


def _decimal(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return str(number) if number.is_finite() else None


def _amount(money: Any) -> str | None:
    return _decimal(money.get("amount")) if isinstance(money, Mapping) else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def offer_fields(offer: Mapping[str, Any]) -> dict[str, Any] | None:
    """One offer of an ANY_OFFER_CHANGED payload or a getItemOffers result (keys lower-cased) as observation fields
    (without asin and observed_at); None when it has no seller or no listing price."""
    seller, price = offer.get("sellerid"), _amount(offer.get("listingprice"))
    if not isinstance(seller, str) or not seller.strip() or price is None:
        return None
    feedback = offer.get("sellerfeedbackrating") or {}
    prime = offer.get("primeinformation") or {}
    count = feedback.get("feedbackcount") if isinstance(feedback, Mapping) else None
    return {
        "seller_id": seller.strip(),
        "price": price,
        "shipping": _amount(offer.get("shipping")) or "0",
        "fulfillment": "FBA" if offer.get("isfulfilledbyamazon") is True else "FBM",
        "is_featured_merchant": _flag(offer.get("isfeaturedmerchant")),
        "is_buybox_winner": _flag(offer.get("isbuyboxwinner")),
        "feedback_rating": _decimal(feedback.get("sellerpositivefeedbackrating"))
        if isinstance(feedback, Mapping)
        else None,
        "feedback_count": count if isinstance(count, int) and not isinstance(count, bool) else None,
        # the notification says IsOfferPrime, getItemOffers IsPrime
        "is_prime": _flag(prime.get("isofferprime", prime.get("isprime"))) if isinstance(prime, Mapping) else None,
    }


def _landed(entry: Any) -> Decimal | None:
    value = _amount(entry.get("landedprice")) if isinstance(entry, Mapping) else None
    return Decimal(value) if value is not None else None


def summary_fields(
    summary: Mapping[str, Any], offers: Sequence[Mapping[str, Any]], seller_id: str, condition: str = "new"
) -> dict[str, Any]:
    """The snapshot fields of an offers Summary (keys lower-cased) and the offers parsed by `offer_fields`.

    number_of_offers sums NumberOfOffers (one count per condition and fulfillment channel); the Buy Box and lowest
    landed prices are those of `condition` when Amazon lists several. our_buybox: our offer's IsBuyBoxWinner when the
    document carries that flag (AnyOfferChangedNotification's schema omits it, though Amazon sends it); otherwise
    whether our offer's landed price equals the Buy Box landed price. No offer of ours or no Buy Box: false."""

    def matching(entries: Any) -> list[Any]:
        entries = [e for e in entries if isinstance(e, Mapping)] if isinstance(entries, list) else []
        same = [e for e in entries if str(e.get("condition", condition)).lower() == condition.lower()]
        return same or entries

    counts = summary.get("numberofoffers")
    number = None
    if isinstance(counts, list):
        number = sum(c.get("offercount") or 0 for c in counts if isinstance(c, Mapping))
    elif isinstance(summary.get("totaloffercount"), int):
        number = summary["totaloffercount"]
    buybox = next((p for p in (_landed(e) for e in matching(summary.get("buyboxprices"))) if p is not None), None)
    lowest = [p for p in (_landed(e) for e in matching(summary.get("lowestprices"))) if p is not None]
    ours = next((o for o in offers if o["seller_id"] == seller_id), None)
    if ours is None or buybox is None:
        our_buybox = False
    elif ours["is_buybox_winner"] is not None:
        our_buybox = ours["is_buybox_winner"]
    else:
        our_buybox = Decimal(ours["price"]) + Decimal(ours["shipping"]) == buybox
    return {
        "number_of_offers": number,
        "buybox_landed_price": str(buybox) if buybox is not None else None,
        "lowest_landed_price": str(min(lowest)) if lowest else None,
        "competitive_price_threshold": _amount(summary.get("competitivepricethreshold")),
        "our_buybox": our_buybox,
    }


# --- appending ---------------------------------------------------------------------------------------------------

_APPEND_OBSERVATIONS = """
INSERT INTO offer_observations
SELECT DISTINCT ON (asin, seller_id, observed_at)
       asin, seller_id, observed_at, CAST(price AS DECIMAL(18,2)), CAST(shipping AS DECIMAL(18,2)), fulfillment,
       is_featured_merchant, is_buybox_winner, CAST(feedback_rating AS DECIMAL(6,2)), feedback_count, is_prime,
       $source, $now
FROM incoming_observations i
WHERE observed_at >= $keep_since
  AND NOT EXISTS (SELECT 1 FROM offer_observations o WHERE o.asin = i.asin AND o.seller_id = i.seller_id
                  AND o.observed_at = i.observed_at AND o.source = $source)
ORDER BY asin, seller_id, observed_at
"""
# A notification is one event per (ASIN, TimeOfOfferChange): a redelivered or re-imported one adds nothing. A pulled
# ASIN is a new event each time it is asked (Amazon's OffersAvailableTime may repeat), so the plan sees it was asked.
# Staged in a temp table (a DuckLake has no INSERT ... RETURNING): the ASIN of each snapshot added is read back.
_NEW_SNAPSHOTS = "_new_offer_snapshots"
_APPEND_SNAPSHOTS = f"""
CREATE OR REPLACE TEMP TABLE {_NEW_SNAPSHOTS} AS
SELECT DISTINCT ON (asin, observed_at, status)
       asin, observed_at, $source, status, number_of_offers, CAST(buybox_landed_price AS DECIMAL(18,2)),
       CAST(lowest_landed_price AS DECIMAL(18,2)), CAST(competitive_price_threshold AS DECIMAL(18,2)), our_buybox,
       $now
FROM incoming_snapshots i
WHERE observed_at >= $keep_since
  AND ($source = 'pull' OR NOT EXISTS (SELECT 1 FROM offer_snapshots s WHERE s.asin = i.asin
                                       AND s.observed_at = i.observed_at AND s.source = $source))
ORDER BY asin, observed_at, status
"""


def append(
    con: duckdb.DuckDBPyConnection,
    source: str,
    observations: pa.Table,
    snapshots: pa.Table,
    now: datetime,
    retention_days: int,
) -> tuple[int, list[str]]:
    """Append observations and snapshots of one `source` (OBSERVATION_SCHEMA / SNAPSHOT_SCHEMA columns), skipping
    what is already there and what the retention would delete. Returns the observations added and the ASIN of each
    snapshot added."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    params = {"source": source, "now": now, "keep_since": now - timedelta(days=retention_days)}
    con.register("incoming_observations", observations.select(OBSERVATION_SCHEMA.names))
    con.register("incoming_snapshots", snapshots.select(SNAPSHOT_SCHEMA.names))
    try:
        added_obs = con.execute(_APPEND_OBSERVATIONS, params).fetchall()[0][0]
        con.execute(_APPEND_SNAPSHOTS, params)
        con.execute(f"INSERT INTO offer_snapshots SELECT * FROM temp.{_NEW_SNAPSHOTS}")
        added_snaps = [r[0] for r in con.execute(f"SELECT asin FROM temp.{_NEW_SNAPSHOTS}").fetchall()]
        con.execute(f"DROP TABLE temp.{_NEW_SNAPSHOTS}")
    finally:
        con.unregister("incoming_observations")
        con.unregister("incoming_snapshots")
    return added_obs, added_snaps


def append_file(
    con: duckdb.DuckDBPyConnection, file_table: str, now: datetime, retention_days: int, version: str | None = None
) -> int:
    """The seller's `competitor_prices` rows (table `file_table`: asin, seller_id, price, shipping, fulfillment,
    observed_at) as `file` observations, our own offers included; the file has no snapshots. Appended in SQL from the
    table itself (millions of rows at a large catalogue: no trip through Arrow). With `version` (the file's hash), a
    version appended last time is not read again: it would add nothing (its rows are there, or past the retention)."""
    if version is not None:
        ensure_tables(con)
        last = con.execute("SELECT version FROM offer_file_imports").fetchall()
        if [r[0] for r in last] == [version]:
            return 0
    params = {"source": "file", "now": now, "keep_since": now - timedelta(days=retention_days)}
    con.execute(
        "CREATE OR REPLACE TEMP VIEW incoming_observations AS SELECT asin, seller_id, observed_at, price, shipping, "
        "fulfillment, NULL::BOOLEAN AS is_featured_merchant, NULL::BOOLEAN AS is_buybox_winner, "
        "NULL::DECIMAL(6,2) AS feedback_rating, NULL::BIGINT AS feedback_count, NULL::BOOLEAN AS is_prime "
        f'FROM "{file_table}"'
    )
    try:
        added = con.execute(_APPEND_OBSERVATIONS, params).fetchall()[0][0]
    finally:
        con.execute("DROP VIEW temp.incoming_observations")
    if version is not None:
        con.execute("DELETE FROM offer_file_imports")
        con.execute("INSERT INTO offer_file_imports VALUES ($version, $now)", {"version": version, "now": now})
    return added


# --- the notification store --------------------------------------------------------------------------------------

_STORE_OFFERS = """
SELECT o.asin, o.seller_id, o.event_time AS observed_at, o.price, o.shipping, o.fulfillment, o.is_featured_merchant,
       o.is_buybox_winner, o.feedback_rating, o.feedback_count, o.is_prime
FROM offer_change_offers o JOIN notifications n USING (notification_id, channel)
WHERE o.channel = $channel AND n.received_at > $since
"""
_STORE_SUMMARIES = """
SELECT s.asin, s.event_time AS observed_at, 'ok' AS status, s.number_of_offers, s.buybox_landed_price,
       s.lowest_landed_price, s.competitive_price_threshold, s.our_buybox
FROM offer_change_summaries s JOIN notifications n USING (notification_id, channel)
WHERE s.channel = $channel AND n.received_at > $since
"""


# One row per source (MERGE INTO: no PRIMARY KEY, which a DuckLake does not have); the mark never moves back.
_MARK = """
MERGE INTO offer_imports i USING (SELECT 'notification' AS source, $newest::TIMESTAMPTZ AS received_through) s
ON i.source = s.source
WHEN MATCHED THEN UPDATE SET received_through = greatest(i.received_through, s.received_through)
WHEN NOT MATCHED THEN INSERT VALUES (s.source, s.received_through)
"""


def notified_since(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The received_at from which the next import reads the notification store (the mark minus the overlap)."""
    found = con.execute("SELECT received_through FROM offer_imports WHERE source = 'notification'").fetchall()
    return found[0][0] - IMPORT_OVERLAP if found else None


def load_notified(
    store: duckdb.DuckDBPyConnection, channel: str, since: datetime | None
) -> tuple[pa.Table, pa.Table, datetime | None]:
    """The channel's ANY_OFFER_CHANGED detail rows received after `since` (None: all), from the notification store:
    (observations, snapshots, the newest received_at read). A store without the offer tables yet reads as empty."""
    present = store.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = current_schema() AND table_name IN "
        "('notifications', 'offer_change_offers', 'offer_change_summaries')"
    ).fetchall()[0][0]
    if present < 3:
        return OBSERVATION_SCHEMA.empty_table(), SNAPSHOT_SCHEMA.empty_table(), None
    params = {"channel": channel, "since": since or datetime(1970, 1, 1, tzinfo=UTC)}
    offers = store.sql(_STORE_OFFERS, params=params).to_arrow_table().cast(OBSERVATION_SCHEMA)
    summaries = store.sql(_STORE_SUMMARIES, params=params).to_arrow_table().cast(SNAPSHOT_SCHEMA)
    newest = store.execute(
        "SELECT max(n.received_at) FROM offer_change_summaries s JOIN notifications n USING (notification_id, channel) "
        "WHERE s.channel = $channel AND n.received_at > $since",
        params,
    ).fetchall()[0][0]
    return offers, summaries, newest


def import_notified(
    con: duckdb.DuckDBPyConnection,
    observations: pa.Table,
    snapshots: pa.Table,
    newest: datetime | None,
    now: datetime,
    retention_days: int,
) -> int:
    """Append what `load_notified` read and move the import mark; returns the ASINs with a new notified snapshot.
    Two imports of one channel at once (the pull's and a prices run's) both move the mark: in a DuckLake the later
    commit conflicts and runs again, so it skips what the other appended."""
    for attempt in transaction(con):
        with attempt:
            asins = len(set(append(con, "notification", observations, snapshots, now, retention_days)[1]))
            if newest is not None:
                con.execute(_MARK, {"newest": newest})
    return asins


# --- retention, the current picture, the plan, ages ---------------------------------------------------------------


def apply_retention(con: duckdb.DuckDBPyConnection, now: datetime, retention_days: int) -> int:
    """Delete observations and snapshots observed more than `retention_days` before `now`; returns rows deleted."""
    cutoff = {"cutoff": now - timedelta(days=retention_days)}
    gone = con.execute("DELETE FROM offer_observations WHERE observed_at < $cutoff", cutoff).fetchall()[0][0]
    return gone + con.execute("DELETE FROM offer_snapshots WHERE observed_at < $cutoff", cutoff).fetchall()[0][0]


_CURRENT = """
CREATE OR REPLACE TABLE "{table}" AS
WITH newest AS (
    SELECT asin, observed_at, source FROM offer_snapshots
    WHERE status = 'ok' AND source IN ('notification', 'pull')
    QUALIFY row_number() OVER (PARTITION BY asin ORDER BY observed_at DESC, recorded_at DESC, source) = 1
), amazon AS (
    SELECT o.asin, o.seller_id, o.price, o.shipping, o.fulfillment, o.observed_at, o.is_featured_merchant,
           o.feedback_rating, o.feedback_count, NULL::BIGINT AS _row, 1 AS preference
    FROM offer_observations o JOIN newest n USING (asin, observed_at, source)
), seen AS (
    SELECT * FROM amazon
    UNION ALL BY NAME
    SELECT asin, seller_id, price, shipping, fulfillment, observed_at, _row, 0 AS preference FROM "{file_table}"
)
SELECT $channel AS channel, asin, seller_id, price, shipping, fulfillment, observed_at, _row,
       is_featured_merchant, feedback_rating, feedback_count
FROM seen
WHERE seller_id <> $seller_id
QUALIFY row_number() OVER (PARTITION BY asin, seller_id ORDER BY observed_at DESC, preference, _row) = 1
ORDER BY asin, seller_id
"""


def write_current(con: duckdb.DuckDBPyConnection, table: str, channel: str, seller_id: str, file_table: str) -> int:
    """Table `table` (the `competitor_prices` columns) becomes the offers as they stand: per ASIN, the offers of its
    newest Amazon snapshot (notification or pull, status ok), merged with the file's rows (`file_table`, with its
    `_row`); per (ASIN, seller) the newest wins (the file on a tie); our own offers left out. Amazon's offers keep
    is_featured_merchant, feedback_rating and feedback_count for the competitor filters (NULL on the file's rows).
    Freshness is the pricing rule's to apply (at the run's own `as_of`). Returns the rows written."""
    sql = _CURRENT.format(table=table, file_table=file_table)
    con.execute(sql, {"channel": channel, "seller_id": seller_id})
    return con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]


_NEWEST = """
SELECT m.asin, max(s.recorded_at) AS asked_at
FROM (SELECT DISTINCT asin FROM "{mapped}" WHERE asin IS NOT NULL) m
LEFT JOIN offer_snapshots s ON s.asin = m.asin AND s.source IN ('notification', 'pull')
GROUP BY m.asin
"""


def pull_plan(con: duckdb.DuckDBPyConnection, mapped: str = "channel_mappings") -> list[str]:
    """The mapped ASINs (table `mapped`) in the order the pull should ask for them: never observed first, then by
    their newest Amazon snapshot of any status (a failed pull counts: it is not retried ahead of the others), by when
    we got it (`recorded_at`, our clock: a pull whose OffersAvailableTime did not move still counts); ties by ASIN."""
    rows = con.execute(
        f"SELECT asin FROM ({_NEWEST.format(mapped=mapped)}) ORDER BY asked_at ASC NULLS FIRST, asin"
    ).fetchall()
    return [r[0] for r in rows]


_AGES = """
WITH mapped AS (SELECT DISTINCT asin FROM "{mapped}" WHERE asin IS NOT NULL),
newest AS (
    SELECT m.asin, max(s.observed_at) AS observed_at
    FROM mapped m LEFT JOIN offer_snapshots s ON s.asin = m.asin AND s.status = 'ok'
    GROUP BY m.asin
), ages AS (SELECT asin, epoch($now::TIMESTAMPTZ - observed_at) / 60.0 AS minutes FROM newest)
SELECT count(*) AS mapped,
       count(*) FILTER (WHERE minutes IS NULL) AS never_observed,
       count(*) FILTER (WHERE minutes > $freshness_hours * 60) AS beyond_freshness,
       quantile_cont(minutes, 0.5) AS p50, quantile_cont(minutes, 0.95) AS p95, max(minutes) AS max
FROM ages
"""


def age_stats(
    con: duckdb.DuckDBPyConnection, now: datetime, freshness_hours: int, mapped: str = "channel_mappings"
) -> dict[str, Any]:
    """How old Amazon's newest observation (an ok snapshot) of each mapped ASIN is at `now`, in minutes (p50, p95,
    max over the observed ASINs; None when none is), the ASINs never observed and those observed more than
    `freshness_hours` ago."""
    row = con.execute(_AGES.format(mapped=mapped), {"now": now, "freshness_hours": freshness_hours}).fetchall()[0]
    names = ("mapped", "never_observed", "beyond_freshness", "p50_minutes", "p95_minutes", "max_minutes")
    return dict(zip(names, row, strict=True))
