"""`channel_status`: one channel's health at a glance, with its seller's other channels beside it, and the freshness
checks that turn the key assets red in the UI when a channel has not synced within its interval.

Read-only over what the runs recorded: the Dagster instance (materializations of the pulls, the push and the order
poll, with the SP-API resource's counters in their metadata; the step failures of the channel's failed runs and of
its enable_channel runs), and the channel's DuckDB file (sync_history, the submissions ledger, offer_snapshots). The
verdict itself is `sync.status`'s (Dagster-free). Both run in `channel_status_job` (every 5 minutes per enabled
channel), never inside a sync run: a sync step that fails (a revoked grant fails the first SP-API step) skips every
step after it in that run, and staleness is time passing with no sync run at all.
"""

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from pipelines.enablement import ENABLE_JOB, enabled_channels
from pipelines.partitions import CHANNELS, channel_for, channel_partitions
from resources.warehouse import Warehouse, channel_tables
from sync import offers
from sync.status import (
    OK,
    CallOutcome,
    Facts,
    Intervals,
    age_text,
    assess,
    classify_error,
    freshness,
    health_text,
    latest_call,
)

__all__ = ["FRESHNESS_CHECKS", "StatusConfig", "channel_facts", "channel_status"]

ORDERS = dg.AssetKey("orders")  # the order poll's asset (pipelines of this code location may not define it yet)
# Assets whose steps call SP-API (their metadata carries the resource's `spapi/total/*` counters).
_API_ASSETS = ("fba_inventory", "offer_observations", "listings_submission", "shipment_confirmations", "orders")
_RECENT = 25  # materializations read per asset: the newest successful one is among them in practice
_FAILED_RUNS = 10  # the channel's most recent failed runs whose step failures are read
_DETAIL = 240  # characters of an error message kept in the status


class StatusConfig(dg.Config):
    """`as_of`: evaluate at this ISO-8601 time instead of now (what-if, tests)."""

    as_of: str | None = None


def _now(config: StatusConfig) -> datetime:
    return datetime.fromisoformat(config.as_of) if config.as_of else datetime.now(UTC)


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _records(instance: dg.DagsterInstance, key: str | dg.AssetKey, channel: str) -> list[Any]:
    asset = key if isinstance(key, dg.AssetKey) else dg.AssetKey(key)
    flt = dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[channel])
    return list(instance.fetch_materializations(flt, limit=_RECENT).records)


def _meta(record: Any) -> dict[str, Any]:
    materialization = record.asset_materialization
    return {k: getattr(v, "value", v) for k, v in (materialization.metadata if materialization else {}).items()}


def _first(records: list[Any], accept: Callable[[dict[str, Any]], bool]) -> Any:
    return next((r for r in records if accept(_meta(r))), None)


def _pulled(meta: dict[str, Any]) -> bool:
    stopped = meta.get("pull_stopped")
    return isinstance(stopped, str) and not stopped.startswith("error")


def _pushed(meta: dict[str, Any]) -> bool:
    # Deferred SKUs: the quota or the grant ran out before everything was sent.
    return not meta.get("offline") and not meta.get("status_deferred")


def _call_from_materialization(asset: str, record: Any) -> CallOutcome | None:
    """The outcome of the SP-API calls a materialization proves it made, None when it proves none. The resource's
    `spapi/total/*` counters add up every step of a run, so they cannot say whether this step called Amazon: each
    asset's own figures do (a pull that got answers, a push that sent or polled something, a confirmed shipment)."""
    meta = _meta(record)
    at = _at(record.timestamp)
    stopped = meta.get("pull_stopped")
    if isinstance(stopped, str) and stopped.startswith("error: "):
        text = stopped.removeprefix("error: ")
        return CallOutcome(at, classify_error([text.split(" ")[0]], text) or "error", asset, text[:_DETAIL])
    proofs = {
        "fba_inventory": meta.get("amazon") == "pulled",
        "offer_observations": _pulled(meta) and bool(meta.get("pulled_asins")),
        "listings_submission": _pushed(meta)
        and any(meta.get(k) for k in ("changed", "feeds_resumed", "patches_sent", "read_back")),
        "shipment_confirmations": bool(meta.get("this_run_confirmed")),
        "orders": True,  # the order poll materializes only once Amazon answered
    }
    return CallOutcome(at, OK, asset) if proofs.get(asset) else None


def _error_chain(error: Any) -> Iterator[Any]:
    while error is not None:
        yield error
        error = error.cause or error.context


def _calls_from_failures(instance: dg.DagsterInstance, channel: str) -> list[CallOutcome]:
    """The SP-API failures that failed steps of the channel's recent failed runs (its enable_channel runs too)."""
    runs = list(
        instance.get_run_records(
            dg.RunsFilter(tags={"dagster/partition": channel}, statuses=[dg.DagsterRunStatus.FAILURE]),
            limit=_FAILED_RUNS,
        )
    )
    enables = list(instance.get_run_records(dg.RunsFilter(job_name=ENABLE_JOB, tags={"channel": channel}), limit=5))
    outcomes: list[CallOutcome] = []
    for record in enables:
        if record.dagster_run.status == dg.DagsterRunStatus.SUCCESS and record.end_time:
            outcomes.append(CallOutcome(_at(record.end_time), OK, ENABLE_JOB))
        elif record.dagster_run.status == dg.DagsterRunStatus.FAILURE:
            runs.append(record)
    for record in runs:
        for entry in instance.all_logs(record.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
            event = entry.dagster_event
            chain = list(_error_chain(event.step_failure_data.error if event.step_failure_data else None))
            names = [e.cls_name or "" for e in chain]
            message = " ".join(e.message for e in chain)
            outcome = classify_error(names, message)
            if outcome is None:
                continue
            # The client's exception (not Dagster's wrapper), its message without the class name in front.
            raised = next((e for e in chain if classify_error([e.cls_name or ""], "") is not None), chain[-1])
            detail = raised.message.strip().splitlines()[0] if raised.message.strip() else ""
            detail = detail.split(": ", 1)[1] if detail.split(": ", 1)[0].endswith(raised.cls_name or "\0") else detail
            outcomes.append(CallOutcome(_at(entry.timestamp), outcome, event.step_key or "run", detail[:_DETAIL]))
    return outcomes


def instance_facts(instance: dg.DagsterInstance, channel: str, now: datetime, *, orders_defined: bool) -> Facts:
    """What the Dagster instance recorded for the channel: the last successful pulls, pushes and order poll, and the
    outcomes of its recent SP-API calls (the last of which is the connection's health)."""
    records = {asset: _records(instance, asset, channel) for asset in (*_API_ASSETS, "reconciled_inventory")}
    fba = _first(records["fba_inventory"], lambda m: m.get("amazon") == "pulled")
    pull = _first(records["offer_observations"], _pulled)
    push = _first(records["listings_submission"], _pushed)
    reconciled = {r.run_id for r in records["reconciled_inventory"]}
    stock = next((r for r in records["listings_submission"] if _pushed(_meta(r)) and r.run_id in reconciled), None)
    poll = records["orders"][0] if records["orders"] else None
    calls = [
        next(filter(None, (_call_from_materialization(asset, r) for r in records[asset])), None)
        for asset in _API_ASSETS
    ]
    coverage = _meta(poll).get("notification_coverage") if poll else None
    return Facts(
        channel=channel,
        now=now,
        last_call=latest_call([*calls, *_calls_from_failures(instance, channel)]),
        fba_pull=_at(fba.timestamp) if fba else None,
        offers_pull=_at(pull.timestamp) if pull else None,
        price_push=_at(push.timestamp) if push else None,
        quantity_push=_at(stock.timestamp) if stock else None,
        order_poll=_at(poll.timestamp) if poll else None,
        orders_defined=orders_defined,
        offers_expected=channel in enabled_channels(instance),
        notification_coverage=coverage,
    )


_ERRORS_BY_CODE = """
SELECT coalesce(code, status), count(*) FROM (
    SELECT sku, status, code FROM sync_history WHERE operation IN ('submit', 'create_listing', 'confirm_shipment')
    QUALIFY row_number() OVER (PARTITION BY sku, operation ORDER BY recorded_at DESC) = 1
) WHERE status IN ('error', 'category_restricted', 'not_applied', 'rejected')
GROUP BY ALL ORDER BY 2 DESC, 1
"""


def warehouse_facts(warehouse: Warehouse, channel: str, facts: Facts) -> Facts:
    """The facts of the channel's own file added: open feeds, SKUs in error by code (each SKU's latest outcome),
    offer data age, and a push deferred by the quota or the grant (sync_history) as a call outcome."""
    if not warehouse.has_data(channel):
        return facts
    with warehouse.connect(channel, read_only=True) as con:
        tables = channel_tables(con)
        feeds: dict[str, datetime] = {}
        if "submissions" in tables:
            rows = con.execute(
                "SELECT coalesce(feed_id, submission_id), recorded_at FROM submissions "
                "WHERE status IN ('recorded', 'submitted') ORDER BY recorded_at"
            ).fetchall()
            feeds = {str(feed): at.astimezone(UTC) for feed, at in rows}
        errors: dict[str, int] = {}
        deferred = None
        if "sync_history" in tables:
            errors = {str(code): int(count) for code, count in con.execute(_ERRORS_BY_CODE).fetchall()}
            deferred = con.execute(
                "SELECT recorded_at, code, message FROM sync_history WHERE status = 'deferred' "
                "ORDER BY recorded_at DESC LIMIT 1"
            ).fetchone()
        ages: dict[str, Any] = {}
        if {"offer_snapshots", "channel_mappings"} <= tables:
            ages = offers.age_stats(con, facts.now, channel_for(channel).pricing.freshness_hours)
    last_call = facts.last_call
    if deferred is not None:
        at, code, message = deferred
        outcome = classify_error([code or ""], message or "") or "error"
        pushed = CallOutcome(at.astimezone(UTC), outcome, "listings_submission", (message or "")[:_DETAIL])
        last_call = latest_call([last_call, pushed])
    return replace(
        facts,
        last_call=last_call,
        open_feeds=feeds,
        errors_by_code=errors,
        offer_age_p50_minutes=ages.get("p50_minutes"),
        offer_age_p95_minutes=ages.get("p95_minutes"),
    )


def channel_facts(
    instance: dg.DagsterInstance, warehouse: Warehouse, channel: str, now: datetime, *, orders_defined: bool
) -> Facts:
    """Everything `sync.status.assess` judges, for one channel."""
    return warehouse_facts(warehouse, channel, instance_facts(instance, channel, now, orders_defined=orders_defined))


def _when(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "never"
    return f"{at:%Y-%m-%d %H:%M} UTC ({age_text(max(0.0, (now - at).total_seconds() / 60))} ago)"


def _ago(at: datetime | None, now: datetime) -> str:
    return "never" if at is None else age_text(max(0.0, (now - at).total_seconds() / 60)) + " ago"


def _minutes(value: float | None) -> dg.MetadataValue:
    return dg.MetadataValue.float(round(value, 1)) if value is not None else dg.MetadataValue.text("n/a")


def _overview(rows: list[tuple[Facts, str]]) -> str:
    lines = [
        "| channel | marketplace | status | connection | prices pushed | stock pushed | offers pulled | orders polled "
        "| open feeds | SKUs in error |",
        "|---|---|---|---|---|---|---|---|---:|---:|",
    ]
    for facts, line in rows:
        call = facts.last_call.outcome if facts.last_call else "-"
        lines.append(
            f"| {facts.channel} | {CHANNELS[facts.channel].marketplace_id} | {line} | {call} "
            f"| {_ago(facts.price_push, facts.now)} | {_ago(facts.quantity_push, facts.now)} "
            f"| {_ago(facts.offers_pull, facts.now)} | {_ago(facts.order_poll, facts.now)} "
            f"| {len(facts.open_feeds)} | {sum(facts.errors_by_code.values())} |"
        )
    return "\n".join(lines)


def _coverage_text(coverage: Any) -> str:
    """The order poll's `notification_coverage` figure in words ("n/a" before any poll)."""
    if not isinstance(coverage, dict) or not coverage.get("polled_orders"):
        return "n/a (no order polled yet)" if coverage is None else "n/a (the poll found no order)"
    share = coverage.get("coverage")
    return (
        f"{share:.0%} ({coverage['missed_by_notifications']} of {coverage['polled_orders']} polled orders never came "
        "as a notification)"
    )


def _orders_defined(context: dg.AssetExecutionContext) -> bool:
    """Whether the order poll is expected: `orders` is in the run's asset graph (a dependency of this asset), or it
    has materialized for the channel; until then `never` is no staleness."""
    return context.job_def.asset_layer.asset_graph.has(ORDERS) or bool(
        _records(context.instance, ORDERS, context.partition_key)
    )


@dg.asset(
    partitions_def=channel_partitions,
    group_name="status",
    kinds={"dagster"},
    deps=[
        "fba_inventory",
        "offer_observations",
        "reconciled_inventory",
        "listings_submission",
        "shipment_confirmations",
        "sync_history",
        "orders",
    ],
)
def channel_status(
    context: dg.AssetExecutionContext, config: StatusConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    """The channel at a glance, its one-line `status` first (`OK: ...`, `STALE: prices not pushed for 47 min`,
    `ERROR: grant revoked ...`): connection health (the outcome of its last SP-API call: ok, throttled,
    ReauthorizationRequired, Unauthorized or another error), when each step last succeeded (FBA pull, offers pull,
    price push, quantity push, order poll), open feeds and their age, SKUs whose latest outcome is an error (by
    code), notification coverage (the order poll's figure), offer data age (p50/p95), and a seller overview: every
    channel of the seller in one table. Intervals: `SALES_CHANNEL_STALE_*_MINUTES` (sync.status.Intervals).
    Source: the Dagster instance (materializations, step failures) and the channel's sync_history, submissions and
    offer_snapshots; writes nothing."""
    channel = channel_for(context.partition_key)
    now = _now(config)
    intervals = Intervals.from_env()
    defined = _orders_defined(context)
    siblings = [name for name, c in CHANNELS.items() if c.seller_id == channel.seller_id]
    rows = []
    for name in siblings:
        facts = channel_facts(context.instance, warehouse, name, now, orders_defined=defined)
        rows.append((facts, assess(facts, intervals).line))
    facts = next(f for f, _ in rows if f.channel == channel.name)
    status = assess(facts, intervals)
    errors = "\n".join(f"| {code} | {count} |" for code, count in facts.errors_by_code.items())
    feeds = "\n".join(f"| {feed} | {_when(at, now)} |" for feed, at in facts.open_feeds.items())
    coverage = facts.notification_coverage
    return dg.MaterializeResult(
        metadata={
            "status": dg.MetadataValue.text(status.line),
            "connection": dg.MetadataValue.text(health_text(facts.last_call, now)),
            "last_fba_pull": dg.MetadataValue.text(_when(facts.fba_pull, now)),
            "last_offers_pull": dg.MetadataValue.text(_when(facts.offers_pull, now)),
            "last_price_push": dg.MetadataValue.text(_when(facts.price_push, now)),
            "last_quantity_push": dg.MetadataValue.text(_when(facts.quantity_push, now)),
            "last_order_poll": dg.MetadataValue.text(_when(facts.order_poll, now)),
            "open_feeds": dg.MetadataValue.int(len(facts.open_feeds)),
            "open_feeds_detail": dg.MetadataValue.md(f"| feed | recorded |\n|---|---|\n{feeds}" if feeds else "none"),
            "skus_in_error": dg.MetadataValue.int(sum(facts.errors_by_code.values())),
            "errors_by_code": dg.MetadataValue.md(f"| code | SKUs |\n|---|---:|\n{errors}" if errors else "none"),
            "notification_coverage": dg.MetadataValue.text(_coverage_text(coverage)),
            "offer_age_p50_minutes": _minutes(facts.offer_age_p50_minutes),
            "offer_age_p95_minutes": _minutes(facts.offer_age_p95_minutes),
            "seller_overview": dg.MetadataValue.md(_overview(rows)),
            "intervals": dg.MetadataValue.text(
                f"prices {age_text(intervals.prices_minutes)}, stock {age_text(intervals.inventory_minutes)}, "
                f"offers {age_text(intervals.offers_minutes)}, orders {age_text(intervals.orders_minutes)}"
            ),
            "evaluated_at": dg.MetadataValue.text(f"{now:%Y-%m-%d %H:%M:%S} UTC"),
        }
    )


def _freshness_check(
    asset: str, name: str, what: str, last: Callable[[Facts], datetime | None], limit: Callable[[Intervals], float]
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name=name,
        partitions_def=channel_partitions,
        blocking=False,
        description=f"{what[0].upper()}{what[1:]} within the interval of sync.status.Intervals (environment "
        "SALES_CHANNEL_STALE_*_MINUTES); fails red (severity ERROR, non-blocking) once it is older, warns while it "
        "never happened.",
    )
    def _check(context: dg.AssetCheckExecutionContext, config: StatusConfig) -> dg.AssetCheckResult:
        channel = context.partition_key
        now = _now(config)
        facts = instance_facts(context.instance, channel, now, orders_defined=False)
        minutes = limit(Intervals.from_env())
        if asset == "offer_observations" and not facts.offers_expected:
            return dg.AssetCheckResult(
                passed=True, description=f"channel {channel} not enabled: the offers pull is not scheduled"
            )
        at = last(facts)
        passed, sentence = freshness(at, now, minutes, what)
        return dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.WARN if at is None else dg.AssetCheckSeverity.ERROR,
            description=f"{channel}: {sentence}",
            metadata={
                "last_success": dg.MetadataValue.text(_when(at, now)),
                "age_minutes": _minutes(None if at is None else (now - at).total_seconds() / 60),
                "max_minutes": dg.MetadataValue.float(float(minutes)),
            },
        )

    return _check


FRESHNESS_CHECKS = [
    _freshness_check(
        "listings_submission",
        "prices_pushed_recently",
        "prices pushed",
        lambda f: f.price_push,
        lambda i: i.prices_minutes,
    ),
    _freshness_check(
        "reconciled_inventory",
        "stock_pushed_recently",
        "stock reconciled and pushed",
        lambda f: f.quantity_push,
        lambda i: i.inventory_minutes,
    ),
    _freshness_check(
        "offer_observations",
        "offers_pulled_recently",
        "offers pulled",
        lambda f: f.offers_pull,
        lambda i: i.offers_minutes,
    ),
]
