"""FBM shipment write-back: the seller's recorded shipments confirmed to Amazon with confirmShipment, once each.

The input file `shipments.csv|parquet` (optional; validated like the other inputs, problems in `input_errors` under
input `shipments`) has one row per shipped order and channel:

| column | required | meaning |
|---|---|---|
| channel | yes | the channel name (channels.yaml) |
| order_id | yes | Amazon order id, `NNN-NNNNNNN-NNNNNNN` |
| carrier_code | yes | Amazon's carrier code (`UPS`, `USPS`, `FedEx`, `DHL`, ...) or `Other` |
| carrier_name | no | the carrier's name; required when carrier_code is `Other` |
| tracking_number | yes | the package's tracking number |
| ship_date | yes | ISO 8601 with offset, e.g. `2026-11-29T14:00:00+00:00` |
| shipping_method | no | the carrier's service, e.g. `Ground` |

A row confirms the whole order: every order item's unshipped quantity (getOrderItems) in one package.
The ledger `shipment_confirmations` (channel DuckDB) makes it once: a row is marked `sending` before the call and
`confirmed` after it; a confirmed order is never sent again. Every attempt reads the order's items first: when Amazon
already shows every item shipped (an earlier call went through, its answer or the run lost), the row is `confirmed`
without a call. A confirmShipment whose answer is lost (5xx, read timeout, dropped connection) may have taken effect,
and a repeat of one that did is refused (400): either way the order is read back (getOrder) and `Shipped` (or
`InvoiceUnconfirmed`: every item shipped) means `confirmed`. Otherwise a `rejected` row (Amazon's 400/404) is retried
only when the seller changes the row; a `failed` one (throttling, 5xx, timeouts) on the next run.
"""

import re
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pyarrow as pa

from assets.metadata import preview
from pipelines.partitions import CHANNELS, channel_for, channel_partitions
from resources.spapi import InvalidInput, LwaError, ResourceNotFound, SpApiClient, SpApiError, Throttled, Unauthorized
from resources.spapi_resource import SpApiResource
from resources.transaction import transaction
from resources.warehouse import Warehouse
from seller.inputs import ERROR, ERROR_SCHEMA, ensure_input_errors, problems_for, replace_input_errors
from seller.snapshots import ensure_snapshot, read_errors, rows_sql
from sync.orders import package_detail, row_hash

__all__ = ["shipment_confirmations"]

_ORDER_ID = re.compile(r"^\d{3}-\d{7}-\d{7}$")
_HASHED = ("order_id", "carrier_code", "carrier_name", "tracking_number", "ship_date", "shipping_method")

# One row per order (MERGE INTO on order_id: no PRIMARY KEY, which a DuckLake does not have).
_LEDGER = """
CREATE TABLE IF NOT EXISTS shipment_confirmations (
    channel VARCHAR, order_id VARCHAR, row_hash VARCHAR, status VARCHAR, code VARCHAR, message VARCHAR,
    carrier_code VARCHAR, tracking_number VARCHAR, ship_date TIMESTAMPTZ, units BIGINT, attempts BIGINT,
    first_attempt_at TIMESTAMPTZ, last_attempt_at TIMESTAMPTZ, confirmed_at TIMESTAMPTZ, run_id VARCHAR
)
"""
_HISTORY = """
CREATE TABLE IF NOT EXISTS sync_history (
    channel VARCHAR, sku VARCHAR, asin VARCHAR, operation VARCHAR, status VARCHAR, code VARCHAR,
    message VARCHAR, run_id VARCHAR, recorded_at TIMESTAMPTZ
)
"""
# A row marked `sending` before confirmShipment (the order's first attempt, or a retry of a changed or failed one).
_SENDING = """
MERGE INTO shipment_confirmations c USING (SELECT $order_id AS order_id) s ON c.order_id = s.order_id
WHEN MATCHED THEN UPDATE SET status = 'sending', row_hash = $hash, carrier_code = $carrier,
    tracking_number = $tracking, ship_date = $ship_date, last_attempt_at = $now, run_id = $run_id
WHEN NOT MATCHED THEN INSERT VALUES ($channel, $order_id, $hash, 'sending', NULL, NULL, $carrier, $tracking,
    $ship_date, NULL, 0, $now, $now, NULL, $run_id)
"""
# The attempt's outcome (an order settled without a call has no `sending` row before it).
_OUTCOME = """
MERGE INTO shipment_confirmations c USING (SELECT $order_id AS order_id) s ON c.order_id = s.order_id
WHEN MATCHED THEN UPDATE SET status = $status, code = $code, message = $message, row_hash = $hash, units = $units,
    attempts = c.attempts + 1, last_attempt_at = $now, confirmed_at = $confirmed, run_id = $run_id
WHEN NOT MATCHED THEN INSERT VALUES ($channel, $order_id, $hash, $status, $code, $message, $carrier, $tracking,
    $ship_date, $units, 1, $now, $now, $confirmed, $run_id)
"""


def _extra_problems(rows: list[dict[str, Any]], file: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rules beyond the generic ones: the order id's shape and carrier_name for carrier `Other`."""
    good, problems = [], []
    for row in rows:
        issue = None
        if not _ORDER_ID.match(row["order_id"] or ""):
            issue = ("order_id", row["order_id"], "not an Amazon order id (NNN-NNNNNNN-NNNNNNN)")
        elif row["carrier_code"] == "Other" and not row.get("carrier_name"):
            issue = ("carrier_name", "", "carrier_name is required when carrier_code is Other")
        if issue:
            problems.append(
                {
                    "file": file,
                    "row": row["_row"],
                    "column": issue[0],
                    "value": issue[1],
                    "message": issue[2],
                    "channel": row["channel"],
                    "severity": ERROR,
                }
            )
        else:
            good.append(row)
    return good, problems


# Orders v0 OrderStatus values meaning every item of the order has shipped.
_SHIPPED = frozenset({"Shipped", "InvoiceUnconfirmed"})


def _settle(client: SpApiClient, order_id: str) -> tuple[list[dict[str, Any]], bool]:
    """The order's items, and whether Amazon shows every one of them shipped."""
    items = client.get_order_items(order_id)
    unshipped = any(int(i.get("QuantityOrdered") or 0) > int(i.get("QuantityShipped") or 0) for i in items)
    return items, bool(items) and not unshipped


@dg.asset(
    partitions_def=channel_partitions,
    group_name="orders",
    kinds={"duckdb"},
    deps=["input_snapshots", "shipments"],
    pool="spapi",
    check_specs=[
        dg.AssetCheckSpec(
            "shipments_valid",
            asset="shipment_confirmations",
            description="Every row of the shipments file is valid for this channel.",
        )
    ],
)
def shipment_confirmations(
    context: dg.AssetExecutionContext, warehouse: Warehouse, spapi: SpApiResource
) -> dg.MaterializeResult:
    """The channel's shipment ledger: one row per FBM order the seller recorded as shipped, with its confirmShipment
    outcome (confirmed, rejected with Amazon's code and message, failed, sending), attempts and timestamps. Each
    order is confirmed with Amazon at most once; results also go to sync_history (operation confirm_shipment, one
    row per order item SKU). Source: the seller's `shipments` file, getOrderItems and confirmShipment."""
    channel = channel_for(context.partition_key)
    snapshot = ensure_snapshot("shipments", warehouse.data_dir, CHANNELS, memory_limit=warehouse.memory_limit)
    now = datetime.now(UTC)
    with warehouse.connect(channel.name) as con:
        valid = con.sql(rows_sql(snapshot, channel.name)).to_arrow_table().to_pylist() if snapshot.rows else []
        rows, extra = _extra_problems(valid, snapshot.file or "shipments.csv")
        problems = problems_for(read_errors(con, snapshot), channel.name).to_pylist() + extra
        con.execute(_LEDGER)
        con.execute(_HISTORY)
        ensure_input_errors(con)
        for attempt in transaction(con):
            with attempt:
                replace_input_errors(con, "shipments", pa.Table.from_pylist(problems, schema=ERROR_SCHEMA))
        ledger = {
            r[0]: (r[1], r[2])
            for r in con.execute("SELECT order_id, status, row_hash FROM shipment_confirmations").fetchall()
        }
    todo = []
    for row in rows:
        digest = row_hash(row, _HASHED)
        status, previous = ledger.get(row["order_id"], (None, None))
        if status == "confirmed" or (status == "rejected" and previous == digest):
            continue
        todo.append((row, digest, status))
    client = spapi.client_for(channel.seller_id, region=channel.region) if todo else None
    outcomes: dict[str, int] = {}
    for row, digest, status in todo:
        outcome = _confirm(context, warehouse, channel.name, client, row, digest, status)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    with warehouse.connect(channel.name) as con:
        counts = dict(con.execute("SELECT status, count(*) FROM shipment_confirmations GROUP BY ALL").fetchall())
        head = con.sql("SELECT * FROM shipment_confirmations ORDER BY order_id LIMIT 10").to_arrow_table()
    check = dg.AssetCheckResult(
        check_name="shipments_valid",
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{len(problems)} problem(s) in shipments; those rows are not confirmed" if problems else None,
        metadata={"problems": len(problems), "first_problems": preview(pa.Table.from_pylist(problems[:50]))},
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(counts.values()),
            **{f"ledger_{k}": v for k, v in sorted(counts.items())},
            **{f"this_run_{k}": v for k, v in sorted(outcomes.items())},
            "preview": preview(head),
            "recorded_at": now.isoformat(),
            **spapi.metadata(),
        },
        check_results=[check],
    )


def _confirm(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    channel: str,
    client: SpApiClient,
    row: dict[str, Any],
    digest: str,
    status: str | None,
) -> str:
    order_id = row["order_id"]
    now = datetime.now(UTC)
    code = message = None
    items: list[dict[str, Any]] = []
    try:
        items, all_shipped = _settle(client, order_id)
        if all_shipped:
            outcome = "confirmed"
            message = (
                "settled: Amazon shows every item shipped (an earlier call went through)"
                if status is not None
                else "Amazon already shows every item shipped; nothing sent"
            )
        else:
            with warehouse.connect(channel) as con:
                for attempt in transaction(con):
                    with attempt:
                        con.execute(
                            _SENDING,
                            {
                                "channel": channel,
                                "order_id": order_id,
                                "hash": digest,
                                "carrier": row["carrier_code"],
                                "tracking": row["tracking_number"],
                                "ship_date": row["ship_date"],
                                "now": now,
                                "run_id": context.run_id,
                            },
                        )
            detail = package_detail(row, items, package_reference=1)
            if not detail["orderItems"]:
                raise InvalidInput(f"order {order_id} has no unshipped items", operation="confirmShipment", status=400)
            outcome, code, message = _send(client, order_id, channel_for(channel).marketplace_id, detail)
    except (InvalidInput, ResourceNotFound) as exc:
        outcome, code, message = "rejected", exc.amazon_code or exc.code, exc.message
    except SpApiError as exc:
        outcome, code, message = "failed", exc.code, exc.message
    units = sum(int(i.get("QuantityOrdered") or 0) for i in items)
    done = datetime.now(UTC)
    params = {
        "channel": channel,
        "order_id": order_id,
        "hash": digest,
        "status": outcome,
        "code": code,
        "message": message,
        "carrier": row["carrier_code"],
        "tracking": row["tracking_number"],
        "ship_date": row["ship_date"],
        "units": units,
        "now": done,
        "confirmed": done if outcome == "confirmed" else None,
        "run_id": context.run_id,
    }
    skus = [(i.get("SellerSKU"), i.get("ASIN")) for i in items] or [(None, None)]
    history = [
        [channel, sku, asin, outcome, code, message or f"order {order_id} confirmed", context.run_id, done]
        for sku, asin in skus
    ]
    with warehouse.connect(channel) as con:
        for attempt in transaction(con):
            with attempt:
                con.execute(_OUTCOME, params)
                con.executemany("INSERT INTO sync_history VALUES (?, ?, ?, 'confirm_shipment', ?, ?, ?, ?, ?)", history)
    if outcome != "confirmed":
        context.log.warning(f"confirmShipment {order_id}: {outcome} ({code}: {message})")
    return outcome


def _send(
    client: SpApiClient, order_id: str, marketplace_id: str, detail: dict[str, Any]
) -> tuple[str, str | None, str | None]:
    """(outcome, code, message) of one confirmShipment. An answer that does not say whether the confirmation took
    effect is settled by reading the order back: a lost answer (5xx, timeout, dropped connection) may hide one that
    went through, and Amazon refuses (400) a repeat of one that did."""
    try:
        client.confirm_shipment(order_id, marketplace_id, detail)
    except (Throttled, Unauthorized, LwaError) as exc:
        return "failed", exc.code, exc.message  # Amazon did not act on it
    except SpApiError as exc:
        try:
            order_status = client.get_order(order_id).get("OrderStatus")
        except (InvalidInput, ResourceNotFound) as unknown:
            return "rejected", unknown.amazon_code or unknown.code, unknown.message
        except SpApiError as unread:
            return "failed", exc.code, f"{exc.message}; getOrder failed too ({unread.code}): settled next run"
        if order_status in _SHIPPED:
            return "confirmed", None, f"confirmShipment answered {exc.code} ({exc.message}); getOrder: {order_status}"
        if isinstance(exc, InvalidInput | ResourceNotFound):
            return "rejected", exc.amazon_code or exc.code, exc.message
        return "failed", exc.code, exc.message
    return "confirmed", None, None
