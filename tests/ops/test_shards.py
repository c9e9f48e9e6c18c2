"""render.shards: splitting jobs into shards, sharing budgets, merging reports; and the choice
between in-process and sharded rendering (flows.shard.shard_deployment)."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import pytest

from render.shards import (merge_reports, render_waves, report_from_record, report_to_record, split_budget,
                           split_shards)
from render.stage import RenderFailure, RenderReport, render_missing
from store import LocalStore
from store.keys import render_key
from tests.render.jobs import make_job


def mixed_jobs():
    """7 jobs of 64x64 and 3 of 64x96 (two resolution buckets), interleaved."""
    jobs = [make_job(i) for i in range(7)] + [make_job(100 + i, width=64, height=96) for i in range(3)]
    return [jobs[i] for i in (0, 7, 1, 2, 8, 3, 4, 9, 5, 6)]


def test_shards_hold_one_bucket_each_balanced_and_stable():
    jobs = mixed_jobs()
    shards = split_shards(jobs, max_jobs=3)
    assert [len(s.jobs) for s in shards] == [3, 2, 2, 3]  # 7 -> 3+2+2, 3 -> 3
    for shard in shards:
        assert len({j.group for j in shard.jobs}) == 1
    assert sorted(j.key for s in shards for j in s.jobs) == sorted(j.key for j in jobs)
    assert [s.jobs[0].height for s in shards] == [64, 64, 64, 96]  # buckets in order of first appearance
    again = split_shards(list(jobs), max_jobs=3)
    assert [s.id for s in again] == [s.id for s in shards]
    assert len({s.id for s in shards}) == len(shards)


def test_duplicate_jobs_are_sharded_once_and_bad_size_is_refused():
    job = make_job(1)
    shards = split_shards([job, replace(job, row=9), make_job(2)], max_jobs=10)
    assert [len(s.jobs) for s in shards] == [2]
    with pytest.raises(ValueError, match="max_jobs .* must be >= 1 but is 0"):
        split_shards([job], max_jobs=0)
    assert split_shards([], max_jobs=4) == []


def test_budget_shares_never_exceed_the_total():
    shards = split_shards(mixed_jobs(), max_jobs=3)  # 3, 2, 2, 3 jobs
    assert split_budget(None, shards, whole=True) == [None] * 4
    assert split_budget(5, shards, whole=True) == [2, 1, 1, 1]
    assert sum(split_budget(3, shards, whole=True)) == 3
    assert split_budget(10.0, shards, whole=False) == pytest.approx([3.0, 2.0, 2.0, 3.0])


def test_report_survives_json_and_merges():
    one = RenderReport(rendered=["a"], cached=["b"], failed=[RenderFailure("c", "oom", "too big")], gpu_seconds=1.5,
                       job_seconds={"a": 1.5}, damaged={"a": "renders/a.png truncated"})
    two = RenderReport(rendered=["d"], gpu_seconds=0.5, job_seconds={"d": 0.5})
    assert report_from_record(report_to_record(one)) == one
    assert set(type(report_to_record(one)).model_fields) == {f.name for f in fields(RenderReport)}, \
        "a shard must carry every field"
    merged = merge_reports([one, two])
    assert merged.rendered == ["a", "d"] and merged.cached == ["b"] and merged.failed == one.failed
    assert merged.gpu_seconds == 2.0 and merged.job_seconds == {"a": 1.5, "d": 0.5}
    assert merged.damaged == {"a": "renders/a.png truncated"}


def test_rendering_shard_by_shard_gives_the_same_pngs_as_one_call(tmp_path: Path):
    jobs = mixed_jobs()[:6]
    whole = render_missing(jobs, LocalStore(tmp_path / "whole"), batch_size=4, device="cpu")
    parts = LocalStore(tmp_path / "parts")
    merged = merge_reports([render_missing(s.jobs, parts, batch_size=2, device="cpu")
                            for s in split_shards(jobs, max_jobs=2)])
    assert sorted(merged.rendered) == sorted(whole.rendered) == sorted(j.key for j in jobs)
    for job in jobs:
        assert parts.get(render_key(job.key)) == LocalStore(tmp_path / "whole").get(render_key(job.key))


def test_shard_deployment_needs_a_server(monkeypatch: pytest.MonkeyPatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.sharding import shard_deployment

    monkeypatch.delenv("BRANDBATCH_SHARD_DEPLOYMENT", raising=False)
    assert shard_deployment() is None
    monkeypatch.setenv("BRANDBATCH_SHARD_DEPLOYMENT", "render_shard/render-shard")
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        with pytest.raises(ValueError, match="PREFECT_API_URL is not set"):
            shard_deployment()
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        assert shard_deployment() == "render_shard/render-shard"
        monkeypatch.setenv("BRANDBATCH_SHARD_DEPLOYMENT", "render-shard")
        with pytest.raises(ValueError, match="FLOW/DEPLOYMENT .* but is 'render-shard'"):
            shard_deployment()


def test_render_retries_skip_bad_arguments():
    from prefect.states import Failed

    from flows.sharding import RENDER_RETRIES

    transient = RENDER_RETRIES["retry_condition_fn"]
    assert transient(None, None, Failed(data=OSError("connection reset")))
    assert not transient(None, None, Failed(data=ValueError("batch_size must be >= 1 but is 0")))
    assert RENDER_RETRIES["retries"] == 2 and RENDER_RETRIES["retry_jitter_factor"] > 0


def test_families_render_in_waves_masters_first_and_shards_never_mix_them(tmp_path: Path):
    from tests.render.jobs import make_family

    families = [make_family(i, "sd", expand_model="brandbatch/tiny-sd-inpaint") for i in range(2)]
    jobs = [j for family in reversed(families) for j in reversed(family)]  # expansions first
    waves = render_waves(jobs)
    assert [[j.is_expansion for j in wave] for wave in waves] == [[False] * 2, [True] * 4]
    shards = split_shards(jobs, max_jobs=8)
    assert all(len({j.is_expansion for j in s.jobs}) == 1 for s in shards)
    # shard by shard in wave order (as render_sharded runs them) equals one call
    store = LocalStore(tmp_path / "waves")
    for wave in waves:
        keys = {j.key for j in wave}
        for shard in [s for s in shards if s.jobs[0].key in keys]:
            assert render_missing(list(shard.jobs), store, batch_size=2).failed == []
    whole = LocalStore(tmp_path / "whole")
    assert render_missing(jobs, whole, batch_size=4).failed == []
    assert all(store.get(render_key(j.key)) == whole.get(render_key(j.key)) for j in jobs)
    # an expansion shard run before its masters fails those jobs alone (master_missing)
    early = render_missing(list(shards[0].jobs), LocalStore(tmp_path / "early"), batch_size=2)
    assert shards[0].jobs[0].is_expansion and {f.reason for f in early.failed} == {"master_missing"}
