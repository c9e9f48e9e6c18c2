"""Scale-out on a real Prefect server with process workers on loopback: sharded campaigns (renders
on the gpu pool, QA and export on the cpu pool) give the same files as in-process runs, a worker
killed mid-shard costs no render twice, SIGTERM ends runs.

One server, two workers and one deploy serve every test in this module (they are the slow part).
Every process started here runs in its own session and is killed by group at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import shutil
from pathlib import Path

import httpx
import pytest
import yaml

from tests import prefect_api

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
ROWS = 10  # x 4 aspect ratios of acme@2 = 40 jobs in 4 resolution buckets
PLACEMENTS = "meta.feed.square;meta.feed.portrait;meta.stories;meta.feed.landscape"  # 1:1 4:5 9:16 1.91:1
CHAOS_JOBS = 12  # one bucket, 2 shards of 6
STALE_SECONDS = 60  # no shard heartbeat (every 30 s) for this long: Crashed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_styles(root: Path, repo: Path, steps: int = 3) -> Path:
    """acme@2 at 64 px and 3 steps: the same code paths, a fraction of the CPU time."""
    styles = root / f"styles-{steps}"
    (styles / "acme").mkdir(parents=True)
    shutil.copy(repo / "styles" / "banned-terms.txt", styles / "banned-terms.txt")
    style = yaml.safe_load((repo / "styles" / "acme" / "v2.yaml").read_text(encoding="utf-8"))
    style["model"]["resolution"], style["steps"] = 64, steps
    (styles / "acme" / "v2.yaml").write_text(yaml.safe_dump(style), encoding="utf-8")
    return styles


def write_sheet(path: Path, tag: str, rows: int = ROWS, placements: str = PLACEMENTS) -> Path:
    lines = ["asset_id,style,product,scene,variants,placements"]
    lines += [f"{tag}-{i:02d},acme@2,{tag} backpack number {i},a mountain trail,1,{placements}" for i in range(rows)]
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
                    "BRANDBATCH_STYLES": str(write_styles(root, repo)),
                    "BRANDBATCH_SHARD_STALE_SECONDS": str(STALE_SECONDS), "BRANDBATCH_GPU_LEASE_SECONDS": "60",
                    "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1",
                    "PREFECT_LOGGING_LEVEL": "INFO", "COLUMNS": "200",
                    # the server frees the slots of dead holders every 2 s (default 15)
                    "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "2"}
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str, cwd: Path | None = None, **env: str) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(list(args), cwd=cwd or self.repo, env={**self.env, **env}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def prefect(self, *args: str) -> str:
        result = subprocess.run([str(BIN / "prefect"), *args], cwd=self.repo, env=self.env, capture_output=True,
                                text=True, timeout=180)
        assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def get(self, path: str, **kwargs):
        return prefect_api.get_json(f"{self.api}{path}", **kwargs)

    def post(self, path: str, body: dict):
        return prefect_api.post_json(f"{self.api}{path}", body)

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.get("/health", attempts=1)
                return
            except httpx.HTTPError:
                assert self.procs["server"].poll() is None, self.log("server")
                time.sleep(0.5)
        raise AssertionError(f"server not healthy after {timeout} s:\n{self.log('server')}")

    def worker(self, name: str, pool: str = "gpu") -> subprocess.Popen:
        return self.start(name, str(BIN / "prefect"), "worker", "start", "--pool", pool, "--name", name,
                          "--limit", "1", BRANDBATCH_NODE=name)

    def mark(self, what: str) -> None:
        with open(self.root / "timeline.log", "a") as timeline:
            timeline.write(f"{time.strftime('%H:%M:%S')} {what}\n")

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


def assert_every_shard_completed(runs: list[dict]) -> None:
    """Each shard's last attempt (flow run ``<campaign>-[check-]<shard>-<attempt>``) Completed, and
    every earlier one Crashed: a worker that cannot reach an overloaded server (503s while its
    SQLite database is locked, as on a busy CI machine) reports the run it was starting as crashed,
    and the campaign runs that shard again (flows/shard.py). Any other end fails, with every state."""
    attempts: dict[str, dict[int, dict]] = {}
    for run in runs:
        shard, _, attempt = run["name"].rpartition("-")
        attempts.setdefault(shard, {})[int(attempt)] = run
    states = [(r["name"], r["state_type"], r["state"] and r["state"]["message"]) for r in runs]
    assert attempts, "no shard runs"
    for by_attempt in attempts.values():
        last = max(by_attempt)
        assert by_attempt[last]["state_type"] == "COMPLETED", states
        assert all(run["state_type"] == "CRASHED" for n, run in by_attempt.items() if n != last), states


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
        cluster.worker("c1", pool="cpu")  # check shards (QA, queue, export)
        cluster.worker("c2", pool="cpu")
        cluster.mark("cluster up")
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


def run_args(sheet: Path, out: Path, *more: str) -> list[str]:
    return [str(BIN / "brandbatch"), "run", str(sheet), "--out", str(out), "--formats", "webp", *more]


def brandbatch(cluster: Cluster, sheet: Path, out: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(run_args(sheet, out), cwd=sheet.parent, env={**cluster.env, **env}, capture_output=True,
                          text=True, timeout=420)


def wait_for(condition, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def job_keys(run: dict) -> list[str]:
    from plan.jobs import RenderJob

    return [RenderJob.from_dict(job).key for job in run["parameters"]["jobs"]]


def rendered_keys(out: Path) -> set[str]:
    return {p.stem for p in (out / "renders").glob("*.png")}


def parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def manifest_digests(out: Path, campaign: str) -> list[tuple[str, str]]:
    """(path, digest of the file's pixels and XMP) per manifest row: C2PA signatures differ
    from run to run (random salts, ECDSA), the content must not."""
    from PIL import Image

    def content(path: str) -> str:
        with Image.open(out / path) as image:
            return hashlib.sha256(image.tobytes() + repr(image.getxmp()).encode()).hexdigest()

    rows = json.loads((out / campaign / "manifest.json").read_text())
    return sorted((r["path"], content(r["path"])) for r in rows)


def shard_records(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "shards").glob("*.json"))]


def test_sharded_campaign_on_two_workers_equals_in_process(cluster: Cluster, tmp_path: Path):
    sheet = write_sheet(tmp_path / "scale.csv", "scale")
    # both at once: the in-process run uses the CPU while the shards wait for workers and start up
    in_process = cluster.start("in-process", *run_args(sheet, tmp_path / "in-process"), cwd=tmp_path)
    sharded = brandbatch(cluster, sheet, tmp_path / "sharded", BRANDBATCH_SHARD_DEPLOYMENT="render_shard/render-shard")
    assert sharded.returncode == 0, sharded.stdout + sharded.stderr + cluster.log("w1") + cluster.log("w2")
    assert "40 render jobs (40 rendered, 0 already there, 0 failed)" in sharded.stdout, sharded.stdout
    assert in_process.wait(timeout=300) == 0, cluster.log("in-process")
    cluster.procs.pop("in-process")

    records = shard_records(tmp_path / "sharded")
    assert len(records) >= 4
    assert {r["node"] for r in records} == {"w1", "w2"}, "both workers rendered shards"
    rendered = [key for r in records for key in r["report"]["rendered"]]
    assert len(rendered) == len(set(rendered)) == 40

    assert not (tmp_path / "in-process" / "shards").exists()
    digests = manifest_digests(tmp_path / "sharded", "scale")
    assert digests, "the sharded run exported files"
    assert digests == manifest_digests(tmp_path / "in-process", "scale")
    renders = sorted(p.name for p in (tmp_path / "sharded" / "renders").glob("*.png"))
    assert renders == sorted(p.name for p in (tmp_path / "in-process" / "renders").glob("*.png"))
    for name in renders:
        assert (tmp_path / "sharded" / "renders" / name).read_bytes() == \
            (tmp_path / "in-process" / "renders" / name).read_bytes(), name
    assert_every_shard_completed(cluster.flow_runs("render_shard"))
    # With a server configured the run records its artifacts there (without one it records none).
    artifacts = {a["key"]: a for a in cluster.post("/artifacts/filter", {"limit": 200}) if a.get("key")}
    assert artifacts["progress-scale"]["type"] == "progress" and float(artifacts["progress-scale"]["data"]) == 100
    assert artifacts["metrics-scale"]["type"] == "markdown" and "| GPU-seconds |" in artifacts["metrics-scale"]["data"]
    assert artifacts["runs-scale"]["type"] == "table"


def queue_states(out: Path, campaign: str) -> list[tuple]:
    from review.queue import ReviewQueue

    queue = ReviewQueue.for_out(out)
    try:
        return sorted((i.id, i.state, i.verdict, i.approval_id, i.approved_by) for i in queue.items(campaign))
    finally:
        queue.close()


def test_qa_and_export_sharded_on_two_cpu_workers_equal_in_process(cluster: Cluster, tmp_path: Path):
    sheet = write_sheet(tmp_path / "checks.csv", "checks", rows=6, placements="meta.feed.square;meta.stories")
    in_process = cluster.start("checks-in-process", *run_args(sheet, tmp_path / "in-process"), cwd=tmp_path)
    sharded = brandbatch(cluster, sheet, tmp_path / "sharded", BRANDBATCH_CHECK_DEPLOYMENT="check_shard/check-shard",
                         BRANDBATCH_CHECK_SHARD_ROWS="2")
    assert sharded.returncode == 0, sharded.stdout + sharded.stderr + cluster.log("c1") + cluster.log("c2")
    assert in_process.wait(timeout=300) == 0, cluster.log("checks-in-process")
    cluster.procs.pop("checks-in-process")

    records = shard_records(tmp_path / "sharded")
    assert len(records) == 3 and all("checked" in r for r in records), "6 rows, 2 per check shard"
    assert {r["node"] for r in records} == {"c1", "c2"}, "both cpu workers checked and exported rows"
    assert sorted(row for r in records for row in r["checked"]) == [f"checks-{i:02d}" for i in range(6)]
    assert sum(len(r["exports"]) for r in records) > 0, "the shards exported approved variants"
    assert_every_shard_completed(cluster.flow_runs("check_shard"))

    digests = manifest_digests(tmp_path / "sharded", "checks")
    assert digests and digests == manifest_digests(tmp_path / "in-process", "checks")
    for name in ("manifest.json",):
        rows = [{k: v for k, v in row.items() if k not in ("sha256", "bytes")}
                for row in json.loads((tmp_path / "sharded" / "checks" / name).read_text())]
        assert rows == [{k: v for k, v in row.items() if k not in ("sha256", "bytes")}
                        for row in json.loads((tmp_path / "in-process" / "checks" / name).read_text())]
    qa = sorted(p.name for p in (tmp_path / "sharded" / "qa").glob("*.json"))
    assert qa == sorted(p.name for p in (tmp_path / "in-process" / "qa").glob("*.json"))
    for name in qa:
        assert (tmp_path / "sharded" / "qa" / name).read_bytes() == (tmp_path / "in-process" / "qa" / name).read_bytes()
    assert queue_states(tmp_path / "sharded", "checks") == queue_states(tmp_path / "in-process", "checks")


def test_worker_killed_mid_shard_costs_no_render_twice_and_frees_its_gpu_slot(cluster: Cluster, tmp_path: Path):
    sheet = write_sheet(tmp_path / "chaos.csv", "chaos", rows=CHAOS_JOBS, placements="meta.feed.square")
    out = tmp_path / "chaos-out"
    # one PNG at a time, ~0.5 s each (40 steps): a wide window to catch a shard half done
    campaign = cluster.start("chaos-run", *run_args(sheet, out, "--batch-size", "1"), cwd=tmp_path,
                             BRANDBATCH_SHARD_DEPLOYMENT="render_shard/render-shard", BRANDBATCH_SHARD_SIZE="6",
                             BRANDBATCH_STYLES=str(write_styles(tmp_path, cluster.repo, steps=40)))

    def shard_in_progress():
        for run in cluster.flow_runs("render_shard"):
            if run["state_type"] == "RUNNING" and run["parameters"]["out"] == str(out) and run["infrastructure_pid"]:
                keys = job_keys(run)
                if 0 < len(rendered_keys(out) & set(keys)) < len(keys):
                    return run, keys
        return None

    cluster.mark("chaos started")
    victim, victim_keys = wait_for(shard_in_progress, 300, "a shard half rendered", interval=0.1)
    shard_pid = int(victim["infrastructure_pid"].rsplit(":", 1)[-1])  # "PID" or "HOST:PID"
    worker = next(name for name, proc in cluster.procs.items() if proc.pid == parent_pid(shard_pid))
    _kill_group(shard_pid)  # the flow-run process has a session of its own
    cluster.kill(worker)  # the worker: SIGKILL, as when the machine dies
    killed_at = time.monotonic()
    before = rendered_keys(out) & set(victim_keys)
    assert 0 < len(before) < len(victim_keys)
    cluster.worker("w3")

    cluster.mark("killed")
    assert campaign.wait(timeout=400) == 0, cluster.log("chaos-run")
    cluster.mark("campaign done")
    cluster.procs.pop("chaos-run")
    summary = f"{CHAOS_JOBS} render jobs ({CHAOS_JOBS - len(before)} rendered, {len(before)} already there, 0 failed)"
    assert summary in cluster.log("chaos-run"), cluster.log("chaos-run")

    # every job rendered exactly once: by the killed shard before it died, or by one finished shard
    finished = [key for record in shard_records(out) for key in record["report"]["rendered"]]
    assert sorted(finished + sorted(before)) == sorted(rendered_keys(out))
    assert len(rendered_keys(out)) == CHAOS_JOBS
    state = cluster.get(f"/flow_runs/{victim['id']}")["state_type"]
    assert state == "CRASHED", f"the killed shard run is {state}"
    wait_for(lambda: cluster.gpu_active_slots() == 0, 150 - (time.monotonic() - killed_at), "the gpu slot",
             interval=1)
    cluster.mark("slot free")


def test_sigterm_ends_a_running_flow_run_as_crashed(cluster: Cluster, tmp_path: Path):
    sheet = write_sheet(tmp_path / "term.csv", "term")
    out = tmp_path / "term-out"
    proc = cluster.start("term-run", *run_args(sheet, out), cwd=tmp_path)
    wait_for(lambda: rendered_keys(out), 180, "the first render")
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    cluster.procs.pop("term-run")
    assert len(rendered_keys(out)) < 40, "SIGTERM arrived mid-render"

    def campaign_state():
        runs = [r for r in cluster.flow_runs("campaign_batch") if r["parameters"]["out"] == str(out)]
        return runs and runs[0]["state_type"] != "RUNNING" and runs[0]["state_type"]

    assert wait_for(campaign_state, 30, "the run to leave Running") == "CRASHED"


def test_a_failing_shard_gives_its_gpu_slot_back_at_once(cluster: Cluster, tmp_path: Path):
    from tests.render.jobs import make_job

    deployment = cluster.get("/deployments/name/render_shard/render-shard")
    run = cluster.post(f"/deployments/{deployment['id']}/create_flow_run", {"parameters": {
        "out": str(tmp_path / "out"), "jobs": [make_job(1).to_dict()], "batch_size": 0}})  # fails inside the slot

    def final_state():
        state = cluster.get(f"/flow_runs/{run['id']}")["state_type"]
        return state in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"} and state

    assert wait_for(final_state, 120, "the shard run to end", interval=0.5) == "FAILED"
    assert cluster.gpu_active_slots() == 0  # released on the way out, not by a lease running out (60 s)
    assert "batch_size must be >= 1 but is 0" in cluster.log("w1") + cluster.log("w2") + cluster.log("w3")
