"""The console script: one ready line on stdout, real HTTP, a clean stop on SIGTERM and SIGINT."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_console_script_serves_and_stops_cleanly(tmp_path, stop):
    port = free_port()
    script = Path(sys.executable).with_name("spapi-emulator")
    proc = subprocess.Popen(
        [
            str(script),
            "--port",
            str(port),
            "--synthetic",
            "50",
            "--channels",
            str(REPO / "channels.yaml"),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SALES_CHANNEL_CONFIG": str(REPO / "channels.yaml")},
    )
    try:
        assert proc.stdout.readline().strip() == f"spapi-emulator listening on http://127.0.0.1:{port}"
        token = httpx.post(
            f"http://127.0.0.1:{port}/auth/o2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": "Atzr|emulator-refresh-token",
                "client_id": "amzn1.application-oa2-client.emulator",
                "client_secret": "emulator-client-secret",
            },
        )
        assert token.status_code == 200 and token.json()["access_token"].startswith("Atza|")
        proc.send_signal(stop)
        assert proc.wait(timeout=15) == 0, proc.stderr.read()
        assert any((tmp_path / "state").iterdir())  # state saved on the way out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
