"""Crashes: the push process SIGKILLed at each step boundary (reliability/push_child.py), then the next scheduled run
resumes: no feed content submitted twice, every SKU one final status, Amazon converges."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sync.helpers import query

REPO = Path(__file__).resolve().parents[2]
FEED = {"feed_threshold": 0}
OFFLINE = {name: {"config": {"offline": True}} for name in ("fba_inventory", "competitor_prices", "offer_observations")}


def kill_push(scenario, kill_at: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SALES_CHANNEL_CONFIG": str(REPO / "channels.yaml")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "reliability.push_child",
            str(scenario.data),
            "us",
            scenario.server.url,
            str(scenario.tmp_path / "spapi"),
            f"killed-{kill_at}",
            kill_at,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("kill_at", "ledger_after_kill"),
    [
        pytest.param("before_create_feed", [(None, "recorded")], marks=pytest.mark.slow),
        ("after_create_feed", [(None, "recorded")]),
        pytest.param("after_feed_recorded", [("feed", "submitted")], marks=pytest.mark.slow),
        pytest.param("during_polling", [("feed", "submitted")], marks=pytest.mark.slow),
        ("after_report", [("feed", "submitted")]),
    ],
)
def test_sigkill_at_push_boundary_then_resume(scenario, kill_at, ledger_after_kill):
    scenario.start()
    # The inputs and prices of the run, computed without sending (the push is what the child does and dies in).
    prepared = scenario.run(push={"offline": True})
    assert prepared.success
    child = kill_push(scenario, kill_at)
    scenario.note_fault(f"SIGKILL {kill_at}")
    scenario.texts += [child.stdout, child.stderr]
    assert child.returncode == -signal.SIGKILL, (child.returncode, child.stdout, child.stderr[-2000:])
    ledger = [
        ("feed" if f else None, s) for f, s in query(scenario.data, "us", "SELECT feed_id, status FROM submissions")
    ]
    assert ledger == ledger_after_kill, f"the ledger after a kill {kill_at}"
    assert query(scenario.data, "us", "SELECT count(*) FROM sync_history WHERE run_id = ?", [f"killed-{kill_at}"]) == [
        (0,)
    ]
    created = len(scenario.tap.calls("createFeed"))
    assert created == (0 if kill_at == "before_create_feed" else 1)

    resumed = scenario.run(push=FEED)
    assert resumed.success
    statuses = scenario.check_all(resumed.run_id)
    assert set(statuses.values()) <= {"accepted", "category_restricted", "error"}, statuses
    assert len(scenario.server.state.store.feeds) == 1, "exactly one feed reached Amazon across the kill and resume"
    assert query(scenario.data, "us", "SELECT status FROM submissions WHERE feed_id IS NOT NULL") == [("done",)]


@pytest.mark.slow
def test_sigkill_then_resume_with_values_changed_in_between(scenario):
    scenario.start()
    prepared = scenario.run(push={"offline": True}, ops=OFFLINE)  # file-only prices: Amazon's offers not pulled yet
    assert prepared.success
    child = kill_push(scenario, "during_polling")
    scenario.note_fault("SIGKILL during_polling; prices change before the resume")
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    resumed = scenario.run(push=FEED)  # pulls Amazon's offers: FBA-1's computed price changes
    assert resumed.success
    scenario.check_final_status(resumed.run_id)
    scenario.check_no_double()
    scenario.check_converged(resumed.run_id)
    scenario.check_secrets()
