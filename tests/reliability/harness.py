"""The scenario harness: the small seller (tests/data/small), an emulator over HTTP with a wiretap, Dagster runs of
the channel pipeline, and the invariants recorded as they are asserted."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import httpx

from emulator.server import EmulatorServer
from pipelines.resources import EMULATOR_DEFAULTS
from reliability import invariants as inv
from reliability.report import Row
from reliability.wiretap import Wiretap
from resources.spapi_resource import SpApiResource
from resources.warehouse import Warehouse
from tests.sync.helpers import ALL_ASSETS, MARKETPLACE, seller_dir, spapi_for, start_emulator

SELLER = "A3DEMOSELLER01"
AWS_SECRET = "emulator-aws-secret-access-key"
# Set in the environment of every run (and looked for everywhere): AWS keys, the seller's own grant (the same token
# the emulator accepts, so revoking it still bites) and another seller's grant the run must never touch.
RUN_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIARELIABILITY0TEST",
    "AWS_SECRET_ACCESS_KEY": "reliability-aws-secret-access-key-0123456789",
    f"SPAPI_LWA_REFRESH_TOKEN_{SELLER}": EMULATOR_DEFAULTS["refresh_token"],
    "SPAPI_LWA_REFRESH_TOKEN_A9OTHERSELLER99": "Atzr|reliability-other-seller-grant-0123456789",
}
# Invariants a scenario may leave unasserted for a reason the harness can see for itself.
INVARIANTS = range(1, 7)


@contextmanager
def run_environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class Scenario:
    def __init__(self, name: str, tmp_path: Path, factory: Callable[..., EmulatorServer], caplog: Any) -> None:
        self.row = Row(name)
        self.tmp_path = tmp_path
        self.factory = factory
        self.caplog = caplog
        self.data = seller_dir(tmp_path)
        self.server: EmulatorServer | None = None
        self.tap: Wiretap | None = None
        self.texts: list[str] = []
        self.faults: list[str] = []
        self.retried: dict[str, int] = {}
        self.skus: set[str] = set()
        self._bounds_mark = 0
        self.runs = 0

    # -- setting up -------------------------------------------------------------------------------------------------
    def start(self, **options: Any) -> EmulatorServer:
        self.server = start_emulator(self.factory, self.data, **options)
        self.tap = Wiretap(self.server)
        return self.server

    def spapi(self, **overrides: Any) -> SpApiResource:
        assert self.server is not None
        return spapi_for(self.server, self.tmp_path, **overrides)

    def control(self, method: str, path: str, **kw: Any) -> Any:
        assert self.server is not None
        response = httpx.request(method, self.server.url + "/_emulator" + path, timeout=10, **kw)
        assert response.status_code < 300, response.text
        return response.json()

    def fault(self, label: str | None = None, **spec: Any) -> None:
        self.control("POST", "/faults", json=spec)
        self.faults.append(
            label
            or f"{spec['kind']}{'/' + str(spec['status']) if 'status' in spec else ''}"
            f" {spec.get('operation', '*')}×{spec.get('count', 1)}"
        )

    def note_fault(self, label: str) -> None:
        self.faults.append(label)

    def order_to_ship(self, sku: str, quantity: int) -> dict[str, Any]:
        """A buyer's order on us (the emulator's world), and the seller's shipments file recording it as shipped."""
        order = self.control(
            "POST", "/orders", json={"marketplaceId": MARKETPLACE["us"], "items": [{"sku": sku, "quantity": quantity}]}
        )
        (self.data / "shipments.csv").write_text(
            "channel,order_id,carrier_code,carrier_name,tracking_number,ship_date,shipping_method\n"
            f"us,{order['orderId']},UPS,,1Z999AA10123456784,2026-11-29T14:00:00+00:00,Ground\n",
            encoding="utf-8",
        )
        return order

    # -- running ----------------------------------------------------------------------------------------------------
    def run(
        self,
        channel: str = "us",
        spapi: SpApiResource | None = None,
        push: dict[str, Any] | None = None,
        assets: list[Any] | None = None,
        **kw: Any,
    ) -> dg.ExecuteInProcessResult:
        config = {"poll_initial_seconds": 0.05, **(push or {})}
        assets = assets or ALL_ASSETS
        keys = {key.to_user_string() for a in assets for key in getattr(a, "keys", ())}
        ops = {"listings_submission": {"config": config}} if "listings_submission" in keys else {}
        instance = kw.pop("instance", None)
        with run_environment(RUN_ENV), dg.DagsterInstance.ephemeral() as ephemeral:
            used = instance or ephemeral
            result = dg.materialize(
                assets,
                partition_key=channel,
                resources={"warehouse": Warehouse(data_dir=str(self.data)), "spapi": spapi or self.spapi()},
                run_config={"ops": {**ops, **kw.pop("ops", {})}},
                raise_on_error=False,
                instance=used,
                **kw,
            )
            # The run's logs as Dagster stored them (context.log messages, every event's metadata), for invariant 6.
            self.texts.extend(inv.run_log_texts(used, result.run_id))
            read = inv.step_window(used, result.run_id, "reservations")  # when the step read the store
        self.runs += 1
        self.texts.extend(str(event) for event in result.all_events)
        retried = 0
        for event in result.all_events:
            if event.is_step_materialization:
                meta = event.step_materialization_data.materialization.metadata
                if "spapi/total/retried" in meta:
                    retried = max(retried, int(meta["spapi/total/retried"].value))
        self.retried[result.run_id] = retried
        if self.tap is not None:
            self.check_bounds(channel)  # invariant 2 after every run, against that run's files
        reserved = any(
            e.is_step_materialization and e.asset_key == dg.AssetKey("reservations") for e in result.all_events
        )
        if reserved:  # invariant 3: the run's reservations count each open order of the seller once
            self._held(3, lambda: inv.reservations_counted_once(self.data, channel, window=read))
        return result

    # -- invariants -------------------------------------------------------------------------------------------------
    def _held(self, number: int, check: Callable[[], Any]) -> Any:
        if number not in self.row.applicable:
            self.row.applicable.append(number)
        value = check()
        self.row.held.append(number)
        return value

    def check_final_status(self, run_id: str, channel: str = "us", **kw: Any) -> dict[str, str]:
        statuses = self._held(1, lambda: inv.one_final_status(self.data, channel, run_id, **kw))
        self.skus |= {f"{channel}:{sku}" for sku in statuses}
        return statuses

    def check_nothing_published(self, channel: str) -> None:
        assert self.tap is not None
        self._held(1, lambda: inv.nothing_submitted(self.data, channel, self.tap, MARKETPLACE[channel]))

    def check_bounds(self, channel: str = "us", since: int | None = None) -> int:
        """Invariant 2 for what reached Amazon since the last check (or since exchange `since`)."""
        assert self.tap is not None
        mark, self._bounds_mark = self._bounds_mark, len(self.tap.exchanges)
        since = mark if since is None else since
        checked = self._held(2, lambda: inv.within_bounds(self.data, channel, self.tap, MARKETPLACE[channel], since))
        self.row.offers_checked += checked
        return checked

    def check_no_double(self) -> None:
        """Invariant 3 on Amazon's side: no feed content created twice, no patch accepted twice, no order confirmed
        twice."""
        assert self.tap is not None and self.server is not None

        def check() -> None:
            inv.no_double_submission(self.tap, self.server)
            inv.no_double_confirmation(self.server)

        self._held(3, check)

    def check_notifications(
        self,
        store_path: Path,
        sent: dict[str, str],
        queue_left: int,
        run_requests: Sequence[dg.RunRequest] | None = None,
        ticks: int | None = None,
    ) -> int:
        """Invariant 3 (with the sensor's `run_requests` over `ticks`: each notification requested at most the runs
        it should; the reservations half is checked after each run that computes them) and 4 (every message sent to
        the queue stored or dead-lettered, the queue drained). Returns the notifications stored."""
        if run_requests is not None:
            self._held(3, lambda: inv.requested_runs_bounded(store_path, run_requests, ticks or 0))
        stored = inv.stored_notifications(store_path)

        def accounted() -> None:
            inv.notifications_accounted(store_path, sent, queue_left)
            assert queue_left == 0, f"invariant 4: {queue_left} message(s) left on the queue after draining"

        self._held(4, accounted)
        return stored

    def check_converged(self, run_id: str, channel: str = "us") -> int:
        assert self.server is not None
        return self._held(
            5, lambda: inv.converged(self.data, channel, run_id, self.server, MARKETPLACE[channel], SELLER)
        )

    def secrets(self) -> list[str]:
        tokens = set(self.tap.access_tokens) if self.tap else set()
        env = [v for k, v in RUN_ENV.items() if "SECRET" in k or "TOKEN" in k]
        return [EMULATOR_DEFAULTS["client_secret"], EMULATOR_DEFAULTS["refresh_token"], AWS_SECRET, *env, *tokens]

    def check_secrets(self, extra_texts: list[str] | None = None) -> int:
        # Amazon's own side (the embedded emulator's state under <data>/emulator) is not ours to scan.
        files = [p for p in self.data.rglob("*") if "emulator" not in p.relative_to(self.data).parts[:1]]
        texts = [*self.texts, self.caplog.text, *(extra_texts or [])]
        assert self.tap is None or self.tap.access_tokens, "no access token was issued: nothing to look for"
        return self._held(6, lambda: inv.no_secrets(self.secrets(), files=files, texts=texts))

    def check_all(self, run_id: str, channel: str = "us", converge: bool = True) -> dict[str, str]:
        """Invariants 1, 2, 3, 5 (when `converge`) and 6 for a run that published."""
        statuses = self.check_final_status(run_id, channel)
        self.check_bounds(channel)
        self.check_no_double()
        if converge:
            self.check_converged(run_id, channel)
        self.check_secrets()
        return statuses

    def not_applicable(self, number: int, why: str) -> None:
        """Mark invariant `number` n/a for this scenario, with the reason shown in the table."""
        self.row.why_na[str(number)] = why

    # -- faults -----------------------------------------------------------------------------------------------------
    def injected_faults(self) -> list[dict[str, Any]]:
        """Every fault this scenario injected: the emulator's (each POST /_emulator/faults the wiretap saw accepted,
        through `fault()` or `control()`) and the wiretap's own on the document URLs."""
        if self.tap is None:
            return []
        specs = [
            json.loads(e.body)
            for e in self.tap.exchanges
            if e.operation == "control" and e.method == "POST" and e.path == "/_emulator/faults" and e.status == 201
        ]
        return specs + self.tap.document_faults()

    def faults_hit(self) -> dict[str, int]:
        """label → how many requests each injected fault hit (the emulator's `hits`, the wiretap's own counts)."""
        if self.tap is None or self.server is None:
            return {}
        hits = self.control("GET", "/faults")["hits"]
        out: dict[str, int] = {}
        for spec in self.injected_faults():
            kind, operation = spec["kind"], spec.get("operation", "*")
            status = spec.get("status")
            label = f"{kind}{'/' + str(status) if status else ''} {operation}"
            if "hits" in spec:  # the wiretap's
                count = int(spec["hits"])
            else:
                count = sum(h["count"] for h in hits if h["kind"] == kind and operation in ("*", h["operation"]))
            out[label] = count
        return out

    def assert_faults_hit(self) -> dict[str, int]:
        """Record the hits of every injected fault in the row; fail when one was never hit (the scenario did not
        test what it says)."""
        hit = self.faults_hit()
        self.row.faults_hit = hit
        unused = sorted(label for label, count in hit.items() if count == 0)
        assert not unused, f"fault(s) injected but never hit: {unused}"
        return hit

    # -- the row ----------------------------------------------------------------------------------------------------
    def finish(self) -> Row:
        if self.server is not None and not self.row.faults_hit:
            try:
                self.row.faults_hit = self.faults_hit()
            except Exception as exc:  # noqa: BLE001 - the emulator may be gone after a failure; the row still goes out
                self.row.faults_hit = {f"(hits unreadable: {type(exc).__name__})": 0}
        self.row.faults = "; ".join(self.faults) or "-"
        self.row.skus = len(self.skus)
        if self.tap is not None:
            self.row.requests = self.tap.requests()
            self.row.throttled = self.tap.throttled()
        self.row.retries = sum(self.retried.values())
        self._reasons()
        return self.row

    def _reasons(self) -> None:
        """Reasons for the n/a invariants the harness can state as facts; any other stays `no reason given`."""
        facts = {
            2: "nothing reached the emulator" if self.tap is None or not self.tap.requests() else None,
            4: "no notification sent" if not (self.data / "warehouse" / "_notifications.duckdb").exists() else None,
            6: "no access token issued" if self.tap is not None and not self.tap.access_tokens else None,
        }
        for number in INVARIANTS:
            if number in self.row.applicable or str(number) in self.row.why_na:
                continue
            self.row.why_na[str(number)] = facts.get(number) or "no reason given"
