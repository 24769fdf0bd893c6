"""Offline pipeline benchmark: one channel, N SKUs, ~3 competitor offers per ASIN.

Times (1) the real pipeline — every asset of the channel materialized by Dagster (`dg.materialize`): validation,
reconcile, pricing and all three feed documents — and (2) the same transformation as one bare DuckDB SQL script
(`bench/offline_reference.sql`: it reads the same CSV files and writes the same three documents), each in its own
child process so each gets its own peak RSS, and each from scratch (no warehouse or output left by an earlier run).
Each side runs `--repeat` times (default 3, alternating); it prints every run, the median of each side, the ratio of
the medians and each side's highest peak RSS, and ends with `offline: ratio=R peak_rss_mb=M skus=N repeat=K`.

`--channels 12` measures a seller with many marketplaces instead: one seller, 12 channels (US, CA, MX, BR and 8 EU
marketplaces), every channel's pipeline run one after another, each in its own process; time and peak RSS per
channel, ending with `offline_channels: channels=12 median_s=S max_peak_rss_mb=M skus=N`. The first channel's run
validates each input file once (`input_snapshots`); the others read their rows of those snapshots.

`--profile PATH` runs the pipeline once under cProfile (in its child process) and writes the top entries by
cumulative and by own time to PATH.

    uv run python -m bench.offline --skus 1000000 --repeat 3
    uv run python -m bench.offline --skus 100000 --channels 12
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
AS_OF = datetime.now(UTC).replace(microsecond=0)


# One seller in 12 marketplaces of two regions: what `--channels 12` configures.
_MANY = ("us", "ca", "mx", "br", "uk", "de", "fr", "it", "es", "nl", "se", "pl")


def _pipeline(data: str, channel: str = "us") -> None:
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
        partition_key=channel,
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


def _generate(data: str, skus: int, every_channel: bool) -> None:
    from seller.config import load_channels
    from seller.synthetic import generate

    channels = load_channels()
    counts = generate(data, skus, channels if every_channel else {"us": channels["us"]}, now=AS_OF)
    print(f"inputs: {json.dumps(counts)}")


def _many_channels_config(path: Path) -> None:
    from seller.marketplaces import MARKETPLACES

    by_code = {m.country.lower(): m for m in MARKETPLACES.values()}
    lines = ["channels:"]
    for name in _MANY:
        market = by_code[name]
        lines += [
            f"  - name: {name}",
            "    seller_id: A3DEMOSELLER01",
            f"    marketplace_id: {market.marketplace_id}",
            f"    region: {market.region}",
        ]
    path.write_text("\n".join(lines) + "\n")


def _profiled(data: str, out: str) -> None:
    import cProfile
    import io
    import pstats

    profile = cProfile.Profile()
    profile.enable()
    _pipeline(data)
    profile.disable()
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(40)
    Path(out).write_text(text.getvalue())


def _fresh(data: str) -> None:
    """Remove what an earlier run of either side left, so every run starts from the input files alone."""
    for name in ("warehouse", "feeds", "reference"):
        shutil.rmtree(Path(data) / name, ignore_errors=True)
    for name in ("reference.duckdb", "reference.duckdb.wal"):
        (Path(data) / name).unlink(missing_ok=True)


def _measure(role: str, data: str, *extra: str, keep: bool = False) -> tuple[float, float]:
    """Run one role in a child process; (wall seconds, peak RSS MB) of that child.

    Linux carries a process's peak RSS across fork and exec into the child's `ru_maxrss`, so this parent stays small:
    the synthetic data is generated in a child of its own (`--role generate`), not here. Unless `keep`, what an
    earlier run left (warehouse, feeds, the reference's output) is removed first."""
    if not keep:
        _fresh(data)
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
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the medians are compared")
    parser.add_argument("--channels", type=int, choices=[1, len(_MANY)], default=1)
    parser.add_argument("--profile", metavar="PATH", help="profile one pipeline run (cProfile), top entries to PATH")
    parser.add_argument("--role", choices=["generate", "pipeline", "reference", "profile"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--channel", default="us", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "pipeline":
        return _pipeline(args.data, args.channel)
    if args.role == "reference":
        return _reference(args.data)
    if args.role == "generate":
        return _generate(args.data, args.skus, args.channels > 1)
    if args.role == "profile":
        return _profiled(args.data, args.profile)

    with tempfile.TemporaryDirectory(prefix="bench-offline-") as tmp:
        if args.channels > 1:
            return _many(tmp, args.skus)
        _measure("generate", tmp, "--skus", str(args.skus))
        if args.profile:
            _measure("profile", tmp, "--profile", str(Path(args.profile).resolve()))
            print(f"profile: {args.profile}")
        runs: dict[str, list[tuple[float, float]]] = {"reference": [], "pipeline": []}
        for number in range(1, args.repeat + 1):
            for role in runs:
                seconds, mb = _measure(role, tmp)
                runs[role].append((seconds, mb))
                print(f"run {number} {role:9s} {seconds:8.2f} s  peak RSS {mb:7.0f} MB", flush=True)
    (reference_s, reference_mb), (pipeline_s, pipeline_mb) = (
        (statistics.median(s for s, _ in runs[role]), max(mb for _, mb in runs[role])) for role in runs
    )
    ratio = pipeline_s / reference_s
    print(f"reference (bare DuckDB SQL): median {reference_s:8.2f} s  peak RSS {reference_mb:7.0f} MB")
    print(f"pipeline  (Dagster assets):  median {pipeline_s:8.2f} s  peak RSS {pipeline_mb:7.0f} MB")
    print(f"offline: ratio={ratio:.2f} peak_rss_mb={pipeline_mb:.0f} skus={args.skus} repeat={args.repeat}")


def _many(tmp: str, skus: int) -> None:
    """One seller, `_MANY` channels: generate once, then each channel's pipeline in its own process, in turn."""
    config = Path(tmp) / "channels.yaml"
    _many_channels_config(config)
    os.environ["SALES_CHANNEL_CONFIG"] = str(config)  # read by the children at import
    _measure("generate", tmp, "--skus", str(skus), "--channels", str(len(_MANY)))
    results = []
    for channel in _MANY:
        seconds, mb = _measure("pipeline", tmp, "--channel", channel, keep=True)
        results.append((seconds, mb))
        print(f"channel {channel}: {seconds:8.2f} s  peak RSS {mb:7.0f} MB", flush=True)
    # The seller-level snapshots: each input file validated once (by the first channel's run), whatever the channels.
    manifests = sorted(p.name for p in (Path(tmp) / "warehouse" / "_inputs").glob("*.json"))
    print(f"snapshots: {len(manifests)} input file versions validated for {len(_MANY)} channels: {manifests}")
    median_s = statistics.median(s for s, _ in results)
    total_s = sum(s for s, _ in results)
    peak = max(mb for _, mb in results)
    print(
        f"offline_channels: channels={len(_MANY)} median_s={median_s:.2f} total_s={total_s:.1f} "
        f"max_peak_rss_mb={peak:.0f} skus={skus}"
    )


if __name__ == "__main__":
    main()
