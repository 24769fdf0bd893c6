"""`make demo`: a synthetic seller, every asset materialized for every channel, and a summary per channel.

Everything stays under `.demo/` (data directory, DuckDB files, feed documents and a persistent DAGSTER_HOME, so
`make ui` shows the runs afterwards). No network is used.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"

_INSTANCE_YAML = """\
telemetry:
  enabled: false
nux:
  enabled: false
"""


# Run logs stay in the instance (the UI shows them); the console gets warnings and errors only.
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _prepare_environment(skus: int) -> Path:
    data = DEMO / "data"
    home = DEMO / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["SALES_CHANNEL_DATA"] = str(data)
    os.environ.setdefault("SALES_CHANNEL_CONFIG", str(ROOT / "channels.yaml"))
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skus", type=int, default=5000)
    args = parser.parse_args(argv)
    data = _prepare_environment(args.skus)

    # Imported after the environment is set: the code location reads it when it loads.
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.partitions import CHANNELS
    from resources.warehouse import Warehouse
    from seller.synthetic import generate

    started = time.monotonic()
    counts = generate(data, args.skus, CHANNELS)
    print(f"synthetic seller: {counts['master_inventory']} SKUs, {len(CHANNELS)} channels -> {data}")
    job = defs.resolve_job_def("channel_pipeline_job")
    warehouse = Warehouse(data_dir=str(data))
    failed = []
    with dg.DagsterInstance.get() as instance:
        for name in CHANNELS:
            result = job.execute_in_process(
                partition_key=name, instance=instance, raise_on_error=False, run_config=_QUIET
            )
            if not result.success:
                failed.append(name)
    print()
    print(f"{'channel':<8}{'SKUs':>7}{'mapped':>8}{'priced':>8}{'up':>6}{'down':>6}{'floor':>7}{'feeds':>7}  where")
    for name in CHANNELS:
        print(_summary_line(name, warehouse))
    print(f"\nfinished in {time.monotonic() - started:.1f}s")
    if failed:
        print(f"FAILED channels: {', '.join(failed)} (see input_errors above / in the UI)")
    print("Open the Dagster UI on these runs:  make ui   (then http://127.0.0.1:3000)")
    return 1 if failed else 0


def _summary_line(name: str, warehouse) -> str:
    with warehouse.connect(name) as con:
        errors = con.execute("SELECT count(*) FROM input_errors").fetchall()[0][0]
        if errors:
            rows = con.execute('SELECT file, row, "column", message FROM input_errors LIMIT 3').fetchall()
            return f"{name:<8}INPUT ERRORS ({errors}): " + "; ".join(f"{f} row {r} {c}: {m}" for f, r, c, m in rows)
        skus, mapped = con.execute(
            "SELECT (SELECT count(*) FROM master_inventory), (SELECT count(*) FROM reconciled_inventory)"
        ).fetchall()[0]
        priced, up, down, floor = con.execute(
            "SELECT count(*), count(*) FILTER (price_minor > base_minor), count(*) FILTER (price_minor < base_minor), "
            "count(*) FILTER (outcome = 'at_floor') FROM buybox_prices"
        ).fetchall()[0]
    feeds = warehouse.feeds_dir(name)
    files = [p for p in feeds.rglob("*") if p.is_file()]
    where = os.path.relpath(feeds, Path.cwd())
    return f"{name:<8}{skus:>7}{mapped:>8}{priced:>8}{up:>6}{down:>6}{floor:>7}{len(files):>7}  {where}"


if __name__ == "__main__":
    raise SystemExit(main())
