"""store/keys.py is the only module that spells a store key, and it spells them as they always were."""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

from store import keys

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("bench", "exports", "flows", "plan", "qa", "render", "review", "store")
# a piece of each key format, as it appears in a string literal that spells it
KEY_PARTS = re.compile(r"renders/|qa/|shards/|upscaled/|/runs|runs/|/exports/|assets\.json|dead-letters\.json"
                       r"|manifest\.json|manifest\.csv|report\.html(?!\.j2)")


def _literal_parts(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of every string constant that is not a docstring, f-string pieces included."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def key_spellings(root: Path) -> list[str]:
    """``path:line: literal`` for every literal outside store/keys.py that holds a piece of a key format."""
    found = []
    for package in SOURCES:
        for path in sorted((root / package).rglob("*.py")):
            if path == root / "store" / "keys.py":
                continue
            for line, text in _literal_parts(ast.parse(path.read_text(encoding="utf-8"))):
                if KEY_PARTS.search(text):
                    found.append(f"{path.relative_to(root)}:{line}: {text!r}")
    return found


def test_no_module_but_store_keys_spells_a_store_key():
    assert key_spellings(REPO) == []


def test_the_check_finds_a_key_spelled_elsewhere(tmp_path: Path):
    (tmp_path / "qa").mkdir()
    (tmp_path / "qa" / "x.py").write_text('"""Reads qa/<key>.json."""\n\ndef k(j):\n    return f"qa/{j}.json"\n',
                                          encoding="utf-8")
    assert key_spellings(tmp_path) == ["qa/x.py:4: 'qa/'"]


def test_keys_are_the_layout_outputs_have_always_had():
    job = "ab" * 32
    assert keys.render_key(job) == f"renders/{job}.png" and keys.sidecar_key(job) == f"renders/{job}.json"
    assert keys.qa_key(job) == f"qa/{job}.json" and keys.checks_key(job) == f"qa/checks/{job}.json"
    assert keys.embedding_key("ViT-B-32@random", job) == f"qa/embeddings/ViT-B-32@random/{job}.npy"
    assert keys.shard_report_key("f00d") == "shards/f00d.json"
    assert keys.upscaled_key("cd" * 32, "brandbatch/tiny-esrgan@0123456789abcdef") == (
        "upscaled/" + hashlib.sha256(f"brandbatch-upscaled-v1|{'cd' * 32}|brandbatch/tiny-esrgan@0123456789abcdef"
                                     .encode()).hexdigest() + ".png")
    assert keys.assets_key("spring") == "spring/assets.json"
    assert keys.dead_letters_key("spring") == "spring/dead-letters.json"
    assert keys.runs_prefix("spring") == "spring/runs"
    assert (keys.run_record_key("spring", "2026-11-23T01:00:00+00:00", "1234abcd-0000-ffff")
            == "spring/runs/20261123T010000Z-1234abcd0000.json")
    assert keys.run_record_key("spring", "2026-11-23T01:00:00+00:00", "--") == "spring/runs/20261123T010000Z-run.json"
    assert keys.export_key("spring", "meta.stories", "tent-01", 1, "webp") == "spring/exports/meta.stories/tent-01.webp"
    assert keys.export_key("spring", "meta.stories", "tent-01", 2, "jpg") == "spring/exports/meta.stories/tent-01-v2.jpg"
    assert keys.manifest_key("spring") == "spring/manifest.json" and keys.manifest_csv_key("spring") == "spring/manifest.csv"
    assert keys.report_key("spring") == "spring/report.html"
