"""Uploaded images (logo, product_image, product_mask): hostile files refused per row and column,
blocked marks refused with the mark named, packshot rules, and image bytes in the job key."""

from __future__ import annotations

import importlib.util
import io
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from plan.planner import PlanSettings, plan_campaign
from plan.sheet import read_sheet
from plan.uploads import BLOCKED_MARK_DISTANCE, blocked_mark_match, blocked_marks

HEADER = "asset_id,style,product,scene,placements,logo,product_image,product_mask\n"


@pytest.fixture
def styles(tmp_path: Path, repo: Path) -> Path:
    folder = tmp_path / "styles"
    shutil.copytree(repo / "styles", folder)
    return folder


@pytest.fixture
def plan_settings(settings: PlanSettings, styles: Path) -> PlanSettings:
    return PlanSettings(styles_dir=styles, templates_dir=settings.templates_dir, placements=settings.placements,
                        today=settings.today)


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def packshot(colour=(228, 87, 46), size=(60, 120)) -> Image.Image:
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(image).rounded_rectangle((8, 8, size[0] - 8, size[1] - 8), radius=10, fill=(*colour, 255))
    return image


def mark() -> Image.Image:
    """A competitor's mark: a bold shape with structure (phash sees its layout)."""
    image = Image.new("RGB", (200, 200), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((20, 20, 180, 180), fill=(200, 20, 20))
    draw.polygon([(100, 40), (160, 150), (40, 150)], fill="white")
    draw.rectangle((90, 150, 110, 190), fill=(20, 20, 20))
    return image


def plan(sheet: Path, settings: PlanSettings):
    return plan_campaign(read_sheet(sheet), settings)


def problems_by_row(result) -> dict[int, list]:
    out: dict[int, list] = {}
    for problem in result.problems:
        out.setdefault(problem.row, []).append(problem)
    return out


def test_example_packshot_is_the_generators_output(repo: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_packshots", repo / "campaigns" / "packshots" / "make_packshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = Image.open(repo / "campaigns" / "packshots" / "acme-bottle.png")
    assert committed.mode == "RGBA"
    assert np.array_equal(np.asarray(committed), np.asarray(module.acme_bottle()))
    low, high = committed.getchannel("A").getextrema()
    assert (low, high) == (0, 255)


def test_a_packshot_row_plans_with_its_bytes_hash_in_the_job_key(tmp_path: Path, plan_settings: PlanSettings) -> None:
    (tmp_path / "bottle.png").write_bytes(png(packshot()))
    sheet = tmp_path / "c.csv"
    sheet.write_text(HEADER + "b1,acme@6,a bottle,a lake,meta.feed.square;meta.stories,,bottle.png,\n"
                     + "b2,acme@5,a tent,a lake,meta.feed.square,,,\n", encoding="utf-8")
    result = plan(sheet, plan_settings)
    assert result.problems == []
    b1 = [j for j in result.jobs if j.row_key == "b1"]
    import hashlib
    digest = hashlib.sha256((tmp_path / "bottle.png").read_bytes()).hexdigest()
    assert all(j.input_images == (("product_image", digest),) for j in b1)
    master = next(j for j in b1 if not j.is_expansion)
    assert master.product == (0.5, 0.56, 0.62, True) and master.model_id == "brandbatch/tiny-sd-inpaint"
    assert all(j.product is None for j in b1 if j.is_expansion)  # the master carries it
    assert all(j.input_images is None and j.product is None for j in result.jobs if j.row_key == "b2")


def test_changing_one_packshot_changes_exactly_the_jobs_that_use_it(tmp_path: Path, plan_settings: PlanSettings) -> None:
    (tmp_path / "a.png").write_bytes(png(packshot()))
    (tmp_path / "b.png").write_bytes(png(packshot((41, 51, 92))))
    sheet = tmp_path / "c.csv"
    sheet.write_text(HEADER + "r1,acme@6,a bottle,a lake,meta.feed.square;meta.stories,,a.png,\n"
                     + "r2,acme@6,a flask,a lake,meta.feed.square;meta.stories,,b.png,\n"
                     + "r3,acme@5,a tent,a lake,meta.feed.square,,,\n", encoding="utf-8")
    before = {j.key: j.row_key for j in plan(sheet, plan_settings).jobs}
    (tmp_path / "a.png").write_bytes(png(packshot((243, 167, 18))))
    after = {j.key: j.row_key for j in plan(sheet, plan_settings).jobs}
    assert sorted(before[k] for k in before.keys() - after.keys()) == ["r1", "r1"]
    assert sorted(after[k] for k in after.keys() - before.keys()) == ["r1", "r1"]


def hostile_files(folder: Path, outside: Path) -> dict[str, str]:
    """file name (as a sheet names it) -> what the problem message says."""
    good = png(packshot())
    (folder / "not-an-image.png").write_bytes(b"hello, this is text")
    buf = io.BytesIO()
    packshot().save(buf, format="GIF")
    (folder / "gif-inside.png").write_bytes(buf.getvalue())  # a GIF named .png: not an allowed format
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    # PNGs whose header claims 9000 x 9000 (over the cap) and 30000 x 30000 pixels (a decompression
    # bomb): refused before decoding
    for name, side in (("huge.png", 9000), ("bomb.png", 30000)):
        ihdr = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)
        header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
        (folder / name).write_bytes(header + good[33:])
    (outside / "secret.png").write_bytes(good)
    (folder / "link.png").symlink_to(outside / "secret.png")
    (folder / "animation.gif").write_bytes(buf.getvalue())
    return {"not-an-image.png": "is not a PNG, JPEG, WEBP image", "gif-inside.png": "is not a PNG, JPEG, WEBP image",
            "truncated.png": "cannot be decoded", "huge.png": "pixels; at most", "bomb.png": "decompression bomb", "link.png": "no such file in",
            "../outside/secret.png": "must be a", "animation.gif": "must be a", "missing.png": "no such file in"}


@pytest.mark.parametrize("column", ["logo", "product_image", "product_mask"])
def test_hostile_uploads_are_refused_per_row_and_the_other_rows_plan(tmp_path: Path, plan_settings: PlanSettings,
                                                                     column: str) -> None:
    folder, outside = tmp_path / "sheet", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    cases = hostile_files(folder, outside)
    (folder / "good.png").write_bytes(png(packshot()))
    rows = []
    for i, name in enumerate(cases):
        cells = {"logo": "", "product_image": "good.png" if column == "product_mask" else "", "product_mask": ""}
        cells[column] = name
        rows.append(f"bad-{i},acme@6,a bottle,a lake,meta.feed.square,{cells['logo']},{cells['product_image']},"
                    f"{cells['product_mask']}\n")
    rows.append("fine,acme@6,a bottle,a lake,meta.feed.square,,good.png,\n")
    sheet = folder / "c.csv"
    sheet.write_text(HEADER + "".join(rows), encoding="utf-8")
    result = plan(sheet, plan_settings)
    assert [r.asset_id for r in result.rows] == ["fine"]
    found = problems_by_row(result)
    for i, (name, says) in enumerate(cases.items()):
        problems = found[i + 2]
        assert [p.column for p in problems] == [column], (name, problems)
        assert says in problems[0].message, (name, problems[0].message)
        assert problems[0].code in ("bad_upload", "bad_logo"), problems[0]


def test_a_blocked_mark_refuses_the_row_naming_the_file(tmp_path: Path, plan_settings: PlanSettings,
                                                        styles: Path) -> None:
    marks = styles / "acme" / "blocked-marks"
    marks.mkdir()
    mark().save(marks / "rival-mark.png")
    Image.new("RGB", (50, 50), (10, 200, 10)).save(marks / "plain-green.png")
    # the mark as a marketer might upload it: smaller, re-encoded as JPEG, on a transparent canvas as a "logo"
    mark().resize((120, 120)).save(tmp_path / "copied.jpg", quality=80)
    cut = Image.new("RGBA", (260, 260), (0, 0, 0, 0))
    cut.paste(mark().convert("RGBA"), (30, 30))
    cut.save(tmp_path / "cutout.png")
    (tmp_path / "bottle.png").write_bytes(png(packshot()))
    sheet = tmp_path / "c.csv"
    sheet.write_text(HEADER + "r1,acme@6,a bottle,a lake,meta.feed.square,copied.jpg,bottle.png,\n"
                     + "r2,acme@6,a bottle,a lake,meta.feed.square,,cutout.png,\n"
                     + "r3,acme@6,a bottle,a lake,meta.feed.square,,bottle.png,\n", encoding="utf-8")
    result = plan(sheet, plan_settings)
    assert [r.asset_id for r in result.rows] == ["r3"]
    found = problems_by_row(result)
    assert [(p.column, p.code) for p in found[2]] == [("logo", "blocked_mark")]
    assert [(p.column, p.code) for p in found[3]] == [("product_image", "blocked_mark")]
    for row in (2, 3):
        assert "blocked-marks/rival-mark.png" in found[row][0].message


def test_an_upload_is_hashed_for_the_rights_check_only_where_the_brand_has_blocked_marks(
        tmp_path: Path, plan_settings: PlanSettings, styles: Path, monkeypatch) -> None:
    import plan.uploads as uploads

    hashed: list[tuple[int, int]] = []
    real = uploads._mark_hash
    monkeypatch.setattr(uploads, "_mark_hash", lambda image: hashed.append(image.size) or real(image))
    (tmp_path / "bottle.png").write_bytes(png(packshot()))
    sheet = tmp_path / "c.csv"
    sheet.write_text(HEADER + "r1,acme@6,a bottle,a lake,meta.feed.square,,bottle.png,\n", encoding="utf-8")
    assert [r.asset_id for r in plan(sheet, plan_settings).rows] == ["r1"] and hashed == []  # no marks: no phash
    marks = styles / "acme" / "blocked-marks"
    marks.mkdir()
    mark().save(marks / "rival-mark.png")
    (tmp_path / "bottle.png").write_bytes(png(packshot().rotate(90)))  # a new file: not the cached reading
    assert [r.asset_id for r in plan(sheet, plan_settings).rows] == ["r1"]
    assert len(hashed) == 2  # the mark and the packshot


def test_blocked_mark_distance_separates_copies_from_unrelated_images(tmp_path: Path) -> None:
    marks = tmp_path / "blocked-marks"
    marks.mkdir()
    mark().save(marks / "rival.png")
    known = blocked_marks(tmp_path)
    copies = [mark().resize((64, 64)), mark().rotate(2, fillcolor="white"), mark().crop((4, 4, 196, 196))]
    for copy in copies:
        assert blocked_mark_match(copy, known) is not None
    rng = np.random.default_rng(0)
    unrelated = [packshot(), Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)),
                 Image.open(Path(__file__).parents[2] / "campaigns" / "packshots" / "acme-bottle.png"),
                 Image.open(Path(__file__).parents[2] / "styles" / "acme" / "logo.png")]
    for image in unrelated:
        assert blocked_mark_match(image, known) is None
    assert blocked_mark_match(mark().crop((20, 20, 200, 200)), known) is None  # a 10 % crop: a known gap
    assert BLOCKED_MARK_DISTANCE < 32  # half the bits: unrelated images sit around there


def test_packshot_rules(tmp_path: Path, plan_settings: PlanSettings) -> None:
    Image.new("RGB", (40, 80), (200, 50, 50)).save(tmp_path / "opaque.jpg")
    Image.new("L", (40, 80), 0).save(tmp_path / "mask-small.png")
    mask = Image.new("L", (40, 80), 0)
    ImageDraw.Draw(mask).ellipse((5, 5, 35, 75), fill=255)
    mask.save(tmp_path / "mask.png")
    Image.new("L", (20, 20), 255).save(tmp_path / "mask-wrong-size.png")
    sheet = tmp_path / "c.csv"
    sheet.write_text(HEADER + "r1,acme@6,a bottle,a lake,meta.feed.square,,opaque.jpg,\n"
                     + "r2,acme@6,a bottle,a lake,meta.feed.square,,opaque.jpg,mask-wrong-size.png\n"
                     + "r3,acme@6,a bottle,a lake,meta.feed.square,,,mask.png\n"
                     + "r4,acme@5,a bottle,a lake,meta.feed.square,,opaque.jpg,mask.png\n"
                     + "r5,acme@6,a bottle,a lake,meta.feed.square,,opaque.jpg,mask.png\n", encoding="utf-8")
    result = plan(sheet, plan_settings)
    assert [r.asset_id for r in result.rows] == ["r5"]
    found = problems_by_row(result)
    assert "no transparent pixels" in found[2][0].message and found[2][0].code == "bad_product"
    assert "product_mask is 20x20 but product_image is 40x80" in found[3][0].message
    assert found[4][0].column == "product_mask" and "needs the product_image" in found[4][0].message
    assert "style acme@5 has no 'product' placement" in found[5][0].message
    assert {c for c, _ in result.jobs[0].input_images} == {"product_image", "product_mask"}


def test_store_inputs_puts_each_packshot_once_by_its_hash(tmp_path: Path, plan_settings: PlanSettings) -> None:
    from plan.uploads import UploadError, store_inputs
    from store.keys import input_key
    from store.local import LocalStore

    (tmp_path / "a.png").write_bytes(png(packshot()))
    sheet = tmp_path / "c.csv"
    sheet.write_text(HEADER + "r1,acme@6,a bottle,a lake,meta.feed.square,,a.png,\n"
                     + "r2,acme@6,a flask,a lake,meta.feed.square,,a.png,\n", encoding="utf-8")
    result = plan(sheet, plan_settings)
    store = LocalStore(tmp_path / "out")
    store_inputs(store, result.rows)
    (digest,) = {j.input_sha256["product_image"] for j in result.jobs}
    assert store.get(input_key(digest)) == (tmp_path / "a.png").read_bytes()
    assert store.list("inputs") == [input_key(digest)]
    (tmp_path / "a.png").write_bytes(png(packshot((1, 2, 3))))  # swapped after planning
    with pytest.raises(UploadError, match="changed while the campaign was being planned"):
        store_inputs(LocalStore(tmp_path / "other"), result.rows)
