"""Another process on the notification store, as a run beside the daemon's sensor would be: `python -m
tests.deploy.store_worker <spec.json> <out.json>`. It connects (creating the schema when first), says it is ready,
waits for the go, then stores the spec's message bodies in small batches (reading the reservations after each, then
pausing) and runs the order poll on the spec's orders; it writes what it stored as new and what it read to
<out.json>."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from resources.warehouse import Warehouse
from sync.notifications import Received, prepare_batch, store_batch
from sync.order_poll import poll_orders
from sync.orders import reservations
from tests.notifications.helpers import CHANNELS, SELLER


class Orders:
    """searchOrders answering the spec's orders, `size` per page."""

    def __init__(self, orders: list[dict], size: int) -> None:
        self.orders, self.size = orders, size

    def search_orders_page(self, marketplace_ids, *, pagination_token=None, **_) -> dict:
        start = int(pagination_token or 0)
        page: dict = {"orders": self.orders[start : start + self.size]}
        if start + self.size < len(self.orders):
            page["pagination"] = {"nextToken": str(start + self.size)}
        return page


def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    warehouse = Warehouse(data_dir=spec["data_dir"])
    with warehouse.connect_notifications(read_only=True) as con:
        con.execute("SELECT count(*) FROM notifications").fetchall()
    Path(spec["ready"]).touch()
    deadline = time.monotonic() + 60
    while not Path(spec["go"]).exists():
        if time.monotonic() > deadline:
            raise SystemExit("no go within 60 s")
        time.sleep(0.01)
    fresh, reads = [], 0
    bodies = spec["bodies"]
    for start in range(0, len(bodies), spec["batch"]):
        chunk = [Received(m, f"worker-{m}", b) for m, b in bodies[start : start + spec["batch"]]]
        with warehouse.connect_notifications() as con:
            fresh += [
                [r["notification_id"], r["channel"]] for r in store_batch(con, prepare_batch(chunk, CHANNELS, now()))
            ]
        with warehouse.connect_notifications(read_only=True) as con:
            reservations(con, ["us", "uk", "de"], None).fetchall()
            reads += 1
        time.sleep(spec["pause"])
    polled = poll_orders(
        Orders(spec["orders"], 7), SELLER, "na", {"ATVPDKIKX0DER": "us"}, warehouse.connect_notifications, now=now()
    )
    Path(out_path).write_text(json.dumps({"fresh": fresh, "reads": reads, "polled": polled.stored}))


def now() -> datetime:
    return datetime.now(UTC)


if __name__ == "__main__":
    main(*sys.argv[1:])
