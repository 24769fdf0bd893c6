"""Fixtures for the notification tests: a seller's data directory, a moto SQS server in the environment, the emulator
delivering to it, and a Dagster instance (where `enable_channel` runs are recorded)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from pipelines.partitions import CHANNELS
from tests.notifications.helpers import REPO, SMALL


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(SMALL, data)
    return data


@pytest.fixture
def sqs_env(moto_sqs, monkeypatch):
    monkeypatch.setenv("SALES_CHANNEL_SQS_ENDPOINT", moto_sqs)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("SALES_CHANNEL_SQS_WAIT_SECONDS", "1")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.setenv("SALES_CHANNEL_CONFIG", str(REPO / "channels.yaml"))  # what enable_channel reads
    return moto_sqs


@pytest.fixture
def server(emulator_factory, sqs_env, data_dir):
    return emulator_factory(synthetic=None, seed_from=str(data_dir), channels=CHANNELS, sqs_endpoint=sqs_env)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance
