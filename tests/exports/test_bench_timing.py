"""bench/export_placements.py's timing: the CPU-time figures are CPU time, not wall time, so the
overhead ratio it prints holds on a loaded machine."""

from __future__ import annotations

import time

from bench.export_placements import interleaved_best


def test_cpu_time_counts_work_and_not_waiting():
    def spin(_: None) -> None:
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass

    wall, cpu = interleaved_best(2, {"sleep": (lambda: None, lambda _: time.sleep(0.05)), "spin": (lambda: None, spin)})
    assert wall["sleep"] >= 0.05 and cpu["sleep"] < 0.01  # waiting takes wall time and no CPU
    assert cpu["spin"] >= 0.05 and wall["spin"] >= cpu["spin"] * 0.99


def test_setup_is_not_timed():
    wall, cpu = interleaved_best(1, {"run": (lambda: time.sleep(0.1), lambda _: None)})
    assert wall["run"] < 0.05 and cpu["run"] < 0.05


def test_bare_loop_on_two_processes_writes_what_the_one_process_loop_writes(tmp_path):
    """The machine's 2-core ceiling line runs the very same work: every file, same bytes."""
    import dataclasses

    from bench.export_placements import bare_loop, bare_processes, make_items
    from exports.placements import load_placements
    from store.local import LocalStore

    placements = load_placements()
    small = ("google.display.upload.320x50", "google.display.upload.728x90", "google.display.upload.300x250")
    items = [dataclasses.replace(item, placements=small) for item in make_items(LocalStore(tmp_path / "r"), 2)]
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    bare_loop(items, LocalStore(tmp_path / "r"), placements, one)
    bare_processes(items, LocalStore(tmp_path / "r"), placements, two, None, 2)()
    files = sorted(p.name for p in one.iterdir())
    assert len(files) == 2 * 3 * 3 and files == sorted(p.name for p in two.iterdir())
    assert all((one / name).read_bytes() == (two / name).read_bytes() for name in files)


def test_bare_loop_with_overlays_encodes_the_pixels_brandbatch_encodes(tmp_path):
    """The bare loop's overlay run draws what brandbatch draws: the same WebP pixels for a square
    placement (same render, no crop, same overlays and encoder settings), unlike the plain loop's."""
    import dataclasses
    import io

    import numpy as np
    from PIL import Image

    from bench.export_placements import RUN_FORMATS, bare_loop, make_items
    from exports.placements import load_placements
    from exports.stage import export_assets
    from store.local import LocalStore

    placements = load_placements()
    renders = LocalStore(tmp_path / "r")
    item = dataclasses.replace(make_items(renders, 1)[0], placements=("meta.feed.square",))
    rows = export_assets([item], renders, placements, formats=RUN_FORMATS, workers=1)
    ours = next(r for r in rows if r["format"] == "webp")
    assert ours["status"] == "exported"
    pixels = {}
    for overlays in (False, True):
        out = tmp_path / f"bare-{overlays}"
        out.mkdir()
        bare_loop([item], renders, placements, out, overlays=overlays)
        pixels[overlays] = np.asarray(Image.open(out / f"{item.asset_id}-meta.feed.square.webp").convert("RGB"))
    exported = np.asarray(Image.open(io.BytesIO(renders.get(ours["path"]))).convert("RGB"))
    assert np.array_equal(pixels[True], exported)
    assert not np.array_equal(pixels[False], exported)
