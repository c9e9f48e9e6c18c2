from __future__ import annotations

import csv
import random
from pathlib import Path

import openpyxl
import pytest

from plan.errors import InputError
from plan.jobs import derive_expand_seed, derive_seed
from plan.planner import PlanSettings, plan_campaign
from plan.sheet import read_sheet

HEADER = "asset_id,style,product,scene,variants,placements\n"


def test_example_campaign_plans_cleanly(repo: Path, settings: PlanSettings) -> None:
    plan = plan_campaign(read_sheet(repo / "campaigns" / "spring-launch.csv"), settings)
    assert plan.problems == []
    assert plan.campaign == "spring-launch"
    assert [r.asset_id for r in plan.rows] == ["trail-pack-01", "tent-02", "bottle-03", "jacket-04", "boots-05",
                                                 "bottle-06"]
    # trail-pack: 2 variants x (1:1 for feed.square, 9:16 for stories)
    trail = [j for j in plan.jobs if j.row_key == "trail-pack-01"]
    assert sorted((j.variant, j.aspect) for j in trail) == [(1, "1:1"), (1, "9:16"), (2, "1:1"), (2, "9:16")]
    assert len({j.key for j in plan.jobs}) == len(plan.jobs)
    assert all(j.width % 16 == 0 and j.height % 16 == 0 for j in plan.jobs)
    # bottle-03 has no placements: the style's defaults apply
    bottle = next(r for r in plan.rows if r.asset_id == "bottle-03")
    assert bottle.placements == ("meta.feed.square", "meta.stories", "google.display.upload.300x250")
    styles = plan.styles()  # the style versions its rows use, by ref
    assert set(styles) == {f"{j.style}@{j.style_version}" for j in plan.jobs}
    assert all(styles[row.style.ref] is row.style for row in plan.rows)


def test_every_validation_error_is_reported_and_good_rows_still_plan(write_sheet, settings: PlanSettings) -> None:
    path = write_sheet(
        HEADER
        + "ok-1,acme@2,a tent,a meadow,1,meta.feed.square\n"        # row 2: good
        + "ok-1,acme@2,a tent,a meadow,1,meta.feed.square\n"        # row 3: duplicate asset_id
        + "bad-style,zeta@1,a tent,a meadow,1,\n"                   # row 4: unknown style
        + "bad-version,acme@9,a tent,a meadow,1,\n"                 # row 5: unknown version
        + "draft,acme@3,a tent,a meadow,1,\n"                       # row 6: draft style
        + "bad-number,acme@2,a tent,a meadow,two,\n"                # row 7: bad number
        + "bad-place,acme@2,a tent,a meadow,1,meta.feed.sqaure\n"   # row 8: unknown placement
        + ",acme@2,a tent,a meadow,1,\n"                            # row 9: empty asset_id
        + "no-scene,acme@2,a tent,,1,\n"                            # row 10: empty prompt variable
        + "banned,acme@2,a ｇun,a meadow,1,\n"                      # row 11: banned term (fullwidth)
        + "deprecated,acme@1,a tent,a meadow,1,\n"                  # row 12: deprecated style
        + "ok-2,nordic@1,a sofa,,1,\n"                              # row 13: template var 'room' missing
        + "../evil,acme@2,a tent,a meadow,1,\n"                     # row 14: unsafe asset id
        + "ok-3,acme@2,a lamp,a study,3,meta.stories\n"             # row 15: good
    )
    plan = plan_campaign(read_sheet(path), settings)
    got = sorted((p.row, p.column, p.code) for p in plan.problems)
    assert got == [
        (3, "asset_id", "duplicate_asset_id"), (4, "style", "unknown_style"), (5, "style", "unknown_style_version"),
        (6, "style", "draft_style"), (7, "variants", "bad_variants"), (8, "placements", "unknown_placement"),
        (9, "asset_id", "empty_value"), (10, "scene", "bad_prompt"), (11, "product", "banned_term"),
        (12, "style", "deprecated_style"), (13, "room", "bad_prompt"), (14, "asset_id", "bad_asset_id"),
    ]
    lines = [str(p) for p in plan.problems]
    assert f"{path}:3:asset_id: duplicate asset_id 'ok-1' (first on row 2)" in lines
    assert any(line.startswith(f"{path}:7:variants: must be a whole number from 1 to 8 but is 'two'") for line in lines)
    assert f"{path}:8:placements: unknown placement 'meta.feed.sqaure' (did you mean 'meta.feed.square' or " \
           "'meta.feed.portrait'?); `brandbatch placements list` shows the ids" in lines
    assert any("acme@3 is a draft" in line for line in lines)
    assert [r.asset_id for r in plan.rows] == ["ok-1", "ok-3"]
    assert len(plan.jobs) == 1 + 3


def test_a_problem_needs_a_known_code() -> None:
    from plan.errors import PROBLEM_CODES, Problem

    assert Problem("s.csv", "m", 2, "style", code="unknown_style").code in PROBLEM_CODES
    with pytest.raises(ValueError, match="problem code must be one of file_not_found, .* but is 'unknwon_style'"):
        Problem("s.csv", "m", 2, "style", code="unknwon_style")
    with pytest.raises(TypeError):
        Problem("s.csv", "m", 2, "style")  # type: ignore[call-arg]  # every problem says what kind it is


def test_empty_scene_is_rejected_by_the_template(write_sheet, settings: PlanSettings) -> None:
    # product_ad.j2 renders "{{ product }} in {{ scene }}": an empty scene would make "a tent in ,".
    plan = plan_campaign(read_sheet(write_sheet(HEADER + "x,acme@2,a tent,,1,\n")), settings)
    assert [p.column for p in plan.problems] == ["scene"]
    assert "required value is empty" in str(plan.problems[0])


def test_missing_required_column_stops_the_sheet(write_sheet) -> None:
    with pytest.raises(InputError) as err:
        read_sheet(write_sheet("asset_id,product\nx,bag\n"))
    assert str(err.value).endswith(":1:style: required column is missing")


def test_draft_allowed_when_asked(write_sheet, settings: PlanSettings) -> None:
    from dataclasses import replace

    path = write_sheet(HEADER + "d,acme@3,a tent,a meadow,1,\n")
    assert plan_campaign(read_sheet(path), settings).problems
    plan = plan_campaign(read_sheet(path), replace(settings, allow_draft=True))
    assert not plan.problems and plan.jobs[0].model_family == "sdxl"


def test_too_long_prompt_is_rejected_not_truncated(write_sheet, settings: PlanSettings) -> None:
    scene = " ".join(["a very detailed mountain landscape"] * 15)
    plan = plan_campaign(read_sheet(write_sheet(HEADER + f"long,acme@2,a tent,{scene},1,\n")), settings)
    assert [p.column for p in plan.problems] == ["prompt"]
    assert "tokens; the text encoder reads at most 77" in str(plan.problems[0])


def test_seeds_do_not_depend_on_row_order_or_other_rows(write_sheet, settings: PlanSettings) -> None:
    rows = [f"a{i},acme@2,product {i},scene {i},2,meta.feed.square;meta.stories\n" for i in range(12)]
    first = plan_campaign(read_sheet(write_sheet(HEADER + "".join(rows), "c.csv")), settings)
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    shuffled.insert(5, "new-row,acme@2,a new thing,somewhere,1,\n")
    second = plan_campaign(read_sheet(write_sheet(HEADER + "".join(shuffled), "c.csv")), settings)
    by_id = lambda plan: {(j.row_key, j.variant, j.aspect): (j.seed, j.key) for j in plan.jobs}  # noqa: E731
    a, b = by_id(first), by_id(second)
    assert all(b[k] == v for k, v in a.items())
    assert len({seed for seed, _ in a.values()}) == 24  # one seed per (row, variant), shared by aspects


def test_seed_derivation_is_stable_and_63_bit() -> None:
    seed = derive_seed("spring", "a1", 1, "acme@2")
    assert seed == derive_seed("spring", "a1", 1, "acme@2")
    assert 0 <= seed < 2**63
    assert seed != derive_seed("spring", "a1", 1, "acme@2", reroll=1)
    assert seed != derive_seed("spring", "a1", 2, "acme@2")
    assert seed != derive_seed("spring", "a1", 1, "acme@3")
    assert seed != derive_seed("autumn", "a1", 1, "acme@2")
    # Pinned: changing the derivation would re-render every campaign ever run.
    assert seed == 142816239502140261


def test_xlsx_and_csv_plan_identically(tmp_path: Path, write_sheet, settings: PlanSettings) -> None:
    text = HEADER + "x1,acme@2,a tent,a meadow,2,meta.feed.square\nx2,acme@2,a bag,a beach,,meta.stories\n"
    csv_path = write_sheet(text, "launch.csv")
    xlsx_path = tmp_path / "launch.xlsx"
    book = openpyxl.Workbook()
    for record in csv.reader(csv_path.read_text(encoding="utf-8").splitlines()):
        book.active.append(record)
    book.save(xlsx_path)
    a = plan_campaign(read_sheet(csv_path), settings)
    b = plan_campaign(read_sheet(xlsx_path), settings)
    assert [j.key for j in a.jobs] == [j.key for j in b.jobs] and not b.problems


def test_limit_plans_first_good_rows(write_sheet, settings: PlanSettings) -> None:
    rows = "".join(f"a{i},acme@2,p,s,1,meta.feed.square\n" for i in range(5))
    plan = plan_campaign(read_sheet(write_sheet(HEADER + rows)), settings, limit=2)
    assert [r.asset_id for r in plan.rows] == ["a0", "a1"]


def test_approved_styles_must_pin_their_model(settings, write_sheet, tmp_path, repo):
    import dataclasses
    import shutil

    from render.registry import pinning_problem

    styles = tmp_path / "styles"
    shutil.copytree(repo / "styles", styles)
    v2 = (styles / "acme" / "v2.yaml").read_text(encoding="utf-8")
    (styles / "acme" / "v4.yaml").write_text(
        v2.replace("version: 2", "version: 4").replace("id: brandbatch/tiny-sd", "id: acme/real-model")
        .replace("revision: builtin-1", "revision: main"), encoding="utf-8")
    strict = dataclasses.replace(settings, styles_dir=styles, model_pin_problem=pinning_problem)
    sheet = write_sheet("asset_id,style,product,scene\na1,acme@4,tent,lake\na2,acme@2,tent,lake\n")
    plan = plan_campaign(read_sheet(sheet), strict)
    assert [r.asset_id for r in plan.rows] == ["a2"]
    (problem,) = plan.problems
    assert (problem.row, problem.column) == (2, "style")
    assert "unpinned model" in problem.message and "'main'" in problem.message and "40-hex" in problem.message


def test_model_override_may_carry_a_pinned_revision(settings, write_sheet):
    import dataclasses

    sheet = read_sheet(write_sheet("asset_id,style,product,scene\na1,acme@2,tent,lake\n"))
    pinned = dataclasses.replace(settings, model_override="org/model@" + "a" * 40)
    assert {(j.model_id, j.model_revision) for j in plan_campaign(sheet, pinned).jobs} == {("org/model", "a" * 40)}
    folder = dataclasses.replace(settings, model_override="/models/mine")
    assert {(j.model_id, j.model_revision) for j in plan_campaign(sheet, folder).jobs} == {("/models/mine", None)}


def test_expand_styles_plan_a_master_and_one_expansion_per_other_aspect(write_sheet, settings: PlanSettings) -> None:
    rows = [f"a{i},acme@5,product {i},scene {i},2,meta.stories;google.display.upload.300x250\n" for i in range(6)]
    plan = plan_campaign(read_sheet(write_sheet(HEADER + "".join(rows), "c.csv")), settings)
    assert plan.problems == []
    jobs = [j for j in plan.jobs if j.row_key == "a0" and j.variant == 1]
    master, *expansions = jobs
    # meta.stories needs 9:16 and the 300x250 banner 1:1 (the master): one expansion
    assert (master.aspect, master.master_key, [e.aspect for e in expansions]) == ("1:1", None, ["9:16"])
    (expansion,) = expansions
    assert expansion.master_key == master.key and expansion.model_id == "brandbatch/tiny-sd-inpaint"
    assert (expansion.width, expansion.height) == (128, 240)  # the master's 128 px kept, extended to 9:16
    assert expansion.seed == derive_expand_seed(master.key, "9:16") != master.seed
    # row order and other rows change nothing, and the same row plans the same family
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    again = plan_campaign(read_sheet(write_sheet(HEADER + "new,acme@5,x,y,1,\n" + "".join(shuffled), "c.csv")),
                          settings)
    assert {j.key for j in plan.jobs} <= {j.key for j in again.jobs}


def test_a_row_whose_placements_skip_the_master_aspect_still_renders_the_master(write_sheet, settings: PlanSettings) -> None:
    plan = plan_campaign(read_sheet(write_sheet(HEADER + "a,acme@5,p,s,1,meta.stories\n")), settings)
    assert [(j.aspect, j.is_expansion) for j in plan.jobs] == [("1:1", False), ("9:16", True)]


@pytest.mark.parametrize(("change", "expected"), [
    (("composition: expand", "composition: collage"), "composition: Input should be 'independent' or 'expand'"),
    (('master_aspect: "1:1"', 'master_aspect: "3:2"'), "master_aspect: must be one of the style's aspect_ratios"),
    (("  id: brandbatch/tiny-sd-inpaint\n  revision: builtin-1\n  family: sd",
      "  id: brandbatch/tiny-flux-fill\n  revision: builtin-1\n  family: flux"), "expand_model: must be an inpainting"),
    (("upscaler: {id: brandbatch/tiny-esrgan}", "upscaler: {id: esrgan.pth, sha256: " + "ab" * 32 + "}"),
     "upscaler: id: no such weights file"),
    (("  id: brandbatch/tiny-sd-inpaint\n  revision: builtin-1",
      "  id: acme/sd-inpainting\n  revision: main"), "unpinned expand_model"),
])
def test_bad_family_styles_are_reported_on_the_style_file_and_key_and_nothing_is_planned(
        settings, write_sheet, tmp_path, repo, change, expected):
    import dataclasses
    import shutil

    from render.registry import pinning_problem

    styles = tmp_path / "styles"
    shutil.copytree(repo / "styles", styles)
    v5 = (styles / "acme" / "v5.yaml").read_text(encoding="utf-8")
    assert change[0] in v5
    (styles / "acme" / "v6.yaml").write_text(v5.replace("version: 5", "version: 6").replace(*change),
                                             encoding="utf-8")
    strict = dataclasses.replace(settings, styles_dir=styles, model_pin_problem=pinning_problem)
    plan = plan_campaign(read_sheet(write_sheet(HEADER + "a1,acme@6,tent,lake,1,\n")), strict)
    assert plan.jobs == [] and plan.rows == []
    (problem,) = plan.problems
    assert (problem.row, problem.column) == (2, "style") and expected in problem.message, problem.message
    if "unpinned" not in expected:
        assert str(styles / "acme" / "v6.yaml") in problem.message
