"""Scale-out on a real Prefect server with process workers on loopback: sharded campaigns give the
same files as in-process runs, a worker killed mid-shard costs no render twice, SIGTERM ends runs.

One server, two workers and one deploy serve every test in this module (they are the slow part).
Every process started here runs in its own session and is killed by group at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
ROWS = 10  # x 4 aspect ratios of acme@2 = 40 jobs in 4 resolution buckets
PLACEMENTS = "meta.feed.square;meta.feed.portrait;meta.stories;meta.feed.landscape"  # 1:1 4:5 9:16 1.91:1
STALE_SECONDS = 60  # no shard heartbeat (every 30 s) for this long: Crashed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_sheet(path: Path, tag: str) -> Path:
    lines = ["asset_id,style,product,scene,variants,placements"]
    lines += [f"{tag}-{i:02d},acme@2,{tag} backpack number {i},a mountain trail,1,{PLACEMENTS}" for i in range(ROWS)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Cluster:
    """A Prefect server, its work pools, the gcl ``gpu`` and the deployments, plus workers."""

    def __init__(self, root: Path, repo: Path) -> None:
        self.root, self.repo = root, repo
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.env = {**os.environ, "PREFECT_HOME": str(root / "prefect-home"), "PREFECT_API_URL": self.api,
                    "BRANDBATCH_HOME": str(repo), "BRANDBATCH_SHARD_SIZE": "10",
                    "BRANDBATCH_SHARD_STALE_SECONDS": str(STALE_SECONDS), "BRANDBATCH_GPU_LEASE_SECONDS": "60",
                    "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1",
                    "PREFECT_LOGGING_LEVEL": "INFO", "COLUMNS": "200"}
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str, **env: str) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(list(args), cwd=self.repo, env={**self.env, **env}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def prefect(self, *args: str) -> str:
        result = subprocess.run([str(BIN / "prefect"), *args], cwd=self.repo, env=self.env, capture_output=True,
                                text=True, timeout=180)
        assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def get(self, path: str):
        with urllib.request.urlopen(f"{self.api}{path}", timeout=10) as response:
            return json.loads(response.read())

    def post(self, path: str, body: dict):
        request = urllib.request.Request(f"{self.api}{path}", data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.get("/health")
                return
            except OSError:
                assert self.procs["server"].poll() is None, self.log("server")
                time.sleep(0.5)
        raise AssertionError(f"server not healthy after {timeout} s:\n{self.log('server')}")

    def worker(self, name: str) -> subprocess.Popen:
        return self.start(name, str(BIN / "prefect"), "worker", "start", "--pool", "gpu", "--name", name,
                          "--limit", "1", BRANDBATCH_NODE=name)

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def flow_runs(self, flow_name: str) -> list[dict]:
        return self.post("/flow_runs/filter", {"flows": {"name": {"any_": [flow_name]}}, "limit": 200})

    def gpu_active_slots(self) -> int:
        return self.get("/v2/concurrency_limits/gpu")["active_slots"]

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        _kill_group(proc.pid)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for name in list(self.procs):
            self.kill(name)


def _kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    repo = Path(__file__).resolve().parents[2]
    cluster = Cluster(tmp_path_factory.mktemp("cluster"), repo)
    try:
        cluster.start("server", str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                      str(cluster.port))
        cluster.wait_healthy()
        cluster.prefect("work-pool", "create", "gpu", "--type", "process")
        cluster.prefect("work-pool", "create", "cpu", "--type", "process")
        cluster.prefect("gcl", "create", "gpu", "--limit", "2")
        cluster.prefect("--no-prompt", "deploy", "--all")
        cluster.worker("w1")
        cluster.worker("w2")
        yield cluster
    finally:
        for pid in _flow_run_pids(cluster):  # flow-run processes have sessions of their own
            _kill_group(pid)
        cluster.stop()


def _flow_run_pids(cluster: Cluster) -> list[int]:
    """Processes of flow runs the workers started (they outlive a killed worker)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                environ = (proc / "environ").read_bytes()
            except OSError:
                continue
            if f"PREFECT_API_URL={cluster.api}".encode() in environ and int(proc.name) != os.getpid():
                pids.append(int(proc.name))
    return pids


def brandbatch(cluster: Cluster, sheet: Path, out: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "brandbatch"), "run", str(sheet), "--out", str(out), "--formats", "webp"],
                          cwd=sheet.parent, env={**cluster.env, **env}, capture_output=True, text=True, timeout=420)


def manifest_digests(out: Path, campaign: str) -> list[tuple[str, str]]:
    rows = json.loads((out / campaign / "manifest.json").read_text())
    return sorted((r["path"], r["sha256"]) for r in rows)


def shard_records(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "shards").glob("*.json"))]


def test_sharded_campaign_on_two_workers_equals_in_process(cluster: Cluster, tmp_path: Path):
    sheet = write_sheet(tmp_path / "scale.csv", "scale")
    sharded = brandbatch(cluster, sheet, tmp_path / "sharded", BRANDBATCH_SHARD_DEPLOYMENT="render_shard/render-shard")
    assert sharded.returncode == 0, sharded.stdout + sharded.stderr + cluster.log("w1") + cluster.log("w2")
    assert "40 jobs (40 rendered, 0 already there, 0 failed)" in sharded.stdout, sharded.stdout

    records = shard_records(tmp_path / "sharded")
    assert len(records) >= 4
    assert {r["node"] for r in records} == {"w1", "w2"}, "both workers rendered shards"
    rendered = [key for r in records for key in r["report"]["rendered"]]
    assert len(rendered) == len(set(rendered)) == 40

    in_process = brandbatch(cluster, sheet, tmp_path / "in-process")
    assert in_process.returncode == 0, in_process.stdout + in_process.stderr
    assert not (tmp_path / "in-process" / "shards").exists()
    digests = manifest_digests(tmp_path / "sharded", "scale")
    assert digests, "the sharded run exported files"
    assert digests == manifest_digests(tmp_path / "in-process", "scale")
    renders = sorted(p.name for p in (tmp_path / "sharded" / "renders").glob("*.png"))
    assert renders == sorted(p.name for p in (tmp_path / "in-process" / "renders").glob("*.png"))
    for name in renders:
        assert (tmp_path / "sharded" / "renders" / name).read_bytes() == \
            (tmp_path / "in-process" / "renders" / name).read_bytes(), name
    assert all(r["state_type"] == "COMPLETED" for r in cluster.flow_runs("render_shard"))
