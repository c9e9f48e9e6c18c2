"""Commands run their flow without Prefect's temporary server when none is configured, keep
Prefect's log records in a file under the output folder, and show progress without a terminal."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.progress import LINE_SECONDS, progress_bar
from flows.runtime import call_retried, command_log, prefect_server, run_flow
from store import open_store
from store.keys import logs_prefix


def test_the_server_comes_from_the_environment_else_the_active_profile(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    monkeypatch.delenv("PREFECT_PROFILES_PATH", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    assert prefect_server() is None  # no profiles file: Prefect would start a temporary server
    (tmp_path / "profiles.toml").write_text('active = "ephemeral"\n[profiles.ephemeral]\n'
                                            'PREFECT_SERVER_ALLOW_EPHEMERAL_MODE = "true"\n'
                                            '[profiles.team]\nPREFECT_API_URL = "http://prefect.internal:4200/api"\n')
    assert prefect_server() is None
    monkeypatch.setenv("PREFECT_PROFILE", "team")
    assert prefect_server() == "http://prefect.internal:4200/api"
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert prefect_server() == "http://127.0.0.1:4200/api"
    monkeypatch.setenv("PREFECT_API_URL", "")
    assert prefect_server() is None


RUN_WITHOUT_SERVER = """
import json, sys
from flows.runtime import in_flow_run, new_run_id, run_flow, run_logger, step

@step(retries=2)
def double(x):
    return {"value": 2 * x, "in_run": in_flow_run()}

def pipeline(x: int):
    run_logger().info("planned %s", x)
    return double(x)

result = run_flow("flows.campaign:campaign_batch", pipeline, x=21)  # the flow's module is imported with a server only
ids = {new_run_id(), new_run_id()}  # runs without a server get ids of their own (their run records)
print(json.dumps({**result, "prefect": "prefect" in sys.modules, "ids": len(ids)}))
"""


def _run_script(script: str, tmp_path: Path, repo: Path) -> tuple[dict, str]:
    """``script`` run in a fresh Python without PREFECT_API_URL: the JSON of its last line, and its stderr."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PYTHONPATH=str(repo))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=repo,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


def test_a_flow_runs_in_this_process_without_a_server_or_prefect_when_none_is_configured(tmp_path: Path, repo: Path):
    result, stderr = _run_script(RUN_WITHOUT_SERVER, tmp_path, repo)
    assert result == {"value": 42, "in_run": False, "prefect": False, "ids": 2}
    assert "temporary server" not in stderr


def test_the_command_line_and_the_campaign_flows_body_do_not_import_prefect(repo: Path):
    """Importing Prefect costs a command ~1.7 s of CPU: only flow runs recorded by a server pay it."""
    done = subprocess.run([sys.executable, "-c", "import sys, flows.cli, flows.batch; print('prefect' in sys.modules)"],
                          capture_output=True, text=True, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]


def test_with_a_server_the_flow_runs_as_the_prefect_flow_of_the_same_function(monkeypatch):
    import flows.batch
    import flows.campaign

    assert flows.campaign.campaign_batch.fn is flows.batch.campaign_batch
    assert flows.campaign.campaign_batch.name == "campaign_batch"
    def pipeline(**_parameters) -> None:  # not the campaign flow's function
        raise AssertionError("called")

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # nothing listens: nothing may be called
    with pytest.raises(TypeError, match="flows.campaign:campaign_batch is not the Prefect flow of .*pipeline"):
        run_flow("flows.campaign:campaign_batch", pipeline)


RUN_IN_A_FLOW_RUN = """
import json
from prefect import flow
from prefect.context import TaskRunContext
from flows.runtime import in_flow_run, step

@step(retries=1, retry_delay_seconds=[0])
def double(x):
    task_run = TaskRunContext.get()
    return {"value": 2 * x, "in_run": in_flow_run(), "task": task_run.task.name if task_run else None,
            "retries": task_run.task.retries if task_run else None}

@flow
def pipeline(x: int):
    return double(x)

print(json.dumps(pipeline(x=21)))
"""


def test_a_step_in_a_flow_run_is_a_prefect_task_run(tmp_path: Path, repo: Path):
    """The task is made only in a flow run, and there the step is recorded as a task run, with its options."""
    result, _ = _run_script(RUN_IN_A_FLOW_RUN, tmp_path, repo)
    assert result == {"value": 42, "in_run": True, "task": "double", "retries": 1}


class Flaky:
    """A task-like object: fails ``failures`` times with ``error``, then answers."""

    def __init__(self, failures: int, error: Exception, retries: int = 2) -> None:
        self.failures, self.error, self.calls = failures, error, 0
        self.retries, self.retry_delay_seconds, self.name = retries, [10, 20], "flaky"
        from flows.sharding import _transient

        self.retry_condition_fn = _transient

    def fn(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


def test_a_step_outside_a_flow_run_retries_as_its_task_would():
    slept: list[float] = []
    flaky = Flaky(2, OSError("store unreachable"))
    assert call_retried(flaky, (), {}, sleep=slept.append) == "done"
    assert flaky.calls == 3 and slept == [10, 20]
    hopeless = Flaky(5, OSError("store unreachable"))
    with pytest.raises(OSError):
        call_retried(hopeless, (), {}, sleep=slept.append)
    assert hopeless.calls == 3
    bad_argument = Flaky(1, ValueError("bad job"))  # not transient: no retry
    with pytest.raises(ValueError):
        call_retried(bad_argument, (), {}, sleep=slept.append)
    assert bad_argument.calls == 1


def test_log_records_go_to_a_file_under_the_output_folder_and_to_stderr_only_when_verbose(tmp_path: Path, capsys):
    out = str(tmp_path / "out")
    with command_log(out, "camp", "run", verbose=False) as where:
        logging.getLogger("brandbatch").warning("render 1234 failed (oom)")
        logging.getLogger("prefect.flow_runs").warning("Beginning flow run")  # tests log prefect at WARNING
    assert "render 1234" not in capsys.readouterr().err
    (key,) = open_store(out).list(logs_prefix("camp"))
    assert where == open_store(out).location(key) and key.startswith("camp/logs/run-")
    text = Path(where).read_text(encoding="utf-8")
    assert "render 1234 failed (oom)" in text and "Beginning flow run" in text
    with command_log(out, "camp", "export", verbose=True):
        logging.getLogger("brandbatch").warning("held for review")
    assert "held for review" in capsys.readouterr().err
    assert len(open_store(out).list(logs_prefix("camp"))) == 2
    with command_log(out, "camp", "export", verbose=False):
        pass  # nothing logged: no file (a rerun with nothing to do changes nothing in the output folder)
    assert len(open_store(out).list(logs_prefix("camp"))) == 2


def test_the_log_is_stored_also_when_the_command_fails(tmp_path: Path):
    out = str(tmp_path / "out")
    with pytest.raises(RuntimeError), command_log(out, "camp", "run", verbose=False):
        logging.getLogger("brandbatch").error("about to fail")
        raise RuntimeError("boom")
    (key,) = open_store(out).list(logs_prefix("camp"))
    assert "about to fail" in open_store(out).get(key).decode()


class NotATerminal(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_progress_without_a_terminal_is_a_line_every_few_seconds_and_at_the_end():
    stream, now = NotATerminal(), [0.0]
    with progress_bar("rendering", 5, enabled=True, stream=stream, clock=lambda: now[0]) as advance:
        for _ in range(5):
            now[0] += LINE_SECONDS / 2 + 0.1
            advance("key")
    assert stream.getvalue().splitlines() == ["rendering: 2 of 5 (40%), 10 s", "rendering: 4 of 5 (80%), 20 s",
                                              "rendering: 5 of 5 (100%), 26 s"]
    quiet = NotATerminal()
    with progress_bar("rendering", 5, enabled=False, stream=quiet) as advance:
        advance("key")
    assert quiet.getvalue() == ""


def test_progress_counts_work_finished_without_a_result_apart():
    stream, now = NotATerminal(), [0.0]
    with progress_bar("rendering", 5, enabled=True, stream=stream, clock=lambda: now[0]) as advance:
        advance("rendered")
        for _ in range(4):  # e.g. left by the budget
            advance("budget", False)
    assert stream.getvalue().splitlines() == ["rendering: 5 of 5 (100%), 0 s, 4 not done"]


def test_progress_says_the_end_once():
    stream, now = NotATerminal(), [0.0]
    with progress_bar("rendering", 1, enabled=True, stream=stream, clock=lambda: now[0]) as advance:
        now[0] += 2 * LINE_SECONDS  # one slow job: its line is due when it finishes, which is the end
        advance("key")
    assert stream.getvalue().splitlines() == ["rendering: 1 of 1 (100%), 20 s"]
