"""Auth, feed outcomes and throttling against the emulator: the run ends with one final status per SKU (or fails
fast publishing nothing), nothing leaves the floor/ceiling, and the next run converges."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.listings import create_listing_job
from assets.shipments import shipment_confirmations
from resources.spapi.operations import OPERATIONS
from resources.warehouse import Warehouse
from tests.notifications.helpers import SELLER, enable
from tests.sync.helpers import MARKETPLACE, query

FEED = {"feed_threshold": 0}
PIPELINE_OPS = [
    "getInventorySummaries",
    "getItemOffersBatch",
    "patchListingsItem",
    "getListingsItem",
    "createFeedDocument",
    "createFeed",
    "getFeed",
    "getFeedDocument",
]


def change_master(scenario, old: str, new: str) -> None:
    master = scenario.data / "master_inventory.csv"
    text = master.read_text(encoding="utf-8")
    assert old in text
    master.write_text(text.replace(old, new), encoding="utf-8")


# -- auth -------------------------------------------------------------------------------------------------------------
def hits(scenario) -> dict[tuple[str, str], int]:
    """(kind, operation) → how often the emulator's faults hit it (proof the scenario's fault was injected)."""
    return {(h["kind"], h["operation"]): h["count"] for h in scenario.control("GET", "/faults")["hits"]}


def test_access_token_expiring_mid_run(scenario):
    scenario.start()
    # Amazon expires every access token it issued as the run's first patch arrives: the pulls before it used the
    # token (valid for another ~hour by the client's own clock), the patches after it need a new one.
    scenario.fault("access token expired mid-run", kind="expire_tokens", operation="patchListingsItem")
    run = scenario.run(spapi=scenario.spapi())
    assert run.success
    api = scenario.tap.api()
    first_patch = next(n for n, e in enumerate(api) if e.operation == "patchListingsItem")
    before = {e.operation for e in api[:first_patch] if e.status == 200}
    assert {"getInventorySummaries", "getItemOffersBatch"} <= before, "the token served calls earlier in the run"
    refused = [(e.operation, e.status) for e in api if e.status in (401, 403)]
    assert refused == [("patchListingsItem", 403)], refused
    assert len(scenario.tap.calls("token")) == 2, "one token for the run, then exactly one refresh"
    assert hits(scenario) == {("expire_tokens", "patchListingsItem"): 1}
    statuses = scenario.check_all(run.run_id)
    assert statuses["FBM-1"] == "accepted"
    assert "deferred" not in statuses.values(), statuses


def revoke(scenario):
    from pipelines.resources import EMULATOR_DEFAULTS

    scenario.control("POST", "/tokens/revoke", json={"refresh_token": EMULATOR_DEFAULTS["refresh_token"]})
    scenario.note_fault("refresh token revoked")


def test_refresh_token_revoked_publishes_nothing_and_the_next_run_converges(scenario):
    scenario.start()
    revoke(scenario)
    failed = scenario.run()
    assert not failed.success, "a revoked refresh token must fail the run"
    scenario.check_nothing_published("us")
    failures = [str(e) for e in failed.all_events if e.is_step_failure]
    assert failures and any("invalid_grant" in f or "Unauthorized" in f for f in failures), failures
    scenario.control("POST", "/tokens/restore", json={})
    again = scenario.run(spapi=scenario.spapi())
    assert again.success
    scenario.check_all(again.run_id)


def test_refresh_token_revoked_says_the_seller_must_reauthorize(scenario):
    scenario.not_applicable(1, "the run stops at its first call by design: no submit row")
    scenario.not_applicable(3, "nothing can be sent with a revoked grant")
    scenario.not_applicable(5, "the run fails by design; the sibling scenario converges after re-authorization")
    scenario.start()
    revoke(scenario)
    failed = scenario.run()
    assert not failed.success
    failures = " ".join(str(e) for e in failed.all_events if e.is_step_failure)
    assert "Unauthorized" in failures and "re-authori" in failures, failures


# -- feeds ------------------------------------------------------------------------------------------------------------
def test_fatal_feed_then_converges(scenario):
    scenario.start()
    scenario.fault(kind="feed_fatal", operation="createFeed", feedType="JSON_LISTINGS_FEED")
    first = scenario.run(push=FEED)
    assert first.success
    statuses = scenario.check_final_status(first.run_id)
    assert set(statuses.values()) == {"error"}, statuses
    assert query(scenario.data, "us", "SELECT count(*) FROM published_state") == [(0,)]
    scenario.check_bounds()
    second = scenario.run(push=FEED)
    assert second.success
    scenario.check_all(second.run_id)


def test_feed_stuck_in_queue_past_its_deadline(scenario):
    scenario.start()
    scenario.fault(kind="feed_stuck", operation="createFeed", feedType="JSON_LISTINGS_FEED")
    push = {**FEED, "poll_max_wait_seconds": 0.5}
    first = scenario.run(push=push)
    assert first.success
    statuses = scenario.check_final_status(first.run_id)
    assert set(statuses.values()) == {"pending"}, statuses
    scenario.check_no_double()
    second = scenario.run(push=push)
    assert second.success
    scenario.check_converged(second.run_id)
    scenario.check_secrets()


def test_report_with_errors_and_warnings(scenario):
    scenario.not_applicable(5, "Amazon rejects or warns on SKUs by design: no state to converge to")
    change_master(scenario, "Acme Cup,PRODUCT", "Acme Cup,WATCH")  # gated: 6039 ERROR
    scenario.start()
    mappings = scenario.data / "channel_mappings.csv"
    text = mappings.read_text(encoding="utf-8")
    # FBA-1 mapped as FBM although Amazon fulfils it: its quantity draws 90111 WARNING; UNMAPPED has no listing: 90700.
    text = text.replace("us,FBA-1,B000000001,FBA,,", "us,FBA-1,B000000001,FBM,,")
    mappings.write_text(text + "us,UNMAPPED,B000000009,FBM,,5.00,10.00,,\n", encoding="utf-8")
    scenario.note_fault("report: 6039 + 90700 errors, 90111 warning")
    first = scenario.run(push={**FEED, "readback_sample": 100})
    assert first.success
    statuses = scenario.check_final_status(first.run_id)
    assert statuses["FBM-CEIL"] == "category_restricted" and statuses["UNMAPPED"] == "error"
    assert statuses["FBA-1"] in ("warning", "not_applied"), statuses
    assert statuses["FBM-1"] == "accepted"
    scenario.check_bounds()  # FBA-1 is FBM in the seller's file here: its quantity is within master stock
    scenario.check_no_double()
    scenario.check_secrets()


def test_expired_upload_url(scenario):
    scenario.start()
    scenario.tap.fail_documents("PUT", "expire", 1)
    scenario.note_fault("upload URL expired (403 on the PUT)")
    first = scenario.run(push=FEED)
    assert first.success, "a failed upload must not fail the run"
    statuses = scenario.check_final_status(first.run_id)
    assert set(statuses.values()) == {"pending"}, statuses
    second = scenario.run(push=FEED)
    assert second.success
    scenario.check_all(second.run_id)


# -- throttling -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["patch", pytest.param("feed", marks=pytest.mark.slow)])
def test_429_storm_on_every_operation(scenario, path):
    scenario.start()
    # Every operation the path calls (a fault on an operation the path never calls would never be hit).
    expected = {"getInventorySummaries", "getItemOffersBatch"} | (
        {"createFeedDocument", "createFeed", "getFeed", "getFeedDocument"}
        if path == "feed"
        else {"patchListingsItem", "getListingsItem"}
    )
    for operation in sorted(expected):
        scenario.control("POST", "/faults", json={"kind": "status", "status": 429, "operation": operation, "count": 2})
    scenario.note_fault(f"429×2 on each of the {len(expected)} operations of the {path} path")
    # The client's own buckets at the emulator's scale (rate ×1000, as emulator.testing runs it), else each 429 on
    # getItemOffersBatch (0.1 req/s) costs Amazon's real 10 s.
    plans = {op: {"rate": OPERATIONS[op].rate * 1000, "burst": OPERATIONS[op].burst} for op in PIPELINE_OPS}
    spapi = scenario.spapi(max_attempts=4, usage_plans=plans)
    first = scenario.run(spapi=spapi, push=FEED if path == "feed" else {"readback_sample": 100})
    assert first.success
    used = {e.operation for e in scenario.tap.api() if e.status == 429}
    assert expected <= used, f"429s not met on {sorted(expected - used)}"
    met = hits(scenario)
    assert all(met.get(("status", op)) == 2 for op in expected), met
    statuses = scenario.check_all(first.run_id)
    assert "deferred" not in statuses.values()


# The operations the pipeline calls beyond the channel run's 8: the feed resume path, create_listing_job, shipments,
# enable_channel and the notification wiring (notification_setup_job calls the same ensure_subscriptions).
OTHER_OPS = [
    "getFeeds",
    "cancelFeed",
    "putListingsItem",
    "getListingsRestrictions",
    "getOrderItems",
    "confirmShipment",
    "getOrder",
    "getMarketplaceParticipations",
    "getDestinations",
    "createDestination",
    "getSubscription",
    "createSubscription",
]


@pytest.mark.slow
def test_429_storm_on_every_other_operation(scenario, moto_sqs, monkeypatch):
    monkeypatch.setenv("SALES_CHANNEL_SQS_ENDPOINT", moto_sqs)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    master = scenario.data / "master_inventory.csv"
    master.write_text(master.read_text(encoding="utf-8") + "NEW-1,5,19.99,,,099999999993,UPC,Acme,Acme Pan,PRODUCT\n")
    scenario.start()
    for operation in OTHER_OPS:
        scenario.control("POST", "/faults", json={"kind": "status", "status": 429, "operation": operation, "count": 2})
    scenario.note_fault(f"429×2 on each of {len(OTHER_OPS)} operations")
    plans = {
        op: {"rate": OPERATIONS[op].rate * 1000, "burst": OPERATIONS[op].burst} for op in [*PIPELINE_OPS, *OTHER_OPS]
    }
    spapi = scenario.spapi(max_attempts=4, usage_plans=plans)

    # enable_channel: getMarketplaceParticipations, then the destination and the three subscriptions.
    with dg.instance_for_test() as instance:
        enable("us", spapi, instance)
    assert sorted(t for (s, t) in scenario.server.state.store.subscriptions if s == SELLER) == [
        "ANY_OFFER_CHANGED",
        "FBA_INVENTORY_AVAILABILITY_CHANGES",
        "ORDER_CHANGE",
    ]

    # The feed resume path: createFeed's answer is lost and the feed sticks IN_QUEUE; the next run finds it with
    # getFeeds, cancels it past its deadline (cancelFeed) and resends its SKUs.
    scenario.control("POST", "/faults", json={"kind": "feed_stuck", "operation": "createFeed"})
    scenario.control("POST", "/faults", json={"kind": "lost_answer", "operation": "createFeed", "status": 503})
    push = {**FEED, "poll_max_wait_seconds": 0.5}
    lost = scenario.run(spapi=spapi, push=push)
    assert lost.success
    assert set(scenario.check_final_status(lost.run_id).values()) == {"pending"}
    resumed = scenario.run(spapi=spapi, push=push)
    assert resumed.success
    statuses = scenario.check_all(resumed.run_id)
    assert set(statuses.values()) <= {"accepted", "category_restricted", "error"}, statuses
    assert [f.status for f in scenario.server.state.store.feeds.values()].count("CANCELLED") == 1

    # create_listing_job: getListingsRestrictions (an ASIN is given), putListingsItem (preview, then the listing).
    listed = create_listing_job.execute_in_process(
        run_config={
            "ops": {
                "create_listing_op": {
                    "config": {"channel": "us", "sku": "NEW-1", "product_type": "PRODUCT", "asin": "B000000002"}
                }
            }
        },
        resources={"warehouse": Warehouse(data_dir=str(scenario.data)), "spapi": spapi},
        raise_on_error=False,
    )
    assert listed.success
    assert query(scenario.data, "us", "SELECT status FROM listing_mappings WHERE sku = 'NEW-1'") == [("accepted",)]

    # Shipments: getOrderItems, confirmShipment (its answer lost), getOrder to settle it.
    order = scenario.order_to_ship("FBM-1", 1)
    scenario.control("POST", "/faults", json={"kind": "lost_answer", "operation": "confirmShipment", "status": 503})
    shipped = dg.materialize(
        [shipment_confirmations],
        partition_key="us",
        resources={"warehouse": Warehouse(data_dir=str(scenario.data)), "spapi": spapi},
    )
    assert shipped.success
    assert query(scenario.data, "us", "SELECT status FROM shipment_confirmations") == [("confirmed",)]
    assert len(scenario.server.state.store.orders[order["orderId"]].shipments) == 1

    met = hits(scenario)
    missed = [op for op in OTHER_OPS if met.get(("status", op)) != 2]
    assert not missed, f"429 storm not met on {missed}: {met}"
    throttled = {e.operation for e in scenario.tap.api() if e.status == 429}
    assert set(OTHER_OPS) <= throttled
    assert scenario.server.state.faults.list() == []
    scenario.check_secrets()


def test_daily_cap_reached_mid_run(scenario):
    scenario.start()
    # The pulls take 2 requests; 2 more patches fit in the day, the other 3 SKUs are QuotaExceeded.
    capped = scenario.spapi(requests_per_day=4, max_total_seconds=1.0)
    scenario.note_fault("requests_per_day=4")
    first = scenario.run(spapi=capped)
    assert first.success, "a spent daily quota must end the run cleanly"
    statuses = scenario.check_final_status(first.run_id)
    deferred = {sku for sku, s in statuses.items() if s == "deferred"}
    codes = query(
        scenario.data,
        "us",
        "SELECT DISTINCT code FROM sync_history WHERE run_id = ? AND status = 'deferred'",
        [first.run_id],
    )
    assert deferred and codes == [("QuotaExceeded",)], statuses
    assert set(statuses.values()) - {"deferred"} <= {"accepted", "category_restricted", "error"}
    scenario.check_bounds()
    nextday = scenario.spapi(state_dir=str(scenario.tmp_path / "spapi-next-day"))
    second = scenario.run(spapi=nextday)
    assert second.success
    again = scenario.check_all(second.run_id)
    assert all(again[sku] == "accepted" for sku in deferred), again
    patched = [sku for sku, mps, _ in scenario.tap.patches() if MARKETPLACE["us"] in mps]
    assert len(patched) == len(set(patched)), "a deferred SKU was sent twice"
