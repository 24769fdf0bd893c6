"""Embedded-warehouse limits: the SKU count and the number of concurrent runs at which one DuckDB file per channel
stops being comfortable on this machine.

Every run is the offline part of one channel's pipeline, as in `bench.offline`: every input, reconcile, price and
feed asset materialized by Dagster (`dg.materialize`) in a child process of its own, on `seller.synthetic` data (CSV),
with a `Warehouse` that also records how long each open of the channel's file took (the lock wait). The parent
samples, every 0.1 s, the children's resident memory and the size of DuckDB's spill directories
(`<channel>.duckdb.tmp`). Children share a private bytecode cache, filled once before anything is timed. The machine
may be shared: every row prints the 1-minute load average, and CPU seconds are printed beside wall seconds.

1. **SKU count** (reference: the smallest size, same run). Channel `us` at each `--skus` size: the child's wall time,
   `dg.materialize`'s wall and CPU time, CPU seconds per 1M SKUs relative to the smallest size (`cpu_scale`, the
   scaling ratio; `wall_scale` the same on wall time, which other load distorts), peak RSS of the child, the DuckDB
   file's size and the spill directory's peak. A size is comfortable when the run succeeds, peak RSS stays under
   1,536 MB (the step's 1 GB `memory_limit` plus Python) and `cpu_scale` ≤ 1.5 (roughly linear), at it and at every
   smaller size.
2. **Concurrent runs** (reference: N × one run on its own, measured right before each batch, same run). One seller
   with `max(--concurrency)` channels, one per marketplace (us, uk, de, then more in a generated channels.yaml),
   `--concurrent-skus` SKUs each, in one data directory whose input files hold every channel's rows, as a real
   seller's do (`--separate-inputs`: one directory per channel, so a run reads only its own rows). For each N, one run
   per channel for the first N channels, all at once (distinct DuckDB files), from empty warehouses: the batch's wall
   time over N × the single run's (`ratio` < 1: running together helps; ≈ 1: the 2 cores are only time-sliced), the
   same for CPU seconds (`cpu_ratio` > 1: running together costs extra work), the summed peak RSS of the children and
   the sampled peak of their sum, `open_s` (the longest time a run spent opening its file), `refused` (opens refused
   on DuckDB's file lock, then retried), failures and DuckDB lock
   failures (there should be none). N is comfortable when nothing fails, `ratio` ≤ 1.10 (no slower than one after
   another, allowing for noise) and the sampled memory stays under half the RAM, at N and every smaller N. Then
   `--same-file` runs of the *same* channel at once: they take turns on its file (`Warehouse` retries opening on the
   lock); the time each spent opening it is printed.

Ends with one line per part (`skus_comfortable`: the largest comfortable size; `rss_mb_at_max`, `scale_ratio`: peak
RSS and `cpu_scale` at the largest size measured; `batch_ratio_at_4`: `ratio` at N = 4, or the largest N below it):

    warehouse: skus_comfortable=N rss_mb_at_max=M scale_ratio=R
    warehouse: concurrent_comfortable=N batch_ratio_at_4=R lock_failures=F

    uv run python -m bench.warehouse            # 250k, 1M, 2M, 4M SKUs; N = 1, 2, 4, 8 at 250k (~15 minutes idle)
    uv run python -m bench.warehouse --quick    # 50k, 200k SKUs; N = 1, 2, 4 at 50k (~2 minutes)
    uv run python -m bench.warehouse --skus 250000,1000000 --concurrency 1,2 --concurrent-skus 100000
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SELLER = "A3DEMOSELLER01"
RSS_LIMIT_MB = 1536.0  # the step's 1 GB DuckDB memory_limit plus Python, Dagster and Arrow
SCALE_LIMIT = 1.5  # CPU seconds per 1M SKUs, relative to the smallest size: "roughly linear"
BATCH_LIMIT = 1.10  # a concurrent batch no slower than the same runs one after another (plus noise)
SAMPLE_S = 0.1

# One channel per marketplace of the same seller; every marketplace here has a 2-decimal currency, so all channels
# do the same work. us, uk and de are the repository's channels.
MARKETS = [
    ("us", "ATVPDKIKX0DER", "na"),
    ("uk", "A1F83G8C2ARO7P", "eu"),
    ("de", "A1PA6795UKMFR9", "eu"),
    ("ca", "A2EUQ1WTGCTBG2", "na"),
    ("fr", "A13V1IB3VIYZZH", "eu"),
    ("it", "APJ6JRA9NG5V4", "eu"),
    ("es", "A1RKKUPIHCS9HS", "eu"),
    ("nl", "A1805IZSGTT6HS", "eu"),
    ("mx", "A1AM78C64UM0Y8", "na"),
    ("se", "A2NODRKZP88ZB9", "eu"),
    ("pl", "A1C3SOZRARQ6R3", "eu"),
    ("be", "AMEN7PMS3EDWL", "eu"),
    ("au", "A39IBJ37TRP1C6", "fe"),
    ("sg", "A19VAU5U5O7RUS", "fe"),
    ("ie", "A28R8C7NBKEWEA", "eu"),
    ("br", "A2Q3Y263D00KWC", "na"),
]

DEFAULTS = {"skus": "250000,1000000,2000000,4000000", "concurrency": "1,2,4,8", "concurrent_skus": 250_000}
QUICK = {"skus": "50000,200000", "concurrency": "1,2,4", "concurrent_skus": 50_000}


# -- child roles ------------------------------------------------------------------------------------------------------
def _pipeline(data: str, channel: str, as_of: str, stats: str) -> None:
    """Materialize the offline part of `channel`'s pipeline; write the lock-wait figures to `stats` (JSON)."""
    import dagster as dg
    import duckdb

    from assets.feed_files import feed_assets
    from assets.inputs import input_assets
    from assets.inventory import reconciled_inventory
    from assets.prices import buybox_prices
    from pipelines.resources import EMULATOR_DEFAULTS
    from resources.spapi_resource import SpApiResource
    from resources.warehouse import Warehouse

    opens: list[float] = []
    refused = [0]  # connects refused because another process holds the file's lock
    connect = duckdb.connect

    def counting_connect(*args: Any, **kwargs: Any) -> duckdb.DuckDBPyConnection:
        try:
            return connect(*args, **kwargs)
        except duckdb.IOException as exc:
            refused[0] += "lock" in str(exc).lower()
            raise

    duckdb.connect = counting_connect  # this child only: Warehouse._open retries through it

    class TimedWarehouse(Warehouse):
        """The project's Warehouse, recording how long each open took (retries on DuckDB's lock included)."""

        def _open(self, path: Path, read_only: bool, timeout_s: float, max_delay: float) -> Any:
            start = time.perf_counter()
            try:
                return super()._open(path, read_only, timeout_s, max_delay)
            finally:
                opens.append(time.perf_counter() - start)

    offline = {name: {"config": {"offline": True}} for name in ("fba_inventory", "competitor_prices")}
    start, cpu = time.perf_counter(), time.process_time()
    try:
        result = dg.materialize(
            [*input_assets, reconciled_inventory, buybox_prices, *feed_assets],
            partition_key=channel,
            resources={"warehouse": TimedWarehouse(data_dir=data), "spapi": SpApiResource(**EMULATOR_DEFAULTS)},
            run_config={
                "ops": {"buybox_prices": {"config": {"as_of": as_of}}, **offline},
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
            },
        )
        if not result.success:
            raise SystemExit(f"run of {channel} failed")
    finally:
        figures = {
            "opens": len(opens),
            "wait_s": sum(opens),
            "max_wait_s": max(opens, default=0),
            "refused": refused[0],
        }
        Path(stats).write_text(
            json.dumps({**figures, "run_s": time.perf_counter() - start, "run_cpu_s": time.process_time() - cpu})
        )


def _warm() -> None:
    """Import what a run imports, so the bytecode cache is filled before anything is timed."""
    for module in (
        "dagster",
        "assets.feed_files",
        "assets.inputs",
        "assets.inventory",
        "assets.prices",
        "pipelines.resources",
        "seller.synthetic",
    ):
        importlib.import_module(module)


def _generate(data: str, config: str, skus: int, as_of: str, channel: str | None) -> None:
    from seller.config import load_channels
    from seller.synthetic import generate

    channels = load_channels(config)
    if channel:  # this channel's rows only
        channels = {channel: channels[channel]}
    generate(data, skus, channels, now=datetime.fromisoformat(as_of))


# -- measuring --------------------------------------------------------------------------------------------------------
@dataclass
class Run:
    channel: str
    wall_s: float  # the child process, start-up included
    run_s: float  # dg.materialize alone
    cpu_s: float  # CPU seconds of the child (user + system, every thread)
    run_cpu_s: float  # CPU seconds of dg.materialize alone
    rss_mb: float
    ok: bool
    lock_failure: bool
    opens: int
    wait_s: float
    max_wait_s: float
    refused: int  # opens refused on DuckDB's lock (then retried)
    error: str


@dataclass
class Batch:
    runs: list[Run]
    wall_s: float
    sampled_rss_mb: float  # peak of the children's summed RSS
    spill_mb: float  # peak of the spill directories' summed size

    @property
    def failures(self) -> int:
        return sum(not r.ok for r in self.runs)

    @property
    def lock_failures(self) -> int:
        return sum(r.lock_failure for r in self.runs)


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _tree_mb(root: Path) -> float:
    total = 0
    for base, _, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(base, name)).st_size
            except OSError:
                pass
    return total / 2**20


class _Sampler(threading.Thread):
    """Peak of the children's summed RSS and of the spill directories' size, every SAMPLE_S."""

    def __init__(self, pids: list[int], warehouses: list[Path]) -> None:
        super().__init__(daemon=True)
        self.pids, self.warehouses = pids, warehouses
        self.rss_mb = self.spill_mb = 0.0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(SAMPLE_S):
            self.rss_mb = max(self.rss_mb, sum(_rss_mb(pid) for pid in self.pids))
            spill = sum(_tree_mb(d) for w in self.warehouses for d in w.glob("*.duckdb.tmp"))
            self.spill_mb = max(self.spill_mb, spill)

    def stop(self) -> None:
        self._done.set()
        self.join()


def _child(role: str, *args: str, stderr: Any = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bench.warehouse", "--role", role, *args], stderr=stderr)


def _env_config(config: Path) -> None:
    # Read by pipelines.partitions at import in each child: the partitions are the channels of `config`.
    os.environ["SALES_CHANNEL_CONFIG"] = str(config)


def _generate_data(data: Path, config: Path, skus: int, as_of: str, channel: str | None = None) -> float:
    start = time.perf_counter()
    args = ["--data", str(data), "--config", str(config), "--skus", str(skus), "--as-of", as_of]
    proc = _child("generate", *args, *(["--channel", channel] if channel else []))
    if proc.wait() != 0:
        raise SystemExit("generating the synthetic seller failed")
    return time.perf_counter() - start


def _batch(jobs: list[tuple[Path, str]], as_of: str) -> Batch:
    """Run one pipeline per (data directory, channel), all at once, from empty warehouses; reap each as it ends."""
    warehouses = sorted({data / "warehouse" for data, _ in jobs})
    for warehouse in warehouses:
        for stale in (warehouse, warehouse.parent / "feeds"):
            shutil.rmtree(stale, ignore_errors=True)
        warehouse.mkdir(parents=True)
    channels = [channel for _, channel in jobs]
    logs = Path(tempfile.mkdtemp(prefix="bench-warehouse-logs-"))
    procs: dict[int, tuple[int, subprocess.Popen[bytes], Any]] = {}
    start = time.perf_counter()
    for i, (data, channel) in enumerate(jobs):
        err = open(logs / f"{i}.err", "w+b")  # noqa: SIM115 - closed when the child is reaped
        args = ["--data", str(data), "--channel", channel, "--as-of", as_of, "--stats", str(logs / f"{i}.json")]
        proc = _child("pipeline", *args, stderr=err)
        procs[proc.pid] = (i, proc, err)
    sampler = _Sampler(list(procs), warehouses)
    sampler.start()
    runs: list[Run | None] = [None] * len(channels)
    while procs:
        pid, status, usage = os.wait4(-1, 0)
        if pid not in procs:
            continue
        i, proc, err = procs.pop(pid)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
        err.close()
        stats_path = logs / f"{i}.json"
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
        failed = proc.returncode != 0
        tail = [line for line in text.splitlines() if line.strip()][-3:]
        runs[i] = Run(
            channel=channels[i],
            wall_s=wall,
            run_s=stats.get("run_s", math.nan),
            cpu_s=usage.ru_utime + usage.ru_stime,
            run_cpu_s=stats.get("run_cpu_s", math.nan),
            rss_mb=usage.ru_maxrss / 1024,
            ok=not failed,
            lock_failure=failed and any(m in text.lower() for m in ("could not set lock", "conflicting lock")),
            opens=stats.get("opens", 0),
            wait_s=stats.get("wait_s", 0.0),
            max_wait_s=stats.get("max_wait_s", 0.0),
            refused=stats.get("refused", 0),
            error=" | ".join(tail) if failed else "",
        )
    wall = time.perf_counter() - start
    sampler.stop()
    shutil.rmtree(logs, ignore_errors=True)
    done = [r for r in runs if r is not None]
    for run in done:
        if not run.ok:
            print(f"  run of {run.channel} FAILED: {run.error}")
    return Batch(done, wall, sampler.rss_mb, sampler.spill_mb)


def _write_config(path: Path, names: list[str]) -> None:
    markets = {name: (mid, region) for name, mid, region in MARKETS}
    lines = ["channels:"]
    for name in names:
        mid, region = markets[name]
        lines += [
            f"  - name: {name}",
            f"    seller_id: {SELLER}",
            f"    marketplace_id: {mid}",
            f"    region: {region}",
        ]
    path.write_text("\n".join(lines) + "\n")


def _db_mb(data: Path, channel: str) -> float:
    base = data / "warehouse" / f"{channel}.duckdb"
    return sum(p.stat().st_size for p in (base, base.with_name(base.name + ".wal")) if p.exists()) / 2**20


def _ram_mb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


# -- the two parts ----------------------------------------------------------------------------------------------------
def sku_scaling(sizes: list[int], as_of: str) -> tuple[int, float, float]:
    """Part 1: channel `us` at each size. Returns (largest comfortable size or 0, peak RSS MB and scale at the largest
    size measured)."""
    print(
        f"1. SKU count: channel us, offline pipeline, one run per size (comfortable: RSS < {RSS_LIMIT_MB:.0f} MB, "
        f"cpu_scale <= {SCALE_LIMIT})"
    )
    print(
        f"{'skus':>9} {'gen_s':>6} {'wall_s':>7} {'run_s':>7} {'run_cpu':>7} {'cpu/1M':>6} {'cpu_scale':>9} "
        f"{'wall_scale':>10} {'rss_mb':>7} {'db_mb':>6} {'spill_mb':>8} {'load':>5}  comfortable"
    )
    comfortable, first, first_wall, rss, scale, broken = 0, 0.0, 0.0, 0.0, math.nan, False
    for skus in sorted(sizes):
        with tempfile.TemporaryDirectory(prefix="bench-warehouse-") as tmp:
            data = Path(tmp)
            config = data / "channels.yaml"
            _write_config(config, ["us"])
            _env_config(config)
            gen_s = _generate_data(data, config, skus, as_of)
            batch = _batch([(data, "us")], as_of)
            run = batch.runs[0]
            per_m, wall_per_m = run.run_cpu_s / skus * 1e6, run.run_s / skus * 1e6
            first, first_wall = first or per_m, first_wall or wall_per_m
            scale, rss = per_m / first, run.rss_mb
            ok = run.ok and rss < RSS_LIMIT_MB and scale <= SCALE_LIMIT
            broken = broken or not ok  # comfort must hold at every smaller size too
            comfortable = comfortable if broken else skus
            print(
                f"{skus:>9,} {gen_s:>6.1f} {run.wall_s:>7.1f} {run.run_s:>7.1f} {run.run_cpu_s:>7.1f} {per_m:>6.1f} "
                f"{scale:>9.2f} {wall_per_m / first_wall:>10.2f} {rss:>7.0f} {_db_mb(data, 'us'):>6.0f} "
                f"{batch.spill_mb:>8.0f} {os.getloadavg()[0]:>5.1f}  {'yes' if ok else 'NO'}"
                + ("" if run.ok else "  (failed)")
            )
    return comfortable, rss, scale


def concurrency(levels: list[int], skus: int, same_file: int, shared: bool, as_of: str) -> tuple[int, float, int]:
    """Part 2. Returns (largest comfortable N, batch ratio at N=4 (or the largest N below it), lock failures)."""
    top = max(levels)
    if top > len(MARKETS):
        raise SystemExit(f"at most {len(MARKETS)} concurrent channels (one per 2-decimal marketplace)")
    names = [name for name, _, _ in MARKETS[:top]]
    layout = (
        f"one data directory whose input files hold all {top} channels"
        if shared
        else "each channel's inputs in a data directory of its own"
    )
    print(
        f"\n2. Concurrent runs: {top} channels ({', '.join(names)}) of one seller, {skus:,} SKUs each, {layout}; "
        f"N runs at once, each on its own DuckDB file (comfortable: no failure, ratio <= {BATCH_LIMIT}, sampled RSS "
        "< half the RAM)"
    )
    with tempfile.TemporaryDirectory(prefix="bench-warehouse-") as tmp:
        root = Path(tmp)
        config = root / "channels.yaml"
        _write_config(config, names)
        _env_config(config)
        dirs = {name: root if shared else root / name for name in names}
        started = time.perf_counter()
        if shared:
            _generate_data(root, config, skus, as_of)
        else:
            for name in names:
                _generate_data(dirs[name], config, skus, as_of, channel=name)
        print(f"   (generated in {time.perf_counter() - started:.1f} s)")
        print(
            f"{'N':>3} {'wall_s':>7} {'single':>6} {'N*single':>8} {'ratio':>6} {'cpu_ratio':>9} {'each_s':>11} "
            f"{'sum_rss':>7} {'sampled':>7} {'spill_mb':>8} {'open_s':>6} {'refused':>7} {'fail':>4} {'lock':>4} "
            f"{'load':>5}  comfortable"
        )
        ratios: dict[int, float] = {}
        comfortable, lock_failures, broken = 0, 0, False
        for n in sorted(levels):
            # The reference: one run on its own right before the batch, so both see the same outside load.
            reference = None if n == 1 else _batch([(dirs[names[0]], names[0])], as_of)
            batch = _batch([(dirs[name], name) for name in names[:n]], as_of)
            single, single_cpu = ((reference or batch).wall_s, (reference or batch).runs[0].cpu_s)
            cpu = sum(r.cpu_s for r in batch.runs)
            ratio = batch.wall_s / (n * single)
            ratios[n] = ratio
            lock_failures += batch.lock_failures
            ok = batch.failures == 0 and ratio <= BATCH_LIMIT and batch.sampled_rss_mb < _ram_mb() / 2
            broken = broken or not ok  # comfort must hold at every smaller N too
            comfortable = comfortable if broken else n
            walls = [r.wall_s for r in batch.runs]
            print(
                f"{n:>3} {batch.wall_s:>7.1f} {single:>6.1f} {n * single:>8.1f} {ratio:>6.2f} "
                f"{cpu / (n * single_cpu):>9.2f} {min(walls):>5.1f}-{max(walls):<5.1f} "
                f"{sum(r.rss_mb for r in batch.runs):>7.0f} "
                f"{batch.sampled_rss_mb:>7.0f} {batch.spill_mb:>8.0f} {max(r.wait_s for r in batch.runs):>6.2f} "
                f"{sum(r.refused for r in batch.runs):>7} {batch.failures:>4} {batch.lock_failures:>4} "
                f"{os.getloadavg()[0]:>5.1f}  {'yes' if ok else 'NO'}"
            )
        if same_file > 1:
            single = _batch([(dirs[names[0]], names[0])], as_of).wall_s
            batch = _batch([(dirs[names[0]], names[0])] * same_file, as_of)
            lock_failures += batch.lock_failures
            waits = ", ".join(
                f"{r.wait_s:.1f} s (longest {r.max_wait_s:.1f} s; {r.opens} opens, {r.refused} refused on the lock)"
                for r in batch.runs
            )
            print(
                f"same file: {same_file} runs of {names[0]} at once: {batch.wall_s:.1f} s vs {same_file} x single "
                f"{same_file * single:.1f} s, ratio {batch.wall_s / (same_file * single):.2f}; "
                f"failures {batch.failures}, lock failures {batch.lock_failures}"
            )
            print(f"{'':11}time each run spent opening the file (waiting on the lock): {waits}")
    at = max((n for n in ratios if n <= 4), default=max(ratios))
    return comfortable, ratios[at], lock_failures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: about 2 minutes")
    parser.add_argument("--skus", help=f"part 1 sizes, comma-separated (default {DEFAULTS['skus']})")
    parser.add_argument("--concurrency", help=f"part 2 levels N, comma-separated (default {DEFAULTS['concurrency']})")
    parser.add_argument("--concurrent-skus", type=int, help="part 2 SKUs per channel (default 250000)")
    parser.add_argument(
        "--separate-inputs",
        action="store_true",
        help="part 2: each channel's input files in a data directory of its own (default: one shared directory, "
        "whose files hold every channel's rows, as a real seller's do)",
    )
    parser.add_argument("--same-file", type=int, default=2, help="runs of one channel at once (0: skip)")
    parser.add_argument("--role", choices=["generate", "pipeline", "warm"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--channel", help=argparse.SUPPRESS)
    parser.add_argument("--as-of", help=argparse.SUPPRESS)
    parser.add_argument("--stats", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "pipeline":
        return _pipeline(args.data, args.channel, args.as_of, args.stats)
    if args.role == "generate":
        return _generate(args.data, args.config, int(args.skus), args.as_of, args.channel)
    if args.role == "warm":
        return _warm()

    preset = QUICK if args.quick else DEFAULTS
    sizes = [int(s) for s in (args.skus or preset["skus"]).split(",")]
    levels = [int(n) for n in (args.concurrency or preset["concurrency"]).split(",")]
    per_channel = args.concurrent_skus or int(preset["concurrent_skus"])
    as_of = datetime.now(UTC).replace(microsecond=0).isoformat()
    print(f"start: {_load()}, {_ram_mb() / 1024:.0f} GB RAM")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-warehouse-pyc-") as pyc:
        # Children compile their imports once into a private bytecode cache (never into the tree), as an installed
        # deployment would have them: PYTHONDONTWRITEBYTECODE would otherwise make every run recompile Dagster.
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = pyc
        if _child("warm").wait() != 0:
            raise SystemExit("importing the pipeline failed")
        skus_ok, rss_at_max, scale = sku_scaling(sizes, as_of)
        conc_ok, ratio_at_4, lock_failures = concurrency(
            levels, per_channel, args.same_file, not args.separate_inputs, as_of
        )
    print(f"end: {_load()}; {time.perf_counter() - start:.0f} s in all")
    print(f"warehouse: skus_comfortable={skus_ok} rss_mb_at_max={rss_at_max:.0f} scale_ratio={scale:.2f}")
    print(
        f"warehouse: concurrent_comfortable={conc_ok} batch_ratio_at_4={ratio_at_4:.2f} lock_failures={lock_failures}"
    )


if __name__ == "__main__":
    main()
