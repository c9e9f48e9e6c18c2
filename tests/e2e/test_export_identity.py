"""An export's identity is everything that shaped it: a campaign run again after one change to
its configuration (sheet copy, a logo file, a style's overlay colours, a placement's size or
byte cap) rewrites exactly the export files that the change shapes, and leaves every other
file's bytes and mtime alone; the manifest's rows match the files."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from PIL import Image

from flows.campaign import campaign_batch

SQUARE, RECT = "meta.feed.square", "google.display.upload.300x250"
FORMATS = ["webp", "upload"]
ROWS = {  # asset id -> sheet cells
    "pack-01": {"style": "idone@1", "product": "an orange backpack", "scene": "a mountain trail",
                "headline": "Go further", "cta": "Shop now", "logo": "logo-a.png"},
    "tent-02": {"style": "idtwo@1", "product": "a green tent", "scene": "a lakeside meadow",
                "headline": "Sleep outside", "cta": "Explore", "logo": "logo-b.png"},
}


class Project:
    """A campaign folder: sheet, logos, two draft styles and a placements file, run in-process."""

    def __init__(self, root: Path, repo: Path) -> None:
        self.root, self.out = root, root / "out"
        self.styles = root / "styles"
        shutil.copytree(repo / "styles", self.styles)
        base = yaml.safe_load((repo / "styles" / "acme" / "v2.yaml").read_text(encoding="utf-8"))
        for name, colour in (("idone", "#E4572E"), ("idtwo", "#29335C")):
            style = base | {"name": name, "version": 1, "status": "draft", "steps": 2, "aspect_ratios": ["1:1"],
                            "qa": {**base["qa"], "review_sample_rate": 0.0}, "overlay": {"cta_colour": colour}}
            (self.styles / name).mkdir()
            self.write_style(name, style)
        for name, colour in (("logo-a.png", "navy"), ("logo-b.png", "gold")):
            self.write_logo(name, colour)
        self.rows = {asset: dict(cells) for asset, cells in ROWS.items()}
        self.placements = {SQUARE: {"id": SQUARE, "width": 320, "height": 320, "min_width": None,
                                    "min_height": None}}
        self.write_sheet()
        self.write_placements()

    def write_style(self, name: str, style: dict) -> None:
        (self.styles / name / "v1.yaml").write_text(yaml.safe_dump(style), encoding="utf-8")

    def style(self, name: str) -> dict:
        return yaml.safe_load((self.styles / name / "v1.yaml").read_text(encoding="utf-8"))

    def write_logo(self, name: str, colour: str) -> None:
        image = Image.new("RGBA", (64, 32), colour)
        image.paste((255, 255, 255, 255), (8, 8, 24, 24))
        image.save(self.root / name, "PNG")

    def write_sheet(self) -> None:
        columns = ["asset_id", "style", "product", "scene", "headline", "cta", "logo", "placements"]
        lines = [",".join(columns)] + [",".join([asset, *(cells[c] for c in columns[1:-1]), f"{SQUARE};{RECT}"])
                                       for asset, cells in self.rows.items()]
        (self.root / "identity.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def write_placements(self) -> None:
        (self.root / "placements.yaml").write_text(yaml.safe_dump({"placements": list(self.placements.values())}),
                                                   encoding="utf-8")

    def run(self):
        return campaign_batch(sheet=str(self.root / "identity.csv"), out=str(self.out), styles=str(self.styles),
                              allow_draft=True, formats=FORMATS)

    def files(self) -> dict[str, tuple[str, int]]:
        """Every export file: (sha256, mtime in ns)."""
        exports = self.out / "identity" / "exports"
        return {p.relative_to(self.out).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
                for p in sorted(exports.rglob("*")) if p.is_file()}

    def manifest(self) -> list[dict]:
        return json.loads((self.out / "identity" / "manifest.json").read_text(encoding="utf-8"))


def _assert_manifest_matches_files(project: Project) -> None:
    rows = project.manifest()
    assert sorted(r["path"] for r in rows) == sorted(project.files()), "one row per file, one file per row"
    for row in rows:
        assert row["status"] == "exported", row
        data = (project.out / row["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"] and len(data) == row["bytes"]
        with Image.open(io.BytesIO(data)) as image:
            xmp = json.dumps(image.getxmp())
        assert row["export_fingerprint"] and row["export_fingerprint"] in xmp, row["path"]
        cap = project.placements.get(row["placement"], {}).get("max_bytes")
        assert cap is None or row["bytes"] <= cap


def _paths(asset: str | None = None, placement: str | None = None) -> set[str]:
    """The export files of one asset and/or placement (webp + the placements' JPEG upload)."""
    return {f"identity/exports/{p}/{a}.{ext}" for a in ROWS for p in (SQUARE, RECT) for ext in ("webp", "jpg")
            if asset in (None, a) and placement in (None, p)}


def _change_cap(project: Project) -> None:
    """Lower the rectangle's cap under its smallest file, so every one of them must shrink."""
    smallest = min(r["bytes"] for r in project.manifest() if r["placement"] == RECT)
    project.placements[RECT] = {"id": RECT, "max_bytes": max(1024, int(smallest * 0.9))}
    project.write_placements()


def _change_colours(project: Project) -> None:
    style = project.style("idtwo")
    style["overlay"] = {"cta_colour": "#00A0FF", "light_colour": "#FFFFF0"}
    project.write_style("idtwo", style)


CHANGES: list[tuple[str, Callable[[Project], None], set[str], str]] = [
    ("headline", lambda p: (p.rows["pack-01"].update(headline="Go higher"), p.write_sheet()),
     _paths("pack-01"), "copy changed"),
    ("cta", lambda p: (p.rows["tent-02"].update(cta="Camp now"), p.write_sheet()), _paths("tent-02"), "copy changed"),
    ("logo file", lambda p: p.write_logo("logo-a.png", "crimson"), _paths("pack-01"), "logo changed"),
    ("overlay colours", _change_colours, _paths("tent-02"), "overlay style changed"),
    ("placement size", lambda p: (p.placements[SQUARE].update(width=288, height=288), p.write_placements()),
     _paths(placement=SQUARE), "size changed"),
    ("placement cap", _change_cap, _paths(placement=RECT), "cap changed"),
]


@pytest.mark.slow
def test_each_change_rewrites_exactly_the_files_it_shapes(project: Project):
    first = project.run()
    assert first.exported == len(_paths()) and first.rewritten == {"new file": len(_paths())}, first
    _assert_manifest_matches_files(project)
    before = project.files()
    again = project.run()
    assert again.rendered == 0 and again.rewritten == {} and project.files() == before

    for what, change, affected, reason in CHANGES:
        change(project)
        summary = project.run()
        after = project.files()
        assert summary.rendered == 0 and not summary.failed, (what, summary)
        assert set(after) == set(before), what
        changed = {path for path in after if after[path][0] != before[path][0]}
        assert changed == affected, what
        kept = set(after) - affected
        assert {p: after[p] for p in kept} == {p: before[p] for p in kept}, f"{what}: bytes and mtime kept"
        assert summary.rewritten == {reason: len(affected)}, (what, summary.rewritten)
        _assert_manifest_matches_files(project)
        before = after
