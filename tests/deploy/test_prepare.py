"""`python -m deploy.prepare`, the deployment's init step: the Dagster schema and one row per pool at the default
limit, made before any run, so run workers starting at once on a fresh Postgres instance find nothing to create (Dagster
creates a pool's row lazily and, on Postgres, two first claims at once fail one of the runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from deploy.stack import instance_home

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_prepare_creates_the_schema_and_every_pool_at_the_default_limit(
    postgres_server, state_dsn, tmp_path, monkeypatch
):
    env = {
        **postgres_server.env(),
        "DAGSTER_PG_DB": state_dsn.rsplit("/", 1)[1],  # a fresh database: no Dagster schema, no pool row
        "DAGSTER_HOME": str(instance_home(tmp_path / "dagster_home")),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    done = subprocess.run(
        [sys.executable, "-m", "deploy.prepare"], env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert "pool spapi: 8 slots" in done.stdout
    with dg.DagsterInstance.get() as instance:
        info = instance.event_log_storage.get_concurrency_info("spapi")
        assert info.slot_count == 8  # deploy/dagster.yaml's default_limit, before any step claimed a slot
