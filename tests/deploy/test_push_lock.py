"""The push lock in the deployed mode: a Postgres advisory lock per channel, waited for like the flock of the
embedded default (tests/sync/test_push_connection.py), and freed by Postgres when its holder is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.push import PushBusy, _exclusive

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

# Another run's push of channel argv[1]: takes the lock, says so, holds it argv[2] seconds.
HOLDER = """
import sys, time
from sync.push import _exclusive
with _exclusive(sys.argv[1], None, 30):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
print("released", flush=True)
"""


@pytest.fixture
def deployed(state_dsn: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"SALES_CHANNEL_STATE": state_dsn, "SALES_CHANNEL_LAKE": "s3://unused/lake"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **env}


@pytest.fixture
def holder(deployed: dict[str, str]) -> Iterator:
    procs: list[subprocess.Popen] = []

    def start(channel: str, seconds: float) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, channel, str(seconds)],
            cwd=ROOT,
            env=deployed,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def test_a_second_push_of_the_channel_waits_for_the_first_or_gives_up(holder) -> None:
    first = holder("us", 3.0)
    started = time.monotonic()
    with pytest.raises(PushBusy, match="channel us"):
        with _exclusive("us", None, 0.5):
            pass
    assert 0.5 <= time.monotonic() - started < 2.0
    with _exclusive("uk", None, 0.5):  # another channel: not held
        pass
    with _exclusive("us", None, 30.0):  # waits for the first to finish
        assert first.poll() is not None or first.stdout.readline().strip() == "released"
    assert time.monotonic() - started >= 2.5


def test_a_killed_holders_lock_is_freed_by_postgres(holder) -> None:
    first = holder("us", 600.0)
    with pytest.raises(PushBusy):
        with _exclusive("us", None, 0.3):
            pass
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    started = time.monotonic()
    with _exclusive("us", None, 30.0):
        assert time.monotonic() - started < 5.0
