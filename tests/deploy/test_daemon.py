"""The production-like deployment on one machine: Postgres on 127.0.0.1, the instance of deploy/dagster.yaml and a
live `dagster-daemon`, against the SP-API emulator. Three channels of one seller (uk, de, fr: one region) and one of
another (us) are backfilled through the run queue, `fr` being added to the config while the daemon runs; then the
schedules fire on their own for every enabled channel and never for one that was not enabled (`it`).

Slow (a few minutes): `make test-deploy`, also run by CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from deploy.stack import Postgres, free_port, instance_home, spawn, stop_process
from emulator.server import EmulatorOptions, EmulatorServer
from reliability.invariants import converged
from seller.config import load_channels
from seller.synthetic import generate

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
SELLER_A, SELLER_B = "A3DEMOSELLER01", "A2SECONDSELLER7"
MARKETPLACES = {
    "uk": (SELLER_A, "A1F83G8C2ARO7P", "eu"),
    "de": (SELLER_A, "A1PA6795UKMFR9", "eu"),
    "it": (SELLER_A, "APJ6JRA9NG5V4", "eu"),
    "us": (SELLER_B, "ATVPDKIKX0DER", "na"),
    "fr": (SELLER_A, "A13V1IB3VIYZZH", "eu"),  # added to the config while the daemon runs
}


def _config(path: Path, names: list[str]) -> None:
    entries = [
        {"name": n, "seller_id": s, "marketplace_id": m, "region": r, "use_feed": "auto"}
        for n, (s, m, r) in MARKETPLACES.items()
        if n in names
    ]
    path.write_text(yaml.safe_dump({"channels": entries}))


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    base = Path(tempfile.mkdtemp(prefix="sales-channel-deploy-"))
    base.chmod(0o755)  # under root, Postgres runs as the `postgres` user and must reach its data directory
    pg = Postgres(base / "postgres", free_port()).start()
    data = base / "data"
    config = base / "channels.yaml"
    _config(config, list(MARKETPLACES))
    everything = load_channels(config)
    generate(data, 150, everything)
    _config(config, ["uk", "de", "it", "us"])
    emulator = EmulatorServer(
        EmulatorOptions(seed_from=str(data), channels=everything, rate_scale=100, feed_step_seconds=0.5)
    ).start()
    env = {
        **os.environ,
        **pg.env(),
        "DAGSTER_HOME": str(instance_home(base / "dagster_home")),
        "SALES_CHANNEL_CONFIG": str(config),
        "SALES_CHANNEL_DATA": str(data),
        "SPAPI_ENDPOINT": emulator.url,
        # Two sellers configured: each needs its own grant (the default token serves a one-seller config only).
        f"SPAPI_LWA_REFRESH_TOKEN_{SELLER_A}": f"Atzr|emulator-refresh-token-{SELLER_A}",
        f"SPAPI_LWA_REFRESH_TOKEN_{SELLER_B}": f"Atzr|emulator-refresh-token-{SELLER_B}",
        "SALES_CHANNEL_PRICES_CRON": "* * * * *",
        "SALES_CHANNEL_INVENTORY_CRON": "0 0 1 1 *",
        "SALES_CHANNEL_FULL_CRON": "0 0 1 1 *",
    }
    for key in ("SALES_CHANNEL_SQS_ENDPOINT", "SALES_CHANNEL_SPAPI"):
        env.pop(key, None)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    subprocess.run([sys.executable, "-m", "deploy.prepare"], env=env, cwd=REPO, check=True, capture_output=True)
    daemon = spawn([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, base / "daemon.log")
    try:
        yield {"env": env, "config": config, "data": data, "emulator": emulator, "base": base}
    finally:
        stop_process(daemon.pid)
        emulator.stop()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


def _dagster(env: dict, *args: str) -> None:
    done = subprocess.run([str(BIN / "dagster"), *args], env=env, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]


def _wait(instance: dg.DagsterInstance, what: str, done, timeout: float, log: Path) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = instance.get_run_records()
        failed = [r.dagster_run for r in records if r.dagster_run.status == dg.DagsterRunStatus.FAILURE]
        assert not failed, f"failed runs: {[(r.job_name, r.tags.get('dagster/partition')) for r in failed]}"
        if done(records):
            return records
        time.sleep(2)
    tail = log.read_text()[-3000:] if log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}; daemon log tail:\n{tail}")


def _succeeded(records: list, job: str, trigger: str | None = None) -> dict[str, list]:
    by_channel: dict[str, list] = {}
    for record in records:
        run = record.dagster_run
        if run.job_name == job and run.status == dg.DagsterRunStatus.SUCCESS:
            if trigger is None or run.tags.get("trigger") == trigger:
                by_channel.setdefault(run.tags.get("dagster/partition") or run.tags.get("channel"), []).append(record)
    return by_channel


def test_daemon_queue_limits_schedules_and_a_channel_added_without_code_change(stack: dict) -> None:
    env, log = stack["env"], stack["base"] / "daemon.log"
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])

    # A fourth channel of seller A arrives in the config while the daemon runs: no code change, no restart.
    _config(stack["config"], ["uk", "de", "it", "us", "fr"])

    # Backfill every channel but `it` through the run queue: one QUEUED run per channel, at once.
    _dagster(env, "job", "backfill", "-w", "workspace.yaml", "-j", "channel_pipeline_job",
             "--partitions", "uk,de,fr,us", "--noprompt")  # fmt: skip
    records = _wait(instance, "the backfill", lambda rs: len(_succeeded(rs, "channel_pipeline_job")) == 4, 600, log)
    backfill = [r for r in records if r.dagster_run.job_name == "channel_pipeline_job"]
    assert {r.dagster_run.tags["seller_region"] for r in backfill} == {f"{SELLER_A}-eu", f"{SELLER_B}-na"}

    # Enable the four channels (queued too); `it` stays configured but not enabled.
    for name in ("uk", "de", "fr", "us"):
        config = {"ops": {"enable_channel_op": {"config": {"channel": name}}}}
        _dagster(
            env, "job", "launch", "-w", "workspace.yaml", "-j", "enable_channel", "--config-json", json.dumps(config)
        )
    _wait(instance, "enable_channel", lambda rs: len(_succeeded(rs, "enable_channel")) == 4, 300, log)

    # The prices schedule (every minute here) now runs each enabled channel, fr included, on its own.
    records = _wait(
        instance,
        "a scheduled prices run of every enabled channel",
        lambda rs: set(_succeeded(rs, "prices_job", "schedule")) >= {"uk", "de", "fr", "us"},
        600,
        log,
    )
    scheduled = [r.dagster_run for r in records if r.dagster_run.job_name == "prices_job"]
    assert all(r.tags.get("trigger") == "schedule" for r in scheduled)
    assert "it" not in {r.tags.get("dagster/partition") for r in scheduled}

    # The queue kept one run per seller x region at a time: seller A's eu runs never overlapped.
    spans: dict[str, list[tuple[float, float, str]]] = {}
    for record in records:
        region = record.dagster_run.tags.get("seller_region")
        if region and record.start_time and record.end_time:
            spans.setdefault(region, []).append((record.start_time, record.end_time, record.dagster_run.run_id))
    eu = sorted(spans[f"{SELLER_A}-eu"])
    assert len(eu) >= 6  # 3 backfill runs + at least 3 scheduled ones
    overlaps = [(a[2], b[2]) for a, b in zip(eu, eu[1:], strict=False) if b[0] < a[1]]
    assert not overlaps, f"runs of one seller x region overlapped: {overlaps}"

    # Everything landed in the emulator: Amazon shows what the latest successful run of each channel computed.
    latest = _succeeded(records, "prices_job", "schedule")
    for name in ("uk", "de", "fr", "us"):
        seller, marketplace, _ = MARKETPLACES[name]
        run = max(latest[name], key=lambda r: r.end_time).dagster_run
        decimals = load_channels(stack["config"])[name].decimals
        assert converged(stack["data"], name, run.run_id, stack["emulator"], marketplace, seller, decimals) > 0
