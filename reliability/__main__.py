"""`python -m reliability [pytest args]`: run every reliability scenario (slow ones too), then print the table.

Exit status: pytest's. `python -m reliability -m "not slow"` runs the fast subset only."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from reliability.report import RESULTS_ENV, load, render


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        results = Path(tmp) / "results.jsonl"
        os.environ[RESULTS_ENV] = str(results)
        code = pytest.main(["tests/reliability", "-q", "-p", "no:cacheprovider", *argv])
        print()
        print(render(load(results)))
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
