"""Test-wide settings: no outside calls, a private Prefect home, fixed threads, offline models."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# Set before anything imports Prefect or torch.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="brandbatch-tests-"))
# Removed when the test process ends, after Prefect's and the servers' own exit handlers (registered
# later, run earlier): its tiny models, caches and Prefect home are ~130 MB per run.
_SESSION_PID = os.getpid()


@atexit.register
def _remove_session_dir() -> None:
    if os.getpid() == _SESSION_PID:  # not in a forked child that exits through Python
        shutil.rmtree(_SESSION_DIR, ignore_errors=True)


os.environ.update({
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_HOME": str(_SESSION_DIR / "prefect"),
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
})
os.environ.setdefault("BRANDBATCH_MODEL_CACHE", str(_SESSION_DIR / "models"))
os.environ["BRANDBATCH_CACHE"] = str(_SESSION_DIR / "cache")  # the development C2PA credential
for _name in ("CERTS", "KEY", "SIGN_COMMAND", "ALG", "TSA_URL"):  # tests that sign with their own set them
    os.environ.pop(f"BRANDBATCH_C2PA_{_name}", None)

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def prefect_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh PREFECT_HOME for subprocesses a test starts (the CLI, servers, workers)."""
    home = tmp_path / "prefect-home"
    monkeypatch.setenv("PREFECT_HOME", str(home))
    return home
