"""`brandbatch validate` on a sheet full of hostile rows: one `SHEET:ROW:COLUMN: message` line per
problem on stdout, whatever the cells hold; the good rows are counted as valid."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from flows.cli import app


def test_validate_prints_one_line_per_problem_for_hostile_rows(tmp_path, repo):
    sheet = tmp_path / "hostile.csv"
    sheet.write_bytes(
        b"asset_id,style,product,scene,headline\n"
        b"ok-2,acme@2,a tent,a meadow,=HYPERLINK(\"http://x\")\n"                 # fine: text, not a formula
        b"../evil-3,acme@2,a tent,a meadow,\n"                                    # path traversal
        b"enc-4,acme@2,a caf\xe9,a meadow,\n"                                     # not UTF-8
        b"ctl-5,acme@2,a tent,\"a meadow\n\x1b[2Jfake.csv:1:x: forged line\",\n"  # control chars, forged line
        b"ssti-6,acme@2,{{ cycler.__init__.__globals__ }},a meadow,\n"             # fine: literal text
        b"ban-7,acme@2,a g\xe2\x80\x8bun,a meadow,\n"                              # zero-width hidden term
        b"Ok-2,acme@2,a tent,a meadow,\n"                                         # same file as ok-2
    )
    result = CliRunner().invoke(app, ["validate", str(sheet), "--styles", str(repo / "styles")])
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    pattern = re.compile(rf"^{re.escape(str(sheet))}:(\d+):([a-z_0-9 ]+): \S")
    assert [pattern.match(line).groups() for line in lines] == [
        ("3", "asset_id"), ("4", "product"), ("5", "scene"), ("7", "product"), ("8", "asset_id")]
    assert "\x1b" not in result.stdout and "forged" not in result.stdout
    assert "2 valid rows, 5 problems" in result.stderr
