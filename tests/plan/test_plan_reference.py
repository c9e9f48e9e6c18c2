"""Planning a generated sheet gives exactly the job keys and problems the planner gave before it
was made faster (tests/plan/data/plan_reference.json, computed by the earlier implementation).

The sheet mixes valid rows of every style with the faults sheets have: unknown, draft and
deprecated styles, banned terms (plain and disguised), over-long prompts, bad variants,
unknown placements, duplicate and hostile asset ids, empty cells. Regenerate the reference only
when a change is meant to change plans (e.g. a new job field): ``BRANDBATCH_WRITE_PLAN_REFERENCE=1
pytest tests/plan/test_plan_reference.py -k earlier``, and say so in the commit. The styles are a
frozen copy (tests/plan/data/styles), so styles added to the library change nothing here.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import random
from pathlib import Path

from plan.planner import plan_campaign
from plan.sheet import read_sheet

REFERENCE = Path(__file__).parent / "data" / "plan_reference.json"
STYLES = Path(__file__).parent / "data" / "styles"  # a frozen copy: new styles in styles/ change no reference
FIELDS = ["asset_id", "style", "product", "scene", "mood", "headline", "cta", "variants", "placements", "alt_text"]
REFS = ["acme@2", "acme@4", "acme@5", "nordic@1", "acme@1", "acme@3", "acme@9", "acme", "nope@1", ""]
PRODUCTS = ["hiking backpack", "camping tent", "water bottle", "rain jacket", "miracle cure jacket", "g\u200bun case",
            "Ünïcödé café thermos 日本語", "trail " + "very long words " * 40, "", "celebrity boots"]
SCENES = ["a mountain trail at sunrise", "a lakeside meadow", "", "a misty pine forest", "naïve “quotes” 🎒🏔️"]
PLACEMENTS = ["meta.feed.square;meta.stories", "meta.feed.square", "google.display.upload.300x250",
              "linkedin.single_image.landscape;meta.feed.portrait", "meta.feed.sqaure", "", "meta.stories|meta.stories"]
VARIANTS = ["1", "2", "3", "", "0", "x", "9", " 2 "]
IDS = ["sku-{i:05d}", "sku-{i:05d}", "sku-{i:05d}", "dup-{j}", "../evil-{i}", "sku {i}", "", "SKU-{i:05d}"]


def write_sheet(path: Path, rows: int, seed: int = 19) -> Path:
    """Each cell is its list's first (valid) value 9 times in 10, else any value of the list."""
    rng = random.Random(seed)

    def pick(values: list[str]) -> str:
        return values[0] if rng.random() < 0.9 else rng.choice(values)

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for i in range(rows):
            writer.writerow({
                "asset_id": pick(IDS).format(i=i, j=i % 7), "style": rng.choice(REFS[:4]) if rng.random() < 0.9
                else rng.choice(REFS), "product": f"an orange {pick(PRODUCTS)} model {i}", "scene": pick(SCENES),
                "mood": rng.choice(["", "calm", "bold"]), "headline": pick(["Go further", "", "Cure-all deal"]),
                "cta": pick(["Shop now", ""]), "variants": pick(VARIANTS), "placements": pick(PLACEMENTS),
                "alt_text": rng.choice(["", f"Product shot {i}"]),
            })
    return path


def plan_outcome(sheet: Path, settings, workers: int | None = None) -> dict:
    plan = plan_campaign(read_sheet(sheet), dataclasses.replace(settings, styles_dir=STYLES), workers=workers)
    keys = [job.key for job in plan.jobs]
    return {"rows": len(plan.rows), "jobs": len(keys),
            "keys_sha256": hashlib.sha256("\n".join(keys).encode()).hexdigest(),
            "problems": [str(p).replace(str(sheet), "SHEET") for p in plan.problems]}


def test_planning_gives_the_keys_and_problems_of_the_earlier_implementation(tmp_path: Path, settings):
    outcome = plan_outcome(write_sheet(tmp_path / "reference.csv", 600), settings)
    if os.environ.get("BRANDBATCH_WRITE_PLAN_REFERENCE") == "1":
        REFERENCE.write_text(json.dumps(outcome, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    expected = json.loads(REFERENCE.read_text(encoding="utf-8"))
    assert outcome["rows"] > 200 and len(outcome["problems"]) > 100  # the sheet exercises both sides
    assert outcome == expected


def test_planning_over_worker_processes_gives_the_same_plan(tmp_path: Path, settings, monkeypatch):
    import plan.planner

    monkeypatch.setattr(plan.planner, "CHUNK_ROWS", 100)  # 6 chunks: this process plans some, 2 workers the rest
    sheet = write_sheet(tmp_path / "reference.csv", 600)
    outcome = plan_outcome(sheet, settings, workers=3)
    assert outcome == json.loads(REFERENCE.read_text(encoding="utf-8"))
    limited = plan_campaign(read_sheet(sheet), settings, limit=50, workers=3)
    assert [job.key for job in limited.jobs] == [job.key for job in plan_campaign(read_sheet(sheet), settings,
                                                                                   limit=50, workers=1).jobs]
