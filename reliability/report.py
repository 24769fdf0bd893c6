"""The reliability table: one row per scenario, written as JSON lines by the tests (tests/reliability/conftest.py)
and printed by `python -m reliability`."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Row", "RESULTS_ENV", "append", "load", "render"]

RESULTS_ENV = "RELIABILITY_RESULTS"
COLUMNS = (
    "scenario",
    "faults injected",
    "faults hit",
    "SKUs",
    "requests",
    "429s",
    "retries",
    "offers checked (2)",
    "invariants held",
    "n/a because",
    "wall s",
    "result",
)


@dataclass
class Row:
    scenario: str
    faults: str = "-"
    skus: int = 0
    requests: int = 0  # SP-API requests (and document transfers) that reached the emulator
    throttled: int = 0  # 429 answers the emulator gave
    retries: int = 0  # the client's retries (SpApiResource counters)
    held: list[int] = field(default_factory=list)  # invariants asserted and held
    applicable: list[int] = field(default_factory=list)  # invariants that apply to the scenario
    wall_seconds: float = 0.0
    result: str = "?"
    faults_hit: dict[str, int] = field(default_factory=dict)  # injected fault → requests it hit (0: never)
    offers_checked: int = 0  # offers invariant 2 read from what reached Amazon (patches, puts, feed documents)
    why_na: dict[str, str] = field(default_factory=dict)  # invariant number → why it does not apply

    def cells(self) -> tuple[str, ...]:
        n_a = sorted(set(range(1, 7)) - set(self.applicable))
        held = f"{len(set(self.held))}/{len(set(self.applicable))}" + (
            f" (n/a: {','.join(map(str, n_a))})" if n_a else ""
        )
        why = "; ".join(f"{n}: {self.why_na.get(str(n), 'no reason given')}" for n in n_a) or "-"
        hit = "; ".join(f"{label}×{count}" for label, count in self.faults_hit.items()) or "-"
        return (
            self.scenario,
            _cut(self.faults),
            _cut(hit),
            str(self.skus),
            str(self.requests),
            str(self.throttled),
            str(self.retries),
            str(self.offers_checked),
            held,
            why,
            f"{self.wall_seconds:.1f}",
            self.result,
        )


def _cut(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def append(row: Row, path: str | os.PathLike[str] | None = None) -> None:
    target = path or os.environ.get(RESULTS_ENV)
    if not target:
        return
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(asdict(row)) + "\n")


def load(path: str | os.PathLike[str]) -> list[Row]:
    if not Path(path).exists():
        return []
    return [Row(**json.loads(line)) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def render(rows: list[Row]) -> str:
    """A Markdown table plus the last line `N passed, M failed` (xfail counted apart, never as passed)."""
    cells = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = ["| " + " | ".join(c[i].ljust(widths[i]) for i in range(len(COLUMNS))) + " |" for c in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    passed = sum(1 for r in rows if r.result == "passed")
    failed = sum(1 for r in rows if r.result == "failed")
    xfailed = sum(1 for r in rows if r.result == "xfailed")
    tail = f"{passed} passed, {failed} failed" + (f" ({xfailed} xfailed: known bugs, see reasons)" if xfailed else "")
    return "\n".join([*lines, "", tail])
