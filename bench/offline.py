"""Offline pipeline benchmark: one channel, N SKUs, ~3 competitor offers per ASIN.

Times (1) the real pipeline — every asset of the channel materialized by Dagster (`dg.materialize`): validation,
reconcile, pricing and all three feed documents — and (2) the same transformation as one bare DuckDB SQL script
(`bench/offline_reference.sql`), each in its own child process so each gets its own peak RSS. Prints both, their
ratio and the pipeline's peak RSS, and ends with `offline: ratio=R peak_rss_mb=M skus=N`.

    uv run python -m bench.offline --skus 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
AS_OF = datetime.now(UTC).replace(microsecond=0)


def _pipeline(data: str) -> None:
    import dagster as dg

    from assets.feed_files import feed_assets
    from assets.inputs import input_assets
    from assets.inventory import reconciled_inventory
    from assets.prices import buybox_prices
    from pipelines.resources import EMULATOR_DEFAULTS
    from resources.spapi_resource import SpApiResource
    from resources.warehouse import Warehouse

    # The offline part of the pipeline: the input files are the inputs (no SP-API pull), nothing is pushed.
    offline = {name: {"config": {"offline": True}} for name in ("fba_inventory", "competitor_prices")}
    result = dg.materialize(
        [*input_assets, reconciled_inventory, buybox_prices, *feed_assets],
        partition_key="us",
        resources={"warehouse": Warehouse(data_dir=data), "spapi": SpApiResource(**EMULATOR_DEFAULTS)},
        run_config={
            "ops": {"buybox_prices": {"config": {"as_of": AS_OF.isoformat()}}, **offline},
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        },
    )
    assert result.success


def _reference(data: str) -> None:
    import duckdb

    out = Path(data) / "reference"
    out.mkdir(exist_ok=True)
    script = (HERE / "offline_reference.sql").read_text()
    sql = script.format(
        data=data, out=out, seller="A3DEMOSELLER01", fresh_since=(AS_OF - timedelta(hours=24)).isoformat()
    )
    con = duckdb.connect(str(Path(data) / "reference.duckdb"))
    con.execute(sql)
    con.close()


def _generate(data: str, skus: int) -> None:
    from seller.config import load_channels
    from seller.synthetic import generate

    counts = generate(data, skus, {"us": load_channels()["us"]}, now=AS_OF)
    print(f"inputs: {json.dumps(counts)}")


def _measure(role: str, data: str, *extra: str) -> tuple[float, float]:
    """Run one role in a child process; (wall seconds, peak RSS MB) of that child.

    Linux carries a process's peak RSS across fork and exec into the child's `ru_maxrss`, so this parent stays small:
    the synthetic data is generated in a child of its own (`--role generate`), not here."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "bench.offline", "--role", role, "--data", data, *extra])
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{role} failed")
    return elapsed, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skus", type=int, default=1_000_000)
    parser.add_argument("--role", choices=["generate", "pipeline", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "pipeline":
        return _pipeline(args.data)
    if args.role == "reference":
        return _reference(args.data)
    if args.role == "generate":
        return _generate(args.data, args.skus)

    with tempfile.TemporaryDirectory(prefix="bench-offline-") as tmp:
        _measure("generate", tmp, "--skus", str(args.skus))
        reference_s, reference_mb = _measure("reference", tmp)
        pipeline_s, pipeline_mb = _measure("pipeline", tmp)
    ratio = pipeline_s / reference_s
    print(f"reference (bare DuckDB SQL): {reference_s:8.2f} s  peak RSS {reference_mb:7.0f} MB")
    print(f"pipeline  (Dagster assets):  {pipeline_s:8.2f} s  peak RSS {pipeline_mb:7.0f} MB")
    print(f"offline: ratio={ratio:.2f} peak_rss_mb={pipeline_mb:.0f} skus={args.skus}")


if __name__ == "__main__":
    main()
