"""Run and campaign metrics: planning blocks from a real plan, sums and percentiles, records in
the store, and the tables in the markdown artifact and report.html."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.qa.synth import make_job

from exports.assemble import plan_settings
from plan.planner import plan_campaign
from plan.sheet import read_sheet
from qa import metrics, render_report
from qa.verdicts import QAResult
from render.deadletters import update_dead_letters
from render.stage import RenderFailure, RenderReport
from store.documents import DocumentError
from store.local import LocalStore

START = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.timezone.utc)
A, B, C = make_job("a"), make_job("b"), make_job("c")
SHEET = """asset_id,style,product,scene,variants,placements
ok-1,acme@2,tent,lake,1,meta.feed.square
banned,acme@2,miracle tent,forest,1,
bad-number,acme@2,tent,forest,two,
ok-2,acme@2,bottle,desert,1,meta.feed.square
both,acme@2,miracle tent,miracle forest,1,
"""


@pytest.fixture
def plan(repo: Path, tmp_path: Path):
    sheet = tmp_path / "spring.csv"
    sheet.write_text(SHEET, encoding="utf-8")
    settings, _ = plan_settings(str(repo / "styles"))
    return plan_campaign(read_sheet(sheet), settings)


def result(job, verdict: str) -> QAResult:
    return QAResult(job.key, verdict, ("blank",) if verdict == "fail" else (), {})


def record(seconds: dict[str, float], failed: tuple = (), wall: float = 36.0, started=START, **kw) -> metrics.RunRecord:
    report = RenderReport(rendered=list(seconds), job_seconds=dict(seconds), gpu_seconds=sum(seconds.values()),
                          failed=[RenderFailure(k, reason, "x") for k, reason in failed])
    return metrics.run_record(campaign="spring", run_id="1234abcd-0000", mode="run", started=started,
                              finished=started + dt.timedelta(seconds=wall + 100), render_seconds=wall, jobs=len(seconds) + len(failed),
                              report=report, blocks=metrics.PlanBlocks(2, 3, 2), results=kw.get("results", []),
                              export_rows=kw.get("rows", []))


def test_plan_blocks_count_rows_refused_and_banned_term_rows_from_a_real_plan(plan):
    blocks = metrics.plan_blocks(plan)
    assert (blocks.valid, blocks.blocked, blocks.banned) == (2, 3, 2)
    assert blocks.rate == pytest.approx(0.6) and blocks.banned_rate == pytest.approx(0.4)
    assert metrics.PlanBlocks(0, 0, 0).rate is None


def test_run_record_throughput_percentiles_errors_and_verdicts():
    seconds = {f"k{i}": float(i) for i in range(1, 21)}  # 1..20 s
    rec = record(seconds, failed=(("f1", "budget"), ("f2", "oom"), ("f3", "budget")),
                 results=[result(A, "pass"), result(B, "pass"), result(C, "fail")],
                 rows=[{"status": "exported"}, {"status": "failed"}])
    assert rec.images_per_hour == pytest.approx(20 / 36 * 3600)  # over the render stage, not the whole run
    assert (rec.render_seconds, rec.wall_seconds) == (36.0, 136.0)
    assert rec.gpu_seconds == pytest.approx(210.0)
    assert rec.p50 == pytest.approx(10.5) and rec.p95 == pytest.approx(19.05)
    assert rec.failed == {"budget": 2, "oom": 1} and rec.jobs == 23
    assert rec.verdicts == {"fail": 1, "review": 0, "pass": 2} and rec.export_failed == 1
    assert rec.key == "spring/runs/20261123T010000Z-1234abcd0000.json"
    assert metrics.worth_recording(rec)
    assert not metrics.worth_recording(record({}))
    assert record({}).p50 is None and record({}, wall=0).images_per_hour is None


def test_runs_round_trip_through_the_store_and_sum_into_campaign_metrics(tmp_path: Path):
    store = LocalStore(tmp_path)
    later = record({"x": 4.0}, started=START + dt.timedelta(days=1), wall=4.0)
    for rec in (later, record({"a": 1.0, "b": 3.0}, wall=36.0)):
        metrics.save_run(store, rec)
    runs = metrics.load_runs(store, "spring")
    assert [r.started for r in runs] == ["2026-11-23T01:00:00+00:00", "2026-11-24T01:00:00+00:00"]
    assert runs[1] == later
    letters = update_dead_letters([], RenderReport(failed=[RenderFailure(C.key, "oom", "m")]), [C], now=START)
    camp = metrics.campaign_metrics("spring", runs, metrics.PlanBlocks(5, 1, 0), [result(A, "review")], letters)
    assert (camp.runs, camp.images, camp.gpu_seconds) == (2, 3, pytest.approx(8.0))
    assert camp.images_per_hour == pytest.approx(3 / 40 * 3600) and camp.p50 == pytest.approx(3.0)
    assert camp.dead_letters == {"oom": 1} and camp.verdicts == {"fail": 0, "review": 1, "pass": 0}

    store.put("spring/runs/broken.json", b"{}")
    with pytest.raises(DocumentError, match=r"broken\.json: not a valid RunRecord document"):
        metrics.load_runs(store, "spring")


def test_markdown_and_report_tables_show_run_campaign_and_dead_letters(tmp_path: Path):
    rec = record({"a": 2.0, "b": 4.0}, failed=((C.key, "oom"),), results=[result(A, "pass"), result(B, "fail")])
    letters = update_dead_letters([], RenderReport(failed=[RenderFailure(C.key, "oom", "out | of memory")]), [C],
                                  now=START)
    camp = metrics.campaign_metrics("spring", [rec], rec.blocks, [result(A, "pass")], letters)
    md = metrics.metrics_markdown(rec, camp, letters)
    assert "| images / hour (render stage, wall clock) | 200 | 200 |" in md
    assert "| seconds per image p50 | 3 | 3 |" in md
    assert "| rows blocked by planning | 3 of 5 (60.0 %) | 3 of 5 (60.0 %) |" in md
    assert "| QA verdicts | fail 1, pass 1 | pass 1 |" in md
    assert "| render error codes | oom 1 | open dead letters: oom 1 |" in md
    assert "out \\| of memory" in md and "--retry-failed" in md

    tables = metrics.report_tables(camp, [rec], letters)
    assert [t.title for t in tables] == ["Campaign metrics", "Runs", "Dead letters"]
    html = render_report("spring", [A], [result(A, "pass")], LocalStore(tmp_path), [
        {"asset_id": "a", "path": "spring/exports/meta.feed.square/a b.webp", "status": "exported"},
        {"asset_id": "a", "path": "spring/exports/meta.stories/a.webp", "status": "failed"},
        {"asset_id": "a", "path": "spring/exports/meta.reels/a", "status": "rejected"}], tables=tables)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "no external URLs"
    assert '<a href="exports/meta.feed.square/a%20b.webp">' in html
    assert 'href="exports/meta.stories/a.webp"' not in html  # a failed export has no file to link
    assert '<a href="manifest.json">manifest.json</a>' in html and "1 exports failed" in html
    assert "<h2>Campaign metrics</h2>" in html and "<td>200</td>" in html
    assert "2026-11-23T01:00:00Z" in html and "out | of memory" in html and C.key[:12] in html


def test_report_and_artifact_list_the_newest_runs_but_totals_use_all():
    runs = [record({"k": 1.0}, started=START + dt.timedelta(hours=i)) for i in range(metrics.RUNS_SHOWN + 2)]
    camp = metrics.campaign_metrics("spring", runs, runs[0].blocks, [], [])
    rows = metrics.run_rows(runs)
    assert len(rows) == metrics.RUNS_SHOWN and rows[0]["started (UTC)"] == runs[-1].started.replace("+00:00", "Z")
    assert camp.images == metrics.RUNS_SHOWN + 2
    assert metrics.report_tables(camp, runs, [])[1].title == f"Runs (newest 30 of {metrics.RUNS_SHOWN + 2})"


def test_empty_history_and_no_dead_letters_say_so(tmp_path: Path):
    camp = metrics.campaign_metrics("spring", [], metrics.PlanBlocks(1, 0, 0), [], [])
    html = render_report("spring", [], [], LocalStore(tmp_path), [], tables=metrics.report_tables(camp, [], []))
    assert "No run has rendered anything yet." in html and "None: every planned job" in html


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=60), st.integers(1, 99))
def test_percentiles_interpolate_between_the_closest_ranks_as_numpy_does(values, q):
    import numpy as np

    from qa.metrics import percentile

    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12, abs=1e-9)
