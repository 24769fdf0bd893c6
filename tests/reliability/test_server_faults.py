"""Server faults at every step of the feed workflow — createFeedDocument, the upload, createFeed, polling (getFeed),
getFeedDocument, the report download — and lost answers after a write reached Amazon.

- One fault (500, 503, a dropped connection, latency beyond the read timeout) is absorbed by the client's retries.
- A burst is N consecutive 500s or 503s on one step (`RELIABILITY_BURST`, default 5). The client's retry budget is 5
  attempts per call (`RetryPolicy.max_attempts`), and createFeed is sent once per run (never resent once it may have
  reached Amazon), so a burst of 5 outlasts the budget: the run still ends with one final status per SKU — every SKU
  of the feed `pending` (code `feed_unconfirmed` up to createFeed, `feed_unread` once the feed exists) — and nothing
  is submitted twice; the next run converges (it adopts or resends the feed, or polls it). On createFeed each run
  meets one 500 of the burst, so the run after the burst converges.
- A lost answer (the write took effect, its answer is a 503 or a dropped connection) on createFeed, patchListingsItem
  and confirmShipment: nothing is applied twice and nothing Amazon applied is recorded as failed.
The presigned document transfers are faulted by the emulator (operations `uploadDocument` / `downloadDocument`)."""

from __future__ import annotations

import os
import time

import dagster as dg
import pytest

from assets.shipments import shipment_confirmations
from resources.spapi import RetryPolicy
from resources.warehouse import Warehouse
from tests.sync.helpers import MARKETPLACE, query

FEED = {"feed_threshold": 0}
STEPS = ["createFeedDocument", "uploadDocument", "createFeed", "getFeed", "getFeedDocument", "downloadDocument"]
KINDS = ["status500", "status503", "drop", "latency"]
BURST_ENV = "RELIABILITY_BURST"
BURST = int(os.environ.get(BURST_ENV) or 5)
ATTEMPTS = RetryPolicy().max_attempts  # the client's default retry budget: 5 attempts per call
# The fast subset: every step once, every kind at least once; two bursts (one before the feed exists, one after).
FAST = {
    ("createFeedDocument", "status500"),
    ("uploadDocument", "latency"),
    ("createFeed", "drop"),
    ("getFeed", "latency"),
    ("getFeedDocument", "status503"),
    ("downloadDocument", "drop"),
}
FAST_BURSTS = {("uploadDocument", 503), ("getFeed", 500)}
MATRIX = [
    pytest.param(step, kind, marks=() if (step, kind) in FAST else pytest.mark.slow, id=f"{step}-{kind}")
    for step in STEPS
    for kind in KINDS
]
BURSTS = [
    pytest.param(step, status, marks=() if (step, status) in FAST_BURSTS else pytest.mark.slow, id=f"{step}-{status}")
    for step in STEPS
    for status in (500, 503)
] + [  # a transfer cut off on every attempt
    pytest.param(step, "drop", marks=pytest.mark.slow, id=f"{step}-drop")
    for step in ("uploadDocument", "downloadDocument")
]


def hits(scenario) -> dict[tuple[str, str], int]:
    """(kind, operation) → how often the emulator's faults hit it (proof the scenario's fault was injected)."""
    return {(h["kind"], h["operation"]): h["count"] for h in scenario.control("GET", "/faults")["hits"]}


def inject(scenario, step: str, kind: str, count: int = 1) -> str:
    """The fault on the step (the emulator's; on the document transfers too); returns the fault's kind."""
    if kind.startswith("status"):
        scenario.fault(kind="status", status=int(kind[-3:]), operation=step, count=count)
        return "status"
    if kind == "drop":
        scenario.fault(kind="drop", operation=step, count=count)
        return "drop"
    scenario.fault(kind="latency", latency_ms=1500, operation=step, count=count)
    return "latency"


@pytest.mark.parametrize(("step", "kind"), MATRIX)
def test_feed_step_fault(scenario, step, kind):
    scenario.start()
    spapi = scenario.spapi(read_timeout=0.5, max_attempts=3)
    fault_kind = inject(scenario, step, kind)
    first = scenario.run(spapi=spapi, push=FEED)
    assert first.success, f"a single {kind} on {step} must not fail the run"
    statuses = scenario.check_final_status(first.run_id)
    if step == "createFeed":  # never resent once it may have reached Amazon: settled next run
        assert set(statuses.values()) == {"pending"}, statuses
    else:  # absorbed by the retries
        assert "pending" not in statuses.values(), statuses
    scenario.check_bounds()
    scenario.check_no_double()
    assert scenario.server.state.faults.list() == [], "the fault was not hit"
    assert hits(scenario) == {(fault_kind, step): 1}
    if kind == "latency":
        time.sleep(1.6)  # the late request completes on Amazon's side before the next scheduled run
    second = scenario.run(spapi=scenario.spapi(), push=FEED)
    assert second.success
    scenario.check_all(second.run_id)
    assert len(scenario.server.state.store.feeds) == 1, "one feed reached Amazon across the fault and the next run"


@pytest.mark.parametrize(("step", "status"), BURSTS)
def test_feed_step_burst(scenario, step, status):
    scenario.start()
    spapi = scenario.spapi(max_attempts=ATTEMPTS)
    kind = "drop" if status == "drop" else "status"
    spec = {"status": status} if kind == "status" else {}
    scenario.fault(f"{status}×{BURST} {step} (burst)", kind=kind, operation=step, count=BURST, **spec)
    # Each call spends up to ATTEMPTS of the burst; createFeed spends one per run (never resent within a run).
    per_run = 1 if step == "createFeed" else ATTEMPTS
    outlasted = BURST // per_run  # runs in which the burst outlasts the retries
    before_feed = STEPS.index(step) <= STEPS.index("createFeed")
    for n in range(outlasted):
        run = scenario.run(spapi=spapi, push=FEED)
        assert run.success, f"run {n + 1}: a burst outlasting the retries must not fail the run"
        statuses = scenario.check_final_status(run.run_id)
        assert statuses and set(statuses.values()) == {"pending"}, statuses
        codes = query(
            scenario.data,
            "us",
            "SELECT DISTINCT code FROM sync_history WHERE run_id = ? AND operation = 'submit'",
            [run.run_id],
        )
        assert codes == [("feed_unconfirmed" if before_feed else "feed_unread",)], codes
        scenario.check_no_double()
        assert len(scenario.server.state.store.feeds) == (0 if before_feed else 1)
        assert not query(scenario.data, "us", "SELECT * FROM published_state"), "nothing is published unconfirmed"
    converging = scenario.run(spapi=spapi, push=FEED)
    assert converging.success
    statuses = scenario.check_all(converging.run_id)
    assert set(statuses.values()) <= {"accepted", "category_restricted", "error"}, statuses
    assert hits(scenario) == {(kind, step): BURST} and scenario.server.state.faults.list() == []
    assert len(scenario.server.state.store.feeds) == 1, "one feed reached Amazon across the burst and the runs after"


def test_no_fault_baseline(scenario):
    scenario.start()
    first = scenario.run(push=FEED)
    assert first.success
    statuses = scenario.check_all(first.run_id)
    assert set(statuses.values()) <= {"accepted", "category_restricted", "error"}
    assert scenario.tap.calls("createFeed"), "the feed path was not taken"


# -- lost answers: the write reached Amazon, its answer did not come back ---------------------------------------------
@pytest.mark.parametrize("status", [503, pytest.param(None, marks=pytest.mark.slow)], ids=["503", "dropped"])
def test_lost_create_feed_answer_is_adopted_not_resent(scenario, status):
    scenario.start()
    scenario.fault(kind="lost_answer", operation="createFeed", **({"status": status} if status else {}))
    first = scenario.run(push=FEED)
    assert first.success
    statuses = scenario.check_final_status(first.run_id)
    assert set(statuses.values()) == {"pending"}, statuses
    assert len(scenario.server.state.store.feeds) == 1, "createFeed took effect once and was not resent"
    assert len(scenario.tap.calls("createFeed")) == 1
    second = scenario.run(push=FEED)
    assert second.success
    statuses = scenario.check_all(second.run_id)
    assert set(statuses.values()) <= {"accepted", "category_restricted", "error"}, statuses
    assert len(scenario.server.state.store.feeds) == 1, "the next run adopted the feed instead of resending it"
    assert len(scenario.tap.calls("getFeeds")) >= 1
    assert hits(scenario) == {("lost_answer", "createFeed"): 1}


@pytest.mark.slow
def test_lost_create_feed_answer_then_a_get_feeds_burst(scenario):
    """The next run cannot look for the feed (getFeeds fails past the retries): the submission stays open, its SKUs
    `pending` again, and the run after adopts the feed."""
    scenario.start()
    spapi = scenario.spapi(max_attempts=ATTEMPTS)
    scenario.fault(kind="lost_answer", operation="createFeed", status=503)
    assert scenario.run(spapi=spapi, push=FEED).success
    scenario.fault(f"503×{ATTEMPTS} getFeeds (burst)", kind="status", status=503, operation="getFeeds", count=ATTEMPTS)
    blind = scenario.run(spapi=spapi, push=FEED)
    assert blind.success, "a getFeeds burst must not fail the run"
    statuses = scenario.check_final_status(blind.run_id)
    assert set(statuses.values()) == {"pending"}, statuses
    assert query(scenario.data, "us", "SELECT status FROM submissions") == [("recorded",)]
    third = scenario.run(spapi=spapi, push=FEED)
    assert third.success
    scenario.check_all(third.run_id)
    assert len(scenario.server.state.store.feeds) == 1, "the feed was adopted, never resent"
    assert hits(scenario) == {("lost_answer", "createFeed"): 1, ("status", "getFeeds"): ATTEMPTS}


LOST_PATCH = [
    # The transport resends the patch (a replace: the second identical one is harmless).
    pytest.param("retried", marks=pytest.mark.slow, id="retried"),
    # 503s on every attempt but the last, which Amazon applies and whose answer is lost: the retries are spent.
    pytest.param("outlasted", id="outlasted"),
    # ... and the listing cannot be read back either (a burst on getListingsItem): pending, resent next run.
    pytest.param("unreadable", marks=pytest.mark.slow, id="unreadable"),
]


@pytest.mark.parametrize("case", LOST_PATCH)
def test_lost_patch_answer_is_never_recorded_as_failed(scenario, case):
    scenario.start()
    spapi = scenario.spapi(max_attempts=ATTEMPTS)
    expected = {("lost_answer", "patchListingsItem"): 1}
    if case != "retried":
        scenario.fault(kind="status", status=503, operation="patchListingsItem", count=ATTEMPTS - 1)
        expected[("status", "patchListingsItem")] = ATTEMPTS - 1
    scenario.fault(kind="lost_answer", operation="patchListingsItem", status=503)
    if case == "unreadable":
        scenario.fault(kind="status", status=503, operation="getListingsItem", count=ATTEMPTS)
        expected[("status", "getListingsItem")] = ATTEMPTS
    first = scenario.run(spapi=spapi, push={"readback_sample": 100})
    assert first.success
    statuses = scenario.check_final_status(first.run_id)
    assert hits(scenario) == expected and scenario.server.state.faults.list() == []
    # The first SKU patched (in SKU order) met the faults; the listing on Amazon shows its values applied.
    lost = sorted(sku for sku, _, _ in scenario.tap.patches())[0]
    resent = [patches for sku, _, patches in scenario.tap.patches() if sku == lost]
    assert len(resent) == (2 if case == "retried" else ATTEMPTS), "the transport resends a patch (a replace)"
    assert all(patches == resent[0] for patches in resent), "every resend is the identical patch"
    applied = scenario.control("GET", "/listings", params={"sku": lost, "marketplaceId": MARKETPLACE["us"]})
    assert applied["listings"][0]["price"] is not None
    assert statuses[lost] != "error", f"{lost}: Amazon applied it, the push recorded it as an error"
    if case == "unreadable":
        assert statuses[lost] == "pending", statuses
        second = scenario.run(spapi=spapi, push={"readback_sample": 100})
        assert second.success
        statuses = scenario.check_all(second.run_id)
        assert statuses[lost] == "accepted"
        return
    assert statuses[lost] == "accepted", statuses
    scenario.check_all(first.run_id)
    published = query(scenario.data, "us", "SELECT count(*) FROM published_state WHERE sku = ?", [lost])
    assert published == [(1,)], "the applied values are Amazon's state now: not resent next run"
    second = scenario.run(spapi=spapi, push={"readback_sample": 100})
    assert second.success
    assert scenario.check_final_status(second.run_id)[lost] == "unchanged"


@pytest.mark.parametrize("status", [503, pytest.param(None, marks=pytest.mark.slow)], ids=["503", "dropped"])
def test_lost_confirm_shipment_answer_confirms_once(scenario, status):
    scenario.not_applicable(1, "a shipment run writes no submit rows (its ledger is asserted)")
    scenario.not_applicable(2, "no offer is sent by a shipment run")
    scenario.not_applicable(3, "asserted directly: one package on the order, ledger attempts 1")
    scenario.not_applicable(5, "asserted directly: the order is Shipped on Amazon")
    scenario.start()
    order = scenario.order_to_ship("FBM-1", 2)
    scenario.fault(kind="lost_answer", operation="confirmShipment", **({"status": status} if status else {}))
    resources = {"warehouse": Warehouse(data_dir=str(scenario.data)), "spapi": scenario.spapi(max_attempts=ATTEMPTS)}
    for _ in range(2):  # the second run finds it confirmed in the ledger: nothing sent again
        result = dg.materialize([shipment_confirmations], partition_key="us", resources=resources)
        assert result.success
        scenario.texts.extend(str(event) for event in result.all_events)
    shipped = scenario.server.state.store.orders[order["orderId"]]
    assert shipped.status == "Shipped" and len(shipped.shipments) == 1, "Amazon took the package exactly once"
    ledger = query(scenario.data, "us", "SELECT status, attempts FROM shipment_confirmations")
    assert ledger == [("confirmed", 1)], ledger
    history = query(scenario.data, "us", "SELECT status FROM sync_history WHERE operation = 'confirm_shipment'")
    assert history == [("confirmed",)], "nothing Amazon accepted is recorded as failed"
    assert len(scenario.tap.calls("getOrder")) == 1, "the lost answer was settled by reading the order"
    assert hits(scenario) == {("lost_answer", "confirmShipment"): 1}
    scenario.check_secrets()
