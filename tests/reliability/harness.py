"""The scenario harness: the small seller (tests/data/small), an emulator over HTTP with a wiretap, Dagster runs of
the channel pipeline, and the invariants recorded as they are asserted."""

from __future__ import annotations

import json
from collections.abc import Callable
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
        result = dg.materialize(
            assets or ALL_ASSETS,
            partition_key=channel,
            resources={"warehouse": Warehouse(data_dir=str(self.data)), "spapi": spapi or self.spapi()},
            run_config={"ops": {"listings_submission": {"config": config}, **kw.pop("ops", {})}},
            raise_on_error=False,
            **kw,
        )
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
        return self._held(2, lambda: inv.within_bounds(self.data, channel, self.tap, MARKETPLACE[channel], since))

    def check_no_double(self) -> None:
        assert self.tap is not None and self.server is not None
        self._held(3, lambda: inv.no_double_submission(self.tap, self.server))

    def check_notifications(self, store_path: Path, sent: dict[str, str], queue_left: int) -> int:
        """Invariant 3 (no NotificationId stored twice) and 4 (every message sent to the queue stored or
        dead-lettered, the queue drained). Returns the notifications stored."""
        stored = self._held(3, lambda: inv.no_double_notification(store_path))

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
        return [EMULATOR_DEFAULTS["client_secret"], EMULATOR_DEFAULTS["refresh_token"], AWS_SECRET, *tokens]

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

    # -- the row ----------------------------------------------------------------------------------------------------
    def finish(self) -> Row:
        if self.server is not None:
            for fault in self.server.state.faults.list():
                self.faults.append(f"(unused: {json.dumps(fault)})")
        self.row.faults = "; ".join(self.faults) or "-"
        self.row.skus = len(self.skus)
        if self.tap is not None:
            self.row.requests = self.tap.requests()
            self.row.throttled = self.tap.throttled()
        self.row.retries = sum(self.retried.values())
        return self.row
