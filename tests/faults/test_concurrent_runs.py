"""Two runs of the same campaign at once, on the same store (local folder, and S3 on
SeaweedFS): each render and export file is written exactly once, and what is left is whole."""

from __future__ import annotations

import io
import json
import multiprocessing
from pathlib import Path

import pytest
from PIL import Image
from tests.render.jobs import make_job

from exports.placements import load_placements
from exports.stage import ExportItem, export_assets, write_manifests
from plan.jobs import RenderJob
from render.stage import render_missing, stored_render_problem
from store import open_store
from store.keys import render_key

PLACEMENTS = ("google.display.upload.300x250", "google.display.upload.320x50")
FORMATS = ("webp", "jpeg")


class WriteLog:
    """The ``Store`` given, noting each put's key and answer (True: this call wrote it)."""

    def __init__(self, inner) -> None:
        self.inner, self.root, self.puts = inner, inner.root, []

    def put(self, key: str, data: bytes, **options) -> bool:
        written = self.inner.put(key, data, **options)
        self.puts.append((key, written))
        return written

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def _jobs() -> list[RenderJob]:
    return [make_job(i, width=32, height=32, steps=2) for i in range(16)]


def _items(jobs: list[RenderJob]) -> list[ExportItem]:
    return [ExportItem(campaign="camp", asset_id=f"a{i}", row=i + 2, variant=1, placements=PLACEMENTS,
                       renders={"1:1": job}, qa_verdict="pass", approval_id=f"x{i}", approved_by="qa-auto",
                       alt_text="", headline="Go", cta="Buy") for i, job in enumerate(jobs[:3])]


def both_runs(outs: list[str], barrier, results) -> None:
    """A whole render + export + manifest pass on each store in ``outs``, each started together
    with the other process's."""
    jobs = _jobs()
    render_missing([make_job(99, width=32, height=32, steps=2)], open_store(outs[0] + "-warmup"))  # load the model
    for out in outs:
        store = WriteLog(open_store(out))
        barrier.wait(timeout=120)
        report = render_missing(jobs, store, batch_size=2)
        items = _items(jobs)
        rows = export_assets(items, store, load_placements(), formats=FORMATS, workers=1)
        write_manifests(store, "camp", rows, approved={(item.asset_id, 1) for item in items})
        results.put((out, {"rendered": report.rendered, "failed": [f.message for f in report.failed],
                           "puts": store.puts}))


def test_two_runs_at_once_write_every_output_once(tmp_path: Path, request: pytest.FixtureRequest):
    outs = [str(tmp_path / "out")]
    try:
        outs.append(request.getfixturevalue("s3_out"))  # the same, on S3 (put IfNoneMatch='*')
    except pytest.skip.Exception as skipped:
        print(f"S3 part skipped: {skipped}")
    context = multiprocessing.get_context("spawn")  # two processes, as two `brandbatch run`s would be
    barrier, results = context.Barrier(2), context.Queue()
    runs = [context.Process(target=both_runs, args=(outs, barrier, results)) for _ in range(2)]
    for run in runs:
        run.start()
    answers: dict[str, list[dict]] = {out: [] for out in outs}
    for _ in range(2 * len(outs)):
        out, answer = results.get(timeout=300)
        answers[out].append(answer)
    for run in runs:
        run.join(timeout=60)
        assert run.exitcode == 0
    for out in outs:
        check_written_once(out, answers[out])


def check_written_once(out: str, answers: list[dict]) -> None:
    jobs, store = _jobs(), open_store(out)
    assert [a["failed"] for a in answers] == [[], []]
    rendered = [set(a["rendered"]) for a in answers]
    assert not rendered[0] & rendered[1] and rendered[0] | rendered[1] == {job.key for job in jobs}
    outputs = [{k for k, ok in a["puts"] if ok and (k.startswith(("renders/", "camp/exports/")) and
                                                     not k.endswith(".json"))} for a in answers]
    lost = [{k for k, ok in a["puts"] if not ok} for a in answers]
    assert lost[0] | lost[1], f"{out}: the runs did not race for any key (nothing was tested)"
    assert not outputs[0] & outputs[1], f"{out}: written by both runs: {sorted(outputs[0] & outputs[1])}"
    exports = {f"camp/exports/{p}/a{i}.{ext}" for i in range(3) for p in PLACEMENTS for ext in ("webp", "jpg")}
    assert outputs[0] | outputs[1] == {render_key(job.key) for job in jobs} | exports

    assert all(stored_render_problem(store, job) == "" for job in jobs)
    manifest = json.loads(store.get("camp/manifest.json"))
    assert sorted(row["path"] for row in manifest) == sorted(exports)
    for row in manifest:
        data = store.get(row["path"])
        assert row["status"] == "exported" and row["bytes"] == len(data)
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            assert image.size == (row["width"], row["height"])


def test_concurrent_puts_of_one_new_key_write_it_once(tmp_path: Path, request: pytest.FixtureRequest):
    """The store primitive under the above: of writers racing for one new key, exactly one wins."""
    import threading

    outs = [str(tmp_path / "race")]
    try:
        outs.append(request.getfixturevalue("s3_out"))
    except pytest.skip.Exception as skipped:
        print(f"S3 part skipped: {skipped}")
    for out in outs:
        store = open_store(out)
        for round_ in range(5):
            key, start, answers = f"renders/race-{round_}.png", threading.Barrier(8), []

            def put(i: int) -> None:
                start.wait()
                answers.append((i, store.put(key, f"writer {i}".encode())))

            writers = [threading.Thread(target=put, args=(i,)) for i in range(8)]
            for writer in writers:
                writer.start()
            for writer in writers:
                writer.join()
            winners = [i for i, won in answers if won]
            assert len(answers) == 8 and len(winners) == 1, (out, answers)
            assert store.get(key) == f"writer {winners[0]}".encode()
