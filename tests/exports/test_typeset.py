"""Localised overlays: per-script font chains (glyph coverage, never tofu), raqm shaping, RTL
mirroring, line breaking without spaces, the locale column, and the example sheet."""

from __future__ import annotations

import csv
import unicodedata
from pathlib import Path

import pytest

from exports.fit import cover_fit
from exports.overlay import OverlayStyle, apply_overlays, overlay_problems
from exports.placements import load_placements
from exports.typeset import ZWSP, SharedMemo, _cmap, choose_face, load_chains, main_script, units
from tests.exports.conftest import synthetic_render

REPO = Path(__file__).resolve().parents[2]
SHEET = REPO / "campaigns" / "world-launch.csv"
NEEDED = [folder / name.format(weight=w) for folder in load_chains().folders[:1]
          for name in ("NotoSansArabic-{weight}.ttf", "NotoSansThai-{weight}.ttf") for w in ("Regular", "Bold")]
fonts = pytest.mark.skipif(not all(p.is_file() for p in NEEDED) or not any(
    (f / "NotoSansCJK-Bold.ttc").is_file() for f in load_chains().folders),
    reason="Noto fonts not installed (Debian fonts-noto-core + fonts-noto-cjk: `make fonts`)")
PLACEMENTS = load_placements()


def _rows() -> list[dict]:
    with SHEET.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _draw(pid: str, headline: str, cta: str = "", locale: str = "", style: OverlayStyle = OverlayStyle()):
    p = PLACEMENTS[pid]
    return apply_overlays(cover_fit(synthetic_render(200, 200), p.width, p.height), p, headline=headline, cta=cta,
                          locale=locale, style=style)


@fonts
def test_the_example_sheet_covers_the_scripts_and_every_glyph_is_in_its_font():
    rows = _rows()
    assert {main_script(r["headline"]) for r in rows} == {"arabic", "hebrew", "cjk", "thai", "devanagari", "latin"}
    for row in rows:
        for role in ("headline", "cta"):
            text = " ".join(row[role].split())
            face, why = choose_face(text, OverlayStyle().font, 700, row["locale"])
            assert face is not None, why
            cmap = _cmap(face.path, face.index)
            drawn = [c for c in text if unicodedata.category(c) not in ("Zs", "Cf")]
            assert all(ord(c) in cmap for c in drawn), (row["asset_id"], role)
        for pid in ("meta.feed.square", "meta.stories", "google.display.upload.728x90"):
            _, layout = _draw(pid, row["headline"], row["cta"], row["locale"])
            assert [e.problem for e in layout.elements] == ["", ""], (row["asset_id"], pid)
            assert all(layout.safe_area.contains(e.box) for e in layout.elements)


@fonts
def test_latin_keeps_the_style_font_and_other_scripts_take_their_chain():
    geist = str(OverlayStyle().font)
    assert choose_face("Jetzt kaufen", OverlayStyle().font, 700, "de")[0].path == geist
    assert Path(choose_face("تسوّق الآن", OverlayStyle().font, 700, "ar")[0].path).name == "NotoSansArabic-Bold.ttf"
    assert Path(choose_face("ซื้อเลย", OverlayStyle().font, 400, "th")[0].path).name == "NotoSansThai-Regular.ttf"
    assert choose_face("今すぐ購入", OverlayStyle().font, 700, "ja")[0].index == 0
    assert choose_face("立即購買", OverlayStyle().font, 700, "zh-Hant-TW")[0].index == 3
    assert choose_face("立即购买", OverlayStyle().font, 700, "zh-CN")[0].index == 2


@fonts
@pytest.mark.parametrize("pid", ["meta.feed.square", "google.display.upload.728x90"])
def test_right_to_left_rows_mirror_alignment_and_layout(pid):
    for text, cta, locale in (("انطلق أبعد هذا الربيع", "تسوّق الآن", "ar"), ("לכו רחוק יותר באביב הזה", "קנו עכשיו", "he")):
        _, rtl = _draw(pid, text, cta, locale)
        _, ltr = _draw(pid, "Go further this spring", "Shop now", "en")
        (r_head, r_cta), (l_head, l_cta) = rtl.elements, ltr.elements
        assert l_head.box.left == l_head.region.left and r_head.box.right == r_head.region.right  # align left -> right
        area = rtl.safe_area
        assert r_head.region == type(l_head.region)(area.left + area.right - l_head.region.right, l_head.region.top,
                                                    area.left + area.right - l_head.region.left, l_head.region.bottom)
        assert r_cta.box.right == r_cta.region.right
    centred = _draw(pid, "לכו רחוק", "", "he", OverlayStyle(align="center"))[1].elements[0]
    assert abs((centred.box.left - centred.region.left) - (centred.region.right - centred.box.right)) <= 1


@fonts
def test_lines_break_without_spaces_in_japanese_and_thai():
    japanese = "この春、もっと遠くへ。新しい冒険に出かけよう"
    _, layout = _draw("iab.medium_rectangle", japanese)
    lines = layout.elements[0].lines
    assert len(lines) >= 2 and "".join(lines) == japanese
    assert not any(line[0] in "、。" for line in lines)  # kinsoku: no line starts with a closing mark
    words = ["ไป", "ให้", "ไกล", "กว่า", "เดิม", "ใน", "ฤดู", "ใบไม้", "ผลิ", "นี้"]
    _, layout = _draw("iab.medium_rectangle", ZWSP.join(words), locale="th")
    lines = layout.elements[0].lines
    assert len(lines) >= 2 and "".join(lines) == "".join(words)
    ends = {sum(map(len, words[:i])) for i in range(len(words) + 1)}
    assert all(sum(len(line) for line in lines[:i]) in ends for i in range(len(lines)))  # at word boundaries only
    _, layout = _draw("iab.medium_rectangle", "".join(words), locale="th")  # no ZWSP: grapheme clusters
    assert len(layout.elements[0].lines) >= 2 and not layout.elements[0].problem
    assert [piece for _, piece in units("今すぐ「購入」", "cjk")] == ["今", "す", "ぐ", "「購", "入」"]


@fonts
def test_a_glyph_in_no_font_of_the_chain_is_reported_never_drawn(tmp_path):
    text = "Go further \U00013000"  # an Egyptian hieroglyph: no font of the Latin chain has it
    out, layout = _draw("meta.feed.square", text)
    (element,) = layout.elements
    assert element.box is None and "glyph '\U00013000' (U+13000 EGYPTIAN HIEROGLYPH A001) is in no font" in element.problem
    p = PLACEMENTS["meta.feed.square"]
    assert out.tobytes() == cover_fit(synthetic_render(200, 200), p.width, p.height).tobytes()  # nothing drawn
    assert "is in no font of the latin chain" in overlay_problems(p, headline=text)[0]


@fonts
def test_validate_names_row_and_column_of_a_missing_glyph(tmp_path, repo):
    from typer.testing import CliRunner

    from flows.cli import app

    sheet = tmp_path / "sheet.csv"
    sheet.write_text("asset_id,style,locale,product,scene,headline,cta\n"
                     "ok-1,acme@2,ja,a tent,a meadow,この春へ,今すぐ\n"
                     "bad-2,acme@2,en,a tent,a meadow,Fine,Buy \U00013000\n"
                     "bad-3,acme@2,english,a tent,a meadow,Fine,Buy\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(sheet), "--styles", str(repo / "styles")])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"{sheet}:3:cta: glyph '\U00013000' (U+13000") for line in lines), lines
    assert any(line.startswith(f"{sheet}:4:locale: must be a BCP 47 language tag") for line in lines), lines
    assert len(lines) == 2


def test_without_the_chain_fonts_a_non_latin_text_is_an_error_not_tofu(monkeypatch, tmp_path):
    """What a machine without `make fonts` gets: a clear problem naming the missing fonts."""
    from exports import typeset

    chains = typeset.load_chains()
    monkeypatch.setattr(typeset, "load_chains", lambda: type(chains)((tmp_path,), chains.scripts, chains.rtl,
                                                                    chains.no_spaces, chains.cjk_faces))
    typeset.FACES.cache_clear()
    try:
        face, why = typeset.choose_face("تسوّق الآن", OverlayStyle().font, 700, "ar")
        assert face is None and "NotoSansArabic-{weight}.ttf" in why and "make fonts" in why
    finally:
        typeset.FACES.cache_clear()


def test_a_shared_memo_keeps_the_latest_results_and_takes_another_processes():
    made = []
    memo = SharedMemo(lambda x: made.append(x) or x * 2, 2)
    assert (memo(1), memo(2), memo(1)) == (2, 4, 2) and made == [1, 2]
    assert memo(3) == 6 and memo.known() == {(1,): 2, (3,): 6}  # 2 was the least recently used: out
    other = SharedMemo(lambda x: pytest.fail(f"{x} was made again"), 2)
    other.learn(memo.known())
    assert (other(1), other(3)) == (2, 6)
