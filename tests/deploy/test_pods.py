"""The pipeline run as pods would run it (issue 15, "Done when" 1-3): every run is its own process
(`tests/deploy/pod_run.py`: the channel job executed with a Postgres-backed Dagster instance) with its own EMPTY
working directory, HOME, TMPDIR and DAGSTER_HOME (a copy of deploy/dagster.yaml, as a ConfigMap would mount it), all
deleted after the run, so nothing on local disk survives a run. The runs share only Postgres (Dagster's database and
the deployed mode's state database), an S3 server (moto: the lake and the feed documents), the SP-API emulator at
Amazon's rates with the module caps on (30 requests a minute, 36,000 a day per seller; the client gets the same caps)
and moto's SQS.

The seller's input files (`SALES_CHANNEL_DATA`) and the channels config stand for a read-only mount (a volume, a
ConfigMap): shared by every run, and nothing may be written under them. No `*.lock`, `*.duckdb`, `*.sqlite3` or `*.db`
file may appear anywhere a run can write.

Slow (a few minutes): `make test-deploy`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg2
import pytest
import yaml

from deploy.stack import DAGSTER_YAML, Postgres
from emulator.server import EmulatorOptions, EmulatorServer
from reliability.invariants import converged
from seller.config import Channel, load_channels
from seller.synthetic import generate
from tests.deploy.conftest import LAKE_BUCKET

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
SELLER_A, SELLER_B = "A3DEMOSELLER01", "A2SECONDSELLER7"
MARKETPLACES = {
    "uk": (SELLER_A, "A1F83G8C2ARO7P", "eu"),
    "de": (SELLER_A, "A1PA6795UKMFR9", "eu"),
    "fr": (SELLER_A, "A13V1IB3VIYZZH", "eu"),
    "us": (SELLER_B, "ATVPDKIKX0DER", "na"),
}
SKUS = 30
CAP_PER_MINUTE, CAP_PER_DAY = 30, 36_000  # the Sales Channel module's caps per seller
FORBIDDEN = ("*.lock", "*.duckdb", "*.duckdb.wal", "*.sqlite3", "*.sqlite3-wal", "*.db")
# Pulls from the files (a full offers pull takes hours at Amazon's rates); the push by feed, reading 2 SKUs back.
RUN_CONFIG = {
    "ops": {
        **{name: {"config": {"offline": True}} for name in ("fba_inventory", "competitor_prices", "order_assets")},
        "offer_observations": {"config": {"offline": True}},
        "listings_submission": {"config": {"feed_threshold": 0, "poll_initial_seconds": 1.0, "readback_sample": 2}},
    }
}


@dataclass
class Pod:
    channel: str
    proc: subprocess.Popen
    workdir: Path
    started: float
    stdout: str = ""
    result: dict = field(default_factory=dict)


@dataclass
class World:
    """Everything the pods share: env (the deployed mode), the read-only seller files, the emulator."""

    env: dict[str, str]
    data: Path
    channels: dict[str, Channel]
    emulator: EmulatorServer
    pods_dir: Path
    inputs: dict[str, tuple[int, int]] = field(default_factory=dict)  # the seller files as mounted
    forbidden: list[str] = field(default_factory=list)

    def start(
        self,
        channel: str,
        *,
        job: str = "channel_pipeline_job",
        config: dict | None = None,
        stop_after_create_feed: bool = False,
        sensor: str | None = None,
    ) -> Pod:
        """`channel` "-": a job without partitions; `sensor`: one tick of that sensor instead of a run."""
        workdir = self.pods_dir / f"pod-{sensor or channel}-{uuid.uuid4().hex[:8]}"
        for sub in ("home", "tmp", "dagster_home"):
            (workdir / sub).mkdir(parents=True)
        shutil.copyfile(DAGSTER_YAML, workdir / "dagster_home" / "dagster.yaml")
        env = {
            **self.env,
            "HOME": str(workdir / "home"),
            "TMPDIR": str(workdir / "tmp"),
            "DAGSTER_HOME": str(workdir / "dagster_home"),
            "PYTHONPATH": str(REPO),
        }
        args = [sys.executable, "-m", "tests.deploy.pod_run", job, channel, json.dumps(config or RUN_CONFIG)]
        if sensor is not None:
            args = [sys.executable, "-m", "tests.deploy.pod_run", "--sensor", sensor]
        if stop_after_create_feed:
            args.append("--stop-after-create-feed")
        proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return Pod(channel, proc, workdir, time.monotonic())

    def finish(self, pod: Pod, timeout: float = 900) -> Pod:
        pod.stdout, _ = pod.proc.communicate(timeout=timeout)
        self.discard(pod)
        lines = [line for line in pod.stdout.splitlines() if line.startswith("RESULT ")]
        pod.result = json.loads(lines[-1].removeprefix("RESULT ")) if lines else {}
        log = "\n".join(line for line in pod.stdout.splitlines() if not line.startswith("RESULT "))
        failures = "\n".join(pod.result.get("failures", []))
        assert pod.proc.returncode == 0 and lines, f"run of {pod.channel} failed:\n{failures or log[-6000:]}"
        return pod

    def discard(self, pod: Pod) -> None:
        """The pod is gone: note any lock or database file it left, then delete its whole disk."""
        self.forbidden += [str(p) for pattern in FORBIDDEN for p in pod.workdir.rglob(pattern)]
        shutil.rmtree(pod.workdir)

    def run(self, channel: str, **kwargs) -> Pod:
        return self.finish(self.start(channel, **kwargs))

    def usage(self) -> tuple[dict, dict]:
        market = httpx.get(f"{self.emulator.url}/_emulator/market", timeout=30).json()
        return market["requests"], market["throttled"]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def _written(world: World) -> list[str]:
    """What appeared or changed under the world's seller files since they were mounted."""
    return sorted(name for name, stat in _snapshot(world.data).items() if world.inputs.get(name) != stat)


def _database(pg: Postgres, name: str) -> str:
    conn = psycopg2.connect(host="127.0.0.1", port=pg.port, user=pg.user, dbname=pg.database)
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {name}")
    conn.close()
    return name


@pytest.fixture
def make_world(postgres_server: Postgres, s3_url: str, tmp_path: Path) -> Iterator:
    """Builds a fresh world (its own state and Dagster databases, lake prefix, seller files and emulator)."""
    servers: list[EmulatorServer] = []
    databases: list[str] = []

    def build(name: str) -> World:
        base = tmp_path / name
        data, config = base / "seller-files", base / "channels.yaml"
        entries = [
            {
                "name": n,
                "seller_id": s,
                "marketplace_id": m,
                "region": r,
                "use_feed": True,
                "enable_notifications": n == "us",
            }
            for n, (s, m, r) in MARKETPLACES.items()
        ]
        config.parent.mkdir(parents=True)
        config.write_text(yaml.safe_dump({"channels": entries}))
        channels = load_channels(config)
        generate(data, SKUS, channels)
        emulator = EmulatorServer(
            EmulatorOptions(
                seed_from=str(data),
                channels=channels,
                rate_scale=1.0,  # Amazon's documented rates
                requests_per_minute=CAP_PER_MINUTE,
                requests_per_day=CAP_PER_DAY,
                feed_step_seconds=0.5,
                sqs_endpoint=s3_url,  # one moto server: SQS and S3
            )
        ).start()
        servers.append(emulator)
        state_db = _database(postgres_server, f"s_{uuid.uuid4().hex[:12]}")
        dagster_db = _database(postgres_server, f"d_{uuid.uuid4().hex[:12]}")
        databases.extend([state_db, dagster_db])
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SALES_CHANNEL_", "SPAPI_", "DAGSTER_", "AWS_"))
        }
        env.update(
            {
                **postgres_server.env(),
                "DAGSTER_PG_DB": dagster_db,
                "SALES_CHANNEL_STATE": f"postgresql://{postgres_server.user}:unused@127.0.0.1:"
                f"{postgres_server.port}/{state_db}",
                "SALES_CHANNEL_LAKE": f"s3://{LAKE_BUCKET}/{name}",
                "SALES_CHANNEL_CONFIG": str(config),
                "SALES_CHANNEL_DATA": str(data),
                "SALES_CHANNEL_SQS_ENDPOINT": s3_url,
                "SPAPI_ENDPOINT": emulator.url,
                "SPAPI_REQUESTS_PER_MINUTE": str(CAP_PER_MINUTE),
                "SPAPI_REQUESTS_PER_DAY": str(CAP_PER_DAY),
                f"SPAPI_LWA_REFRESH_TOKEN_{SELLER_A}": f"Atzr|emulator-refresh-token-{SELLER_A}",
                f"SPAPI_LWA_REFRESH_TOKEN_{SELLER_B}": f"Atzr|emulator-refresh-token-{SELLER_B}",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT_URL_S3": s3_url,
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        import boto3

        s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", aws_access_key_id="t",
                          aws_secret_access_key="t")  # fmt: skip
        if LAKE_BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=LAKE_BUCKET)
        home = base / "migrate-home"
        home.mkdir()
        shutil.copyfile(DAGSTER_YAML, home / "dagster.yaml")
        migrate = subprocess.run(  # the deployment's init job: schema and pools, before any pod starts
            [sys.executable, "-m", "deploy.prepare"],
            env={**env, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO)},
            cwd=base,
            capture_output=True,
            text=True,
        )
        assert migrate.returncode == 0, migrate.stderr[-3000:]
        (base / "pods").mkdir()
        return World(env, data, channels, emulator, base / "pods", _snapshot(data))

    try:
        yield build
    finally:
        for server in servers:
            server.stop()
        conn = psycopg2.connect(
            host="127.0.0.1", port=postgres_server.port, user=postgres_server.user, dbname=postgres_server.database
        )
        conn.autocommit = True
        for name in databases:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.close()


@contextmanager
def _deployed(world: World) -> Iterator[None]:
    """This process in the world's deployed mode, to read the channels' data from the lake."""
    keys = [k for k in world.env if k.startswith(("SALES_CHANNEL_", "AWS_"))]
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: world.env[k] for k in keys})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _check_converged(world: World, pods: list[Pod]) -> None:
    with _deployed(world):
        _converged(world, pods)


def _converged(world: World, pods: list[Pod]) -> None:
    for pod in pods:
        seller, marketplace, _ = MARKETPLACES[pod.channel]
        decimals = world.channels[pod.channel].decimals
        compared = converged(
            world.data, pod.channel, pod.result["run_id"], world.emulator, marketplace, seller, decimals
        )
        assert compared > 0, pod.channel


def _sent(requests: dict) -> dict[str, int]:
    """createFeed and patchListingsItem requests per seller: what changes Amazon's listings."""
    return {
        seller: sum(n for op, n in ops.items() if op in ("createFeed", "patchListingsItem"))
        for seller, ops in requests.items()
    }


def test_four_channels_run_as_pods_concurrently_and_a_second_run_sends_nothing(make_world):
    world = make_world("parallel")

    started = time.monotonic()
    pods = [world.start(name) for name in MARKETPLACES]
    pods = [world.finish(pod) for pod in pods]
    parallel_s = time.monotonic() - started

    requests, throttled = world.usage()
    assert not any(throttled.values()), f"the emulator answered 429: {throttled}"
    for seller in (SELLER_A, SELLER_B):
        assert requests[seller], f"seller {seller} sent nothing"
    for pod in pods:
        submission = pod.result["assets"]["listings_submission"]
        assert (submission["path"], submission["feeds_submitted"]) == ("feed", 1), (pod.channel, submission)
    assert _sent(requests) == {SELLER_A: 3, SELLER_B: 1}
    _check_converged(world, pods)

    # Each channel again, in a new pod: published_state is found, nothing is sent.
    again = [world.run(name) for name in MARKETPLACES]
    for pod in again:
        submission = pod.result["assets"]["listings_submission"]
        assert (submission["changed"], submission["feeds_submitted"], submission["patches_sent"]) == (0, 0, 0)
    requests, throttled = world.usage()
    assert not any(throttled.values()), f"the emulator answered 429: {throttled}"
    assert _sent(requests) == {SELLER_A: 3, SELLER_B: 1}

    # The same four runs one after another, in a fresh world: the "runs in parallel" figure.
    sequential = make_world("sequential")
    started = time.monotonic()
    for name in MARKETPLACES:
        sequential.run(name)
    sequential_s = time.monotonic() - started
    print(f"pods: parallel_s={parallel_s:.1f} sequential_s={sequential_s:.1f} ratio={sequential_s / parallel_s:.2f}")

    for each in (world, sequential):
        assert not _written(each), "written under the seller's read-only input files"
        assert not each.forbidden, f"lock or database files on local disk: {each.forbidden}"


def test_a_run_killed_after_create_feed_is_resumed_in_a_new_pod(make_world):
    world = make_world("killed")
    pod = world.start("us", stop_after_create_feed=True)
    deadline = time.monotonic() + 600
    line, seen = "", []
    while not line.startswith("CREATED ") and time.monotonic() < deadline:
        line = pod.proc.stdout.readline()
        seen.append(line)
        assert line or pod.proc.poll() is None, "the run ended before createFeed:\n" + "".join(seen)[-6000:]
    assert line.startswith("CREATED "), "createFeed never answered"
    os.kill(pod.proc.pid, signal.SIGKILL)
    pod.proc.wait(timeout=30)
    pod.proc.stdout.close()
    world.discard(pod)  # its working directory goes with it
    feed_id = line.split()[1]

    requests, _ = world.usage()
    assert requests[SELLER_B]["createFeed"] == 1

    resumed = world.run("us")
    submission = resumed.result["assets"]["listings_submission"]
    assert (submission["feeds_resumed"], submission["feeds_submitted"]) == (1, 0), submission
    requests, throttled = world.usage()
    assert requests[SELLER_B]["createFeed"] == 1, f"feed {feed_id} was submitted twice"
    assert not any(throttled.values()), f"the emulator answered 429: {throttled}"
    _check_converged(world, [resumed])
    assert not _written(world), "written under the seller's read-only input files"
    assert not world.forbidden, f"lock or database files on local disk: {world.forbidden}"


def test_the_sensor_and_runs_in_other_processes_share_the_notification_store(make_world):
    """The SQS sensor's tick (a process of its own, as in the daemon) stores an ORDER_CHANGE; a run in another pod
    reserves the order's stock from the same store; no file lock anywhere."""
    world = make_world("notify")
    enable = {"ops": {"enable_channel_op": {"config": {"channel": "us"}}}}
    world.run("-", job="enable_channel", config=enable)  # the seller's queue, destination and subscriptions
    world.run("us")  # the channel's first full run builds its tables
    sku = next(iter(world_skus(world, "us")))
    order = httpx.post(
        f"{world.emulator.url}/_emulator/orders",
        json={"sellerId": SELLER_B, "marketplaceId": MARKETPLACES["us"][1], "items": [{"sku": sku, "quantity": 2}]},
        timeout=30,
    )
    assert order.status_code == 201, order.text

    tick = world.run("-", sensor="sqs_notifications_sensor")
    assert {"job": "inventory_job", "partition": "us"} in tick.result["run_requests"], tick.result

    inventory = world.run("us", job="inventory_job", config={"ops": {"fba_inventory": {"config": {"offline": True}}}})
    reservations = inventory.result["assets"]["reservations"]
    assert reservations["notified_orders"] >= 1 and reservations["reserved_units"] >= 2, reservations
    assert not _written(world), "written under the seller's read-only input files"
    assert not world.forbidden, f"lock or database files on local disk: {world.forbidden}"


def world_skus(world: World, channel: str) -> list[str]:
    """The channel's FBM SKUs on the emulator (an order of one reserves the seller's stock)."""
    seller, marketplace, _ = MARKETPLACES[channel]
    listings = httpx.get(
        f"{world.emulator.url}/_emulator/listings",
        params={"sellerId": seller, "marketplaceId": marketplace, "fulfillment": "FBM"},
        timeout=30,
    ).json()["listings"]
    return [item["sku"] for item in listings]
