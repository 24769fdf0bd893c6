"""Lake write time per channel: the offline pipeline of one channel (inputs, reconcile, Buy Box prices, the three
feed documents: every channel table it writes) at N SKUs, once on the embedded DuckDB file and once in the deployed
mode's DuckLake (catalog in a private Postgres, data files in a local moto S3 server), each in its own child process.
Prints both times and the lake's objects, and ends with `lake: embedded_s=E lake_s=L skus=N`.

    uv run python -m bench.lake --skus 100000

Needs Postgres's server binaries (`make postgres`). moto is a local S3: a real S3 adds its network round trips.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

BUCKET = "bench-lake"
_KEYS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench", "region_name": "us-east-1"}


def _run(data: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bench.offline", "--role", "pipeline", "--data", data], env=env, check=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skus", type=int, default=100_000)
    args = parser.parse_args(argv)

    from deploy.stack import Postgres, free_port
    from emulator.testing import moto_server

    base = Path(tempfile.mkdtemp(prefix="bench-lake-"))
    base.chmod(0o755)  # under root, Postgres runs as `postgres` and must reach its data directory
    pg = Postgres(base / "postgres", free_port()).start()
    try:
        with moto_server() as s3_url:
            boto3.client("s3", endpoint_url=s3_url, **_KEYS).create_bucket(Bucket=BUCKET)
            embedded_data, lake_data = str(base / "embedded"), str(base / "lake")
            subprocess.run(
                [sys.executable, "-m", "bench.offline", "--role", "generate", "--data", embedded_data]
                + ["--skus", str(args.skus)],
                check=True,
            )
            shutil.copytree(embedded_data, lake_data)
            plain = {k: v for k, v in os.environ.items() if k not in ("SALES_CHANNEL_STATE", "SALES_CHANNEL_LAKE")}
            deployed = {
                **plain,
                "SALES_CHANNEL_STATE": f"postgresql://{pg.user}@127.0.0.1:{pg.port}/{pg.database}",
                "SALES_CHANNEL_LAKE": f"s3://{BUCKET}/sales-channel",
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL_S3": s3_url,
            }
            embedded_s = _run(embedded_data, plain)
            lake_s = _run(lake_data, deployed)
            client = boto3.client("s3", endpoint_url=s3_url, **_KEYS)
            objects = [
                item
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
                for item in page.get("Contents", [])
            ]
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)
    size_mb = sum(item["Size"] for item in objects) / 1e6
    print(f"embedded (DuckDB file):          {embedded_s:8.2f} s")
    print(f"deployed (DuckLake: Postgres+S3): {lake_s:8.2f} s  {len(objects)} objects, {size_mb:.1f} MB")
    print(f"lake: embedded_s={embedded_s:.2f} lake_s={lake_s:.2f} skus={args.skus}")


if __name__ == "__main__":
    main()
