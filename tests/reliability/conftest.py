"""Reliability scenarios: each test gets a `scenario` (a seller, the emulator, a wiretap, the invariants) and its row
goes into the table `python -m reliability` prints (when RELIABILITY_RESULTS names a file). A scenario whose body
passed still fails when a fault it injected was never hit (`Scenario.assert_faults_hit`)."""

from __future__ import annotations

import time

import pytest

from reliability.report import Row, append
from tests.reliability.harness import Scenario


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    outcome = yield
    scenario = pyfuncitem.funcargs.get("scenario")
    if isinstance(scenario, Scenario):
        scenario.assert_faults_hit()
    return outcome


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        item.reliability_outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome
    return report


@pytest.fixture
def scenario(request, tmp_path, emulator_factory, caplog):
    caplog.set_level("INFO")
    started = time.monotonic()
    name = request.node.name.removeprefix("test_")
    s = Scenario(name, tmp_path, emulator_factory, caplog)
    yield s
    row: Row = s.finish()
    row.wall_seconds = time.monotonic() - started
    row.result = getattr(request.node, "reliability_outcome", "failed")
    append(row)
