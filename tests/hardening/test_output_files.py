"""Files and names behave like any tool's: what brandbatch writes gets the permissions the
process umask says (every store write, the review queue, the decision log, the lock), and
every name made from an input (asset id, campaign, placement id) follows the asset-id rules."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.review.review_factories import make_jobs, results_for

from exports.placements import load_placements
from plan.errors import InputError
from plan.names import name_problem
from plan.sheet import campaign_name
from review.queue import ReviewQueue
from store import LocalStore
from store.locks import campaign_lock

UMASKS = [0o022, 0o027, 0o002, 0o077]


@pytest.fixture(params=UMASKS, ids=[f"umask{u:03o}" for u in UMASKS])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in sorted(root.rglob("*"))}


def test_every_output_file_and_folder_follows_the_umask(tmp_path: Path, umask: int,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRANDBATCH_REVIEW_DB", raising=False)
    out = tmp_path / "out"
    store = LocalStore(out)
    store.put("renders/abc.png", b"png")  # create-if-absent
    store.put("camp/manifest.json", b"[]", overwrite=True)  # replace
    store.put("camp/manifest.json", b"[1]", overwrite=True)
    queue = ReviewQueue.for_out(out)  # the queue database and its decision log
    jobs = make_jobs("tent-02")
    queue.enqueue(jobs, results_for(jobs, "pass"))
    queue.close()
    with campaign_lock(store, "camp"):
        pass
    modes = _modes(out)
    assert {"renders/abc.png", "camp/manifest.json", "review.sqlite3", "camp/.run.lock"} <= set(modes)
    assert any(name.startswith("review-log/") and name.endswith(".json") for name in modes)
    for name, mode in modes.items():
        expected = (0o777 if (out / name).is_dir() else 0o666) & ~umask
        assert mode == expected, f"{name}: {mode:o}, umask {umask:03o} says {expected:o}"


@pytest.mark.parametrize("sheet", ["CON.csv", "nul.xlsx", "com1.csv", "LPT9.csv", "aux.spring.csv", "Prn.csv"])
def test_a_campaign_named_after_a_device_gets_a_safe_folder(sheet: str) -> None:
    name = campaign_name(Path(sheet))
    assert name_problem(name) == "", name


@pytest.mark.parametrize("sheet", ["spring launch.csv", "../../etc.csv", "..csv", "ünïcode.csv", ".hidden.csv",
                                   "a" * 300 + ".csv", "tab\there.csv"])
def test_every_campaign_name_follows_the_asset_id_rules(sheet: str) -> None:
    assert name_problem(campaign_name(Path(sheet))) == ""


@pytest.mark.parametrize("pid", ["con", "nul.feed", "com3", "lpt1.square"])
def test_a_placement_id_that_is_a_device_name_is_refused(tmp_path: Path, pid: str) -> None:
    extra = tmp_path / "mine.yaml"
    extra.write_text(f"placements:\n- {{id: {pid}, platform: X, name: X, width: 100, height: 100, "
                     "max_bytes: 100000, upload_formats: [jpeg], source: mine, checked: '2026-11-01'}\n",
                     encoding="utf-8")
    with pytest.raises(InputError, match="reserved device name"):
        load_placements(extra)
