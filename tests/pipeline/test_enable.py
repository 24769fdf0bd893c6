"""Enabling a channel (`enable_channel`) against the emulator, and the schedules that run only enabled channels with
the seller × region tags the run queue limits on."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml

from pipelines.definitions import defs
from pipelines.enablement import enable_channel, enabled_channels
from pipelines.schedules import channel_pipeline_schedule, inventory_schedule, prices_schedule
from tests.sync.helpers import REPO, seller_dir, spapi_for, start_emulator

WHEN = datetime(2026, 11, 29, 10, 15, tzinfo=UTC)


def _enable(name: str, spapi, instance: dg.DagsterInstance) -> dg.ExecuteJobResult:
    return enable_channel.execute_in_process(
        run_config={"ops": {"enable_channel_op": {"config": {"channel": name}}}},
        resources={"spapi": spapi},
        instance=instance,
        raise_on_error=False,
    )


def _failure(result: dg.ExecuteJobResult) -> str:
    event = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    return event.step_failure_data.error.message


def test_only_enabled_channels_are_scheduled_with_seller_region_tags(emulator_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("SALES_CHANNEL_CONFIG", str(REPO / "channels.yaml"))
    monkeypatch.delenv("SALES_CHANNEL_SQS_ENDPOINT", raising=False)
    server = start_emulator(emulator_factory, seller_dir(tmp_path))
    with dg.instance_for_test() as instance:
        skipped = list(prices_schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=WHEN)))
        assert [type(r) for r in skipped] == [dg.SkipReason]

        result = _enable("uk", spapi_for(server, tmp_path), instance)
        assert result.success
        assert enabled_channels(instance) == {"uk"}
        run = instance.get_run_by_id(result.run_id)
        assert run.tags["channel"] == "uk" and run.tags["seller"] == "A3DEMOSELLER01"

        for schedule, job in (
            (prices_schedule, "prices_job"),
            (inventory_schedule, "inventory_job"),
            (channel_pipeline_schedule, "channel_pipeline_job"),
        ):
            requests = list(schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=WHEN)))
            assert [(r.partition_key, r.run_key) for r in requests] == [("uk", f"{job}-2026-11-29T10:15-uk")]
            tags = defs.resolve_job_def(job).get_tags_for_partition_key("uk", None)
            assert tags["seller"] == "A3DEMOSELLER01" and tags["seller_region"] == "A3DEMOSELLER01-eu"
        # Removing the entry from the config stops its schedules at the next tick; its warehouse file stays.
        config = yaml.safe_load((REPO / "channels.yaml").read_text())
        config["channels"] = [c for c in config["channels"] if c["name"] != "uk"]
        (tmp_path / "without-uk.yaml").write_text(yaml.safe_dump(config))
        monkeypatch.setenv("SALES_CHANNEL_CONFIG", str(tmp_path / "without-uk.yaml"))
        after = list(prices_schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=WHEN)))
        assert [type(r) for r in after] == [dg.SkipReason]
    assert prices_schedule.cron_schedule == "*/15 * * * *"
    assert inventory_schedule.cron_schedule == "5 * * * *"
    assert channel_pipeline_schedule.cron_schedule == "30 3 * * *"


def test_enable_fails_clearly_for_an_unknown_channel_or_a_marketplace_the_seller_does_not_sell_in(
    emulator_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = yaml.safe_load((REPO / "channels.yaml").read_text())
    config["channels"].append(
        {"name": "fr", "seller_id": "A3DEMOSELLER01", "marketplace_id": "A13V1IB3VIYZZH", "region": "eu"}
    )
    path = tmp_path / "channels.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("SALES_CHANNEL_CONFIG", str(path))
    monkeypatch.delenv("SALES_CHANNEL_SQS_ENDPOINT", raising=False)
    server = start_emulator(emulator_factory, seller_dir(tmp_path))  # Amazon knows us, uk and de only
    with dg.instance_for_test() as instance:
        unknown = _enable("jp", spapi_for(server, tmp_path), instance)
        assert not unknown.success
        assert "channel 'jp' is not in the channels config (configured: us, uk, de, fr)" in _failure(unknown)

        fr = _enable("fr", spapi_for(server, tmp_path), instance)
        assert not fr.success
        assert "seller A3DEMOSELLER01 does not sell in marketplace A13V1IB3VIYZZH" in _failure(fr)
        assert enabled_channels(instance) == set()
