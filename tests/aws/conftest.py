"""A moto server (S3 and Secrets Manager) on a free loopback port, and an environment that points boto3 at it with
dummy credentials and nothing from the machine's own AWS configuration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from emulator.testing import moto_server
from resources.archive import BUCKET_ENV, PREFIX_ENV, RETENTION_ENV
from tests.sync.helpers import seller_dir

REGION = "us-east-1"
BUCKET = "sales-channel-archive"


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One moto server for the session (stopping one takes ~0.5 s); tests reset its state instead."""
    with moto_server() as url:
        yield url


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """The moto server's endpoint URL, emptied; boto3 (S3Resource, the Secrets Manager helper) reaches it through
    the environment."""
    # moto's backends live in the process, not in the server: every test starts from an empty account.
    httpx.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "SALES_CHANNEL_SPAPI", "SPAPI_LWA_SECRET_ID"):
        monkeypatch.delenv(name, raising=False)
    for name in ("SPAPI_LWA_CLIENT_ID", "SPAPI_LWA_CLIENT_SECRET", "SPAPI_LWA_REFRESH_TOKEN", "SPAPI_LWA_TOKEN_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in (BUCKET_ENV, PREFIX_ENV, RETENTION_ENV, "SPAPI_AWS_ACCESS_KEY_ID", "SPAPI_AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_url)
    yield moto_url
    httpx.post(f"{moto_url}/moto-api/reset", timeout=10)


@pytest.fixture
def s3(aws: str):
    return boto3.client("s3", endpoint_url=aws, region_name=REGION)


@pytest.fixture
def bucket(s3) -> str:
    s3.create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture
def secrets(aws: str):
    return boto3.client("secretsmanager", endpoint_url=aws, region_name=REGION)


@pytest.fixture
def seller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = seller_dir(tmp_path)
    monkeypatch.setenv("SALES_CHANNEL_DATA", str(data))
    return data
