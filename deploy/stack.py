"""A production-like deployment on one machine: Postgres-backed Dagster with its daemon and webserver, the SP-API
emulator and a moto server (SQS and S3), each a background process (`make up`, `make down`, `make status`).

    python -m deploy.stack up      # start everything under .deploy/, enable and backfill every channel
    python -m deploy.stack down    # stop it all (Postgres data, run history and the warehouse stay in .deploy/)
    python -m deploy.stack status

The Dagster instance is `deploy/dagster.yaml` (Postgres storage, the queued run coordinator with one run per
seller x region, pool limits), copied into `.deploy/dagster_home`. Postgres is the machine's own server binaries
(`initdb`, `pg_ctl`; Debian's `postgresql` package), run as a private cluster on 127.0.0.1 with trust
authentication: for this machine only. Pointing at a real Postgres is setting the `DAGSTER_PG_*` variables.

Every process runs in the deployed mode (`resources.state`): `SALES_CHANNEL_STATE` is database `sales_channel` of the
same Postgres (Dagster's own tables stay in `dagster`), `SALES_CHANNEL_LAKE` is `s3://sales-channel-lake/sales-channel`
on the moto server (`AWS_ENDPOINT_URL_S3`), so the throttle, the notification store, the channel data and the feed
documents are shared the way pods would share them. Only the seller's input files (`SALES_CHANNEL_DATA`) and the
emulator's state (it stands for Amazon) stay in `.deploy/`.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Postgres", "free_port", "instance_home", "spawn", "stop_process", "wait_for_port"]

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / ".deploy"
DAGSTER_YAML = REPO / "deploy" / "dagster.yaml"
PORTS = {"postgres": 5433, "emulator": 8787, "sqs": 5000, "webserver": 3000}  # "sqs": moto, S3 included
STATE_DATABASE = "sales_channel"  # the deployed mode's database, beside Dagster's own
LAKE_BUCKET = "sales-channel-lake"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f} s")


def _pg_bin() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's `postgresql` package "
            "(`make postgres` does) or point DAGSTER_PG_* at an existing server"
        )
    return candidates[-1].parent


@dataclass
class Postgres:
    """A private Postgres cluster in `data_dir` on 127.0.0.1:`port`, with database and user `dagster`.

    Postgres refuses to run as root: under root the cluster belongs to the `postgres` system user, so `data_dir`
    must sit where that user can reach it (e.g. under /tmp or a world-traversable checkout)."""

    data_dir: Path
    port: int
    user: str = "dagster"
    database: str = "dagster"

    def _as_owner(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args

    def _run(self, args: list[str]) -> None:
        done = subprocess.run(self._as_owner(args), capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(
                f"{Path(args[0]).name} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}"
            )

    def start(self) -> Postgres:
        bin_dir = _pg_bin()
        fresh = not (self.data_dir / "PG_VERSION").exists()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.data_dir, owner.pw_uid, owner.pw_gid)
            self.data_dir.chmod(0o700)
        if fresh:
            self._run(
                [str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.user, "--auth=trust", "-E", "UTF8"]
            )
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data_dir} -c max_connections=200"
        log = self.data_dir / "server.log"
        self._run([str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(log), "-o", options, "-w", "start"])
        if fresh:
            self._run(
                [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.database]
            )
        return self

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run([str(_pg_bin() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])

    def create_database(self, name: str) -> str:
        """Database `name` (created when missing); returns its URL for `SALES_CHANNEL_STATE`."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname=self.database)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return f"postgresql://{self.user}:local-trust-auth@127.0.0.1:{self.port}/{name}"

    def env(self) -> dict[str, str]:
        """The `DAGSTER_PG_*` variables deploy/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": "local-trust-auth",  # ignored by trust authentication; a real server checks it
            "DAGSTER_PG_DB": self.database,
        }


def instance_home(home: Path) -> Path:
    """A DAGSTER_HOME holding deploy/dagster.yaml."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DAGSTER_YAML, home / "dagster.yaml")
    return home


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A background process in its own session (so its whole group can be stopped), output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            args,
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop_process(pid: int, grace: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL what is left after `grace` (dagster processes may ignore SIGTERM)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --- the `make up` stack ----------------------------------------------------------------------------------------------
def _environment(pg: Postgres, state_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(pg.env())
    moto = f"http://127.0.0.1:{PORTS['sqs']}"
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    env.update(
        DAGSTER_HOME=str(STATE / "dagster_home"),
        SALES_CHANNEL_DATA=env.get("SALES_CHANNEL_DATA") or str(STATE / "data"),
        SPAPI_ENDPOINT=f"http://127.0.0.1:{PORTS['emulator']}",
        SALES_CHANNEL_SQS_ENDPOINT=moto,
        # the deployed mode: coordination state in Postgres, channel data and feed documents in the lake (S3)
        SALES_CHANNEL_STATE=state_url,
        SALES_CHANNEL_LAKE=f"s3://{LAKE_BUCKET}/sales-channel",
        AWS_ENDPOINT_URL_S3=moto,
        AWS_ACCESS_KEY_ID=env.get("AWS_ACCESS_KEY_ID") or "testing",
        AWS_SECRET_ACCESS_KEY=env.get("AWS_SECRET_ACCESS_KEY") or "testing",
        AWS_REGION=region,
        AWS_DEFAULT_REGION=region,
    )
    return env


def _lake_bucket(env: dict[str, str]) -> None:
    """The lake's bucket on the moto server (created when missing)."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    if LAKE_BUCKET not in {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=LAKE_BUCKET)


def up() -> None:
    from seller.config import load_channels
    from seller.synthetic import generate

    pg = Postgres(STATE / "postgres", PORTS["postgres"]).start()
    instance_home(STATE / "dagster_home")
    env = _environment(pg, pg.create_database(STATE_DATABASE))
    data = Path(env["SALES_CHANNEL_DATA"])
    channels = load_channels()
    if not (data / "master_inventory.csv").exists() and not (data / "master_inventory.parquet").exists():
        generate(data, 2000, channels)
    bin_dir = Path(sys.executable).parent
    logs = STATE / "logs"
    procs = {
        "sqs": [str(bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(PORTS["sqs"])],
        "emulator": [
            str(bin_dir / "spapi-emulator"), "--port", str(PORTS["emulator"]), "--seed-from", str(data),
            "--state-dir", str(STATE / "emulator"), "--rate-scale", "100",
            "--sqs-endpoint", env["SALES_CHANNEL_SQS_ENDPOINT"],
        ],
        "daemon": [str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        "webserver": [
            str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(PORTS["webserver"])
        ],
    }  # fmt: skip
    # create the schema and the pools' rows once, before the daemon, the webserver and the runs would race to
    # (dagster-notes §11; deploy/prepare.py)
    subprocess.run([sys.executable, "-m", "deploy.prepare"], env=env, cwd=REPO, check=True, capture_output=True)
    dagster = str(bin_dir / "dagster")
    pids = {}
    for name, args in procs.items():
        proc = spawn(args, env, logs / f"{name}.log")
        pids[name] = proc.pid
        if name in PORTS:
            wait_for_port(PORTS[name], timeout=120, proc=proc)
        if name == "sqs":
            _lake_bucket(env)
    (STATE / "pids.json").write_text(json.dumps(pids))
    for name in channels:  # queued: the daemon runs them, schedules start once they succeed
        config = json.dumps({"ops": {"enable_channel_op": {"config": {"channel": name}}}})
        launch = ["job", "launch", "-w", "workspace.yaml", "-j", "enable_channel", "--config-json", config]
        subprocess.run([dagster, *launch], env=env, cwd=REPO, check=True, capture_output=True)
    # a channel's first full run builds the tables the cadenced jobs (prices, inventory) start from
    backfill = ["job", "backfill", "-w", "workspace.yaml", "-j", "channel_pipeline_job", "--noprompt"]
    subprocess.run([dagster, *backfill, "--partitions", ",".join(channels)], env=env, cwd=REPO, check=True)
    print(f"Dagster UI     http://127.0.0.1:{PORTS['webserver']}  (DAGSTER_HOME={env['DAGSTER_HOME']})")
    print(f"SP-API         {env['SPAPI_ENDPOINT']} (emulator)   SQS and S3 {env['SALES_CHANNEL_SQS_ENDPOINT']} (moto)")
    print(f"Postgres       127.0.0.1:{pg.port} databases {pg.database} (Dagster), {STATE_DATABASE} (state)")
    print(f"Logs           {logs}")
    print(f"Lake           {env['SALES_CHANNEL_LAKE']} (channel data, feed documents)")
    print(f"queued: enable_channel and a first channel_pipeline_job run for {', '.join(channels)}")


def down() -> None:
    pids_file = STATE / "pids.json"
    if pids_file.exists():
        for pid in reversed(json.loads(pids_file.read_text()).values()):
            stop_process(pid)
        pids_file.unlink()
    Postgres(STATE / "postgres", PORTS["postgres"]).stop()
    print("stopped; state kept in .deploy/ (make clean removes it)")


def status() -> None:
    pids = json.loads((STATE / "pids.json").read_text()) if (STATE / "pids.json").exists() else {}
    for name, pid in pids.items():
        try:
            os.killpg(pid, 0)
            state = "running"
        except ProcessLookupError:
            state = "stopped"
        print(f"{name:10} pid {pid:>7}  {state}")
    if not pids:
        print("not running (make up)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status"])
    {"up": up, "down": down, "status": status}[parser.parse_args(argv).command]()


if __name__ == "__main__":
    main()
