"""Postgres and S3 for the deployed-mode tests: one private Postgres cluster per session (a fresh database per test)
and the session's moto server (an emptied bucket per test). Skipped with the reason when Postgres's server binaries
are missing (`make test-deploy` installs them)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import psycopg2
import pytest

from deploy.stack import Postgres, free_port
from emulator.testing import moto_server

LAKE_BUCKET = "sales-channel-lake"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    try:
        from deploy.stack import _pg_bin

        _pg_bin()
    except RuntimeError as exc:
        pytest.skip(f"no Postgres server binaries: {exc}")
    base = Path(tempfile.mkdtemp(prefix="sales-channel-pg-"))
    base.chmod(0o755)  # under root, Postgres runs as the `postgres` user and must reach its data directory
    pg = Postgres(base / "postgres", free_port()).start()
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def state_dsn(postgres_server: Postgres) -> Iterator[str]:
    """A Postgres URL to a database of the test's own, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = f"postgresql://{postgres_server.user}@127.0.0.1:{postgres_server.port}/{postgres_server.database}"
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://{postgres_server.user}:unused@127.0.0.1:{postgres_server.port}/{name}"
    finally:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.close()


@pytest.fixture(scope="session")
def s3_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def lake_env(s3_url: str, state_dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict]:
    """The deployed mode's environment (state in the test's database, the lake in an emptied moto bucket), set in
    this process and returned for child processes."""
    httpx.post(f"{s3_url}/moto-api/reset", timeout=10).raise_for_status()
    env = {
        "SALES_CHANNEL_STATE": state_dsn,
        "SALES_CHANNEL_LAKE": f"s3://{LAKE_BUCKET}/sales-channel",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": s3_url,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1").create_bucket(Bucket=LAKE_BUCKET)
    yield env
