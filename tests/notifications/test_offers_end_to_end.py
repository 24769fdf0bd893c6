"""Done when: a competitor move Amazon notifies is repriced and accepted without any getItemOffersBatch for its ASIN,
through the real sensor (moto SQS) and a real prices_job run against the emulator."""

from __future__ import annotations

from decimal import Decimal

import dagster as dg
import httpx

from pipelines.definitions import ALL_ASSETS
from pipelines.jobs import channel_pipeline_job, prices_job
from pipelines.resources import s3_resource
from reliability.wiretap import Wiretap
from resources.warehouse import Warehouse
from tests.notifications.helpers import US, enable, run_sensor
from tests.sync.helpers import listing, query, spapi_for

ASIN, SKU = "B000000002", "FBM-1"  # FBM-1: floor 10.00, ceiling 25.00, our shipping 1.50
RIVAL = "A9NEWRIVAL01"


def offers_batch_asins(tap: Wiretap, since: int) -> list[str]:
    return [
        r["uri"].split("/")[-2]
        for e in tap.calls("getItemOffersBatch", since)
        for r in httpx.Response(200, content=e.body).json()["requests"]
    ]


def test_a_notified_competitor_move_is_repriced_without_pulling_its_offers(server, data_dir, tmp_path, instance):
    spapi = spapi_for(server, tmp_path)
    defs = dg.Definitions(
        assets=ALL_ASSETS,
        jobs=[channel_pipeline_job, prices_job],
        resources={"warehouse": Warehouse(data_dir=str(data_dir)), "spapi": spapi, "s3": s3_resource()},
        executor=dg.in_process_executor,
    )
    quick = {"ops": {"listings_submission": {"config": {"poll_initial_seconds": 0.05}}}}
    baseline = defs.resolve_job_def("channel_pipeline_job").execute_in_process(
        partition_key="us", instance=instance, run_config=quick
    )
    assert baseline.success
    before = Decimal(str(listing(server, SKU)["price"]))
    enable("us", spapi, instance)
    tap = Wiretap(server)
    mark = len(tap.exchanges)

    # a competitor undercuts us on Amazon: ANY_OFFER_CHANGED goes to the seller's queue
    moved = httpx.post(
        server.url + "/_emulator/competitors",
        json={"marketplaceId": US, "asin": ASIN, "sellerId": RIVAL, "price": "12.00", "shipping": "0.00"},
        timeout=10,
    )
    assert moved.status_code == 200, moved.text
    server.state.delivery.flush(5)
    tick = run_sensor(data_dir, instance)
    assert [(r.job_name, r.partition_key) for r in tick.run_requests] == [("prices_job", "us")]
    request = tick.run_requests[0]

    run = defs.resolve_job_def("prices_job").execute_in_process(
        partition_key=request.partition_key, run_config=request.run_config, tags=request.tags, instance=instance
    )
    assert run.success
    assert offers_batch_asins(tap, mark) == []  # not for this ASIN, nor any other
    # priced against the notified offer: 12.00 landed - 0.5 % = 11.94, minus our 1.50 shipping
    assert query(data_dir, "us", "SELECT competitor_seller_id, price FROM buybox_prices WHERE sku = ?", [SKU]) == [
        (RIVAL, Decimal("10.44"))
    ]
    assert Decimal(str(listing(server, SKU)["price"])) == Decimal("10.44") != before
    assert query(
        data_dir,
        "us",
        "SELECT status FROM sync_history WHERE run_id = ? AND sku = ? AND operation = 'submit'",
        [run.run_id, SKU],
    ) == [("accepted",)]
    meta = run.asset_materializations_for_node("competitor_prices")[0].metadata
    assert meta["notified_asins"].value == 1 and "pulled_asins" not in meta
