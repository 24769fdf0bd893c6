"""Notification store benchmark: how many notifications per second the sensor's processing stores, in the embedded
DuckDB file and in Postgres (the deployed mode).

The sensor's work per batch of `STORE_EVERY` (100) SQS messages, without SQS itself (the same in both modes): parse
and route the bodies (`prepare_batch`), open the store, store the batch in one transaction (`store_batch`), close.
Bodies: 80 % ORDER_CHANGE (two items), 20 % ANY_OFFER_CHANGED (five offers), each sent twice (a redelivery:
every second batch is all duplicates, which the store must recognise). The store starts with `--prefill`
notifications already in it, since its dedup reads what is stored. Postgres: `--dsn`, or a private cluster started
here (`make postgres` installs the binaries). Run: ``uv run python -m bench.notification_store``.
The last line is ``notification_store: file_per_s=F postgres_per_s=P notifications=N prefill=M``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipelines.sensors import STORE_EVERY
from resources.warehouse import Warehouse
from seller.config import parse_channels
from sync.notifications import Received, prepare_batch, store_batch

SELLER = "A3DEMOSELLER01"
US = "ATVPDKIKX0DER"
CHANNELS = parse_channels({"channels": [{"name": "us", "seller_id": SELLER, "marketplace_id": US, "region": "na"}]})


def _order(n: int, at: str) -> dict:
    items = [{"OrderItemId": f"{n}-{k}", "SellerSKU": f"SKU-{n % 5000}-{k}", "Quantity": 1} for k in range(2)]
    return {
        "NotificationType": "ORDER_CHANGE",
        "EventTime": at,
        "Payload": {
            "OrderChangeNotification": {
                "SellerId": SELLER,
                "AmazonOrderId": f"111-{n:07d}-0000001",
                "OrderChangeType": "OrderStatusChange",
                "OrderChangeTrigger": {"TimeOfOrderChange": at},
                "Summary": {"MarketplaceId": US, "OrderStatus": "Unshipped", "FulfillmentType": "MFN",
                            "OrderItems": items},
            }
        },
        "NotificationMetadata": {"PublishTime": at, "NotificationId": str(uuid.uuid4())},
    }  # fmt: skip


def _offer(n: int, at: str) -> dict:
    offers = [
        {"SellerId": f"A{k}RIVAL{n % 97:05d}", "ListingPrice": {"Amount": f"{10 + k}.99", "CurrencyCode": "USD"},
         "Shipping": {"Amount": "0.00", "CurrencyCode": "USD"}, "IsFulfilledByAmazon": k % 2 == 0}
        for k in range(5)
    ]  # fmt: skip
    return {
        "NotificationType": "ANY_OFFER_CHANGED",
        "EventTime": at,
        "Payload": {
            "AnyOfferChangedNotification": {
                "SellerId": SELLER,
                "OfferChangeTrigger": {"MarketplaceId": US, "ASIN": f"B{n:09d}", "TimeOfOfferChange": at},
                "Summary": {"LowestPrices": [], "BuyBoxPrices": []},
                "Offers": offers,
            }
        },
        "NotificationMetadata": {"PublishTime": at, "NotificationId": str(uuid.uuid4())},
    }


def bodies(count: int, start: int = 0) -> list[str]:
    base = datetime(2026, 11, 29, tzinfo=UTC)
    out = []
    for n in range(start, start + count):
        at = (base + timedelta(seconds=n)).isoformat()
        out.append(json.dumps(_offer(n, at) if n % 5 == 4 else _order(n, at)))
    return out


def run(warehouse: Warehouse, notifications: int, prefill: int) -> tuple[float, int]:
    """Notifications stored per second (unique ones over the whole run, duplicates included in the time), after
    `prefill` notifications (at least one batch: the process's first connection and first query are not timed)."""
    prefill = max(prefill, STORE_EVERY)
    for start in range(0, prefill, 1000):
        batch = [Received(str(n), "", b) for n, b in enumerate(bodies(min(1000, prefill - start), start))]
        with warehouse.connect_notifications() as con:
            store_batch(con, prepare_batch(batch, CHANNELS, datetime.now(UTC)))
    fresh = bodies(notifications, prefill)
    messages = []
    for start in range(0, len(fresh), STORE_EVERY):
        chunk = fresh[start : start + STORE_EVERY]
        messages += [chunk, chunk]  # the batch, then its redelivery
    stored = 0
    started = time.perf_counter()
    for chunk in messages:
        batch = prepare_batch([Received(str(n), str(n), b) for n, b in enumerate(chunk)], CHANNELS, datetime.now(UTC))
        with warehouse.connect_notifications() as con:
            stored += len(store_batch(con, batch))
    elapsed = time.perf_counter() - started
    assert stored == notifications, (stored, notifications)
    return notifications / elapsed, len(messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=5000)
    parser.add_argument("--prefill", type=int, default=20000)
    parser.add_argument("--dsn", help="an empty Postgres database (default: a private cluster started here)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-notifications-"))
    base.chmod(0o755)  # under root, Postgres runs as the `postgres` user and must reach its data directory
    pg = None
    try:
        file_rate, batches = run(Warehouse(data_dir=str(base / "file")), args.notifications, args.prefill)
        print(f"file:     {file_rate:,.0f} notifications/s ({batches} batches of {STORE_EVERY} messages)", flush=True)
        dsn = args.dsn
        if dsn is None:
            from deploy.stack import Postgres, free_port

            pg = Postgres(base / "postgres", free_port()).start()
            dsn = f"postgresql://{pg.user}@127.0.0.1:{pg.port}/{pg.database}"
        os.environ["SALES_CHANNEL_STATE"] = dsn
        os.environ.setdefault("SALES_CHANNEL_LAKE", "s3://unused/bench")
        pg_rate, _ = run(Warehouse(data_dir=str(base / "deployed")), args.notifications, args.prefill)
        print(f"postgres: {pg_rate:,.0f} notifications/s", flush=True)
        print(
            f"notification_store: file_per_s={file_rate:.0f} postgres_per_s={pg_rate:.0f} "
            f"notifications={args.notifications} prefill={args.prefill}"
        )
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
