"""The shortcuts that make planning a big sheet fast give what the plain code gives: job keys
(``JobMaker``, ``job_values``), seeds, the banned-term look over a whole row, the one-step read of
a clean CSV row, and rows planned in a worker process and sent back packed."""

from __future__ import annotations

import dataclasses
import gc
import itertools
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from plan.jobs import JobMaker, RenderJob, derive_seed, job_from_values, job_values
from plan.prompts import _word_set, _words, find_banned_terms, may_contain_banned_terms
from plan.sheet import read_sheet

REPO = Path(__file__).resolve().parents[2]

# Every field set, optional ones included; keys computed by the implementation before these shortcuts.
FULL = dict(campaign="c", row_key="sku-1", row=7, variant=2, aspect="9:16", width=576, height=1024,
            prompt="a bag, \"quoted\" café 日本", negative_prompt="blurry", model_id="m/x", model_revision="rev1",
            model_family="sdxl", scheduler="euler", steps=30, guidance=6.5, seed=123456789012345, style="acme",
            style_version=4, reroll=3, master_key="ab" * 32, expand_focal=(0.5, 0.25),
            input_images=(("product_image", "f" * 64),), product=(0.5, 0.9, 0.6, True),
            adapters=(("/x/lora.safetensors", "a" * 64, 0.8),), embeddings=(("/x/emb.pt", "b" * 64, "<acme>"),),
            reference_strength=0.55, ip_adapter=("/x/ip.bin", "c" * 64, 0.6), controlnet=("tiny/cn", "builtin-1", 0.7))
OPTIONAL = ("master_key", "expand_focal", "input_images", "product", "adapters", "embeddings", "reference_strength",
            "ip_adapter", "controlnet", "reroll")
BARE = {k: v for k, v in FULL.items() if k not in OPTIONAL}
FULL_KEY = "a642862a32a6a45560758f87f853077cfdf80d93fe6acd31fb6bdfece6da5f9b"
BARE_KEY = "f688c3a97bc75db405969d29e096030f8e1841c9c6c0979ba28dbc165b66ba3f"


def test_job_keys_and_seeds_are_those_of_the_earlier_implementation():
    assert RenderJob(**FULL).key == FULL_KEY and RenderJob(**BARE).key == BARE_KEY
    assert RenderJob(**{**FULL, "row": 99, "adapters": (("/elsewhere.safetensors", "a" * 64, 0.8),)}).key == FULL_KEY
    assert derive_seed("c", "sku-1", 2, "acme@4", 3) == 8707620095419830940
    assert derive_seed("ç\"x", "日本", 1, "a@1") == 1359738399906352206


def test_seeds_are_those_of_the_json_list_they_are_defined_by():
    """``derive_seed`` writes its JSON list by hand: the same text as ``json.dumps`` of the list, for
    strings with quotes, escapes, control characters and non-ASCII letters, and for items of other
    types (the general path)."""
    import hashlib
    import json
    import random

    from plan.jobs import SEED_BITS

    def plain(*items: object) -> int:
        payload = json.dumps(["brandbatch-seed-v1", *items], ensure_ascii=False)
        return int.from_bytes(hashlib.sha256(payload.encode("utf-8")).digest()[:8], "big") >> (64 - SEED_BITS)

    pick = random.Random(19)
    alphabet = 'ab"\\\n\t\x00\x1fé日🎒 -@/'
    for _ in range(500):
        text = ["".join(pick.choice(alphabet) for _ in range(pick.randrange(0, 12))) for _ in range(3)]
        numbers = [pick.choice([0, 1, 7, 2**40, -3]) for _ in range(2)]
        assert derive_seed(text[0], text[1], numbers[0], text[2], numbers[1]) == plain(text[0], text[1], numbers[0],
                                                                                     text[2], numbers[1])
    for odd in ([True, False], [1.5, 2], ["x", None]):
        assert derive_seed("c", "r", odd[0], "s@1", odd[1]) == plain("c", "r", odd[0], "s@1", odd[1])


@pytest.mark.parametrize("fields", [FULL, BARE], ids=["every field", "required fields"])
def test_a_job_maker_makes_the_job_that_render_job_makes(fields):
    shared = dict(itertools.islice(fields.items(), 0, len(fields), 2))  # every other field shared
    row = dict(itertools.islice(fields.items(), 1, len(fields), 4))
    own = {k: v for k, v in fields.items() if k not in shared and k not in row}
    job = JobMaker(**shared).sharing(**row).job(**own)
    assert job == RenderJob(**fields) and job.to_dict() == RenderJob(**fields).to_dict()
    assert job.key == RenderJob(**fields).key == (FULL_KEY if fields is FULL else BARE_KEY)
    assert job.__dict__.keys() == RenderJob(**fields).__dict__.keys() | {"key"}


def test_a_jobs_own_none_leaves_a_shared_optional_field_out_of_its_key():
    job = JobMaker(**FULL).job(master_key=None, product=None)
    assert job.key == RenderJob(**{**FULL, "master_key": None, "product": None}).key != FULL_KEY


def test_a_job_maker_refuses_a_job_without_every_field_or_with_one_it_does_not_have():
    with pytest.raises(TypeError, match="a job needs aspect, seed"):
        JobMaker(**{k: v for k, v in BARE.items() if k not in ("seed", "aspect")}).job(width=1)
    with pytest.raises(TypeError, match="a job has no field colour"):
        JobMaker(**BARE).job(colour="red")
    with pytest.raises(TypeError, match="a job has no field colour"):
        JobMaker(**BARE).sharing(colour="red")


def test_job_values_make_the_same_job_in_another_process():
    job = RenderJob(**FULL)
    again = job_from_values(pickle.loads(pickle.dumps(job_values(job))))
    assert again == job and again.key == FULL_KEY and again.to_dict() == job.to_dict()


TEXTS = ["an orange hiking backpack, model 000123", "a mountain trail at sunrise", "", "k1ll g\u200bun 1ife n00b",
         '"x-y" a_b 日本語 café', "Ünïcödé thermos naïve “quotes” 🎒🏔️ $ex @buse k!ll |ife", "cure miracle",
         "ｍｉｒａｃｌｅ ｃｕｒｅ", "fr33 g1ft", "celeb-rity", "gu\u0335n case", "а gun", "cure-all deal", "x\ny\tz"]
BANNED = ("gun", "nude", "celebrity", "miracle cure", "cheap", "free gift", "kill", "life", "sex")


@pytest.mark.parametrize("text", TEXTS)
def test_the_word_set_is_the_set_of_the_words(text):
    assert _word_set(text) == set(_words(text))


def test_one_look_at_a_whole_row_never_misses_a_banned_term_that_a_text_holds():
    for texts in itertools.combinations(TEXTS, 3):
        if any(find_banned_terms(text, BANNED) for text in texts):
            assert may_contain_banned_terms(texts, BANNED), texts
    assert not may_contain_banned_terms(TEXTS[:3], BANNED)  # a clean row: no text looked at one by one


def test_the_first_word_search_never_says_no_where_the_words_hold_a_term():
    """``may_contain_banned_terms`` answers as the word look alone does (its regular-expression
    search only skips rows where that look would say no), on random leetspeak-heavy text."""
    import random

    from plan.prompts import _banned_word_lists

    rng = random.Random(3)
    pieces = ["k1ll", "ki|l", "k!ll", "|ife", "1ife", "g-u-n", "gu_n", "$ex", "5ex", "s3x", "fr33", "g1ft", "free",
              "gift",
              "nude", "n00de", "cel3b-rity", "m1racle", "cure", "cur3", "gun", "guns", "gunk", "sku-000123", "acme@2",
              "café", "日本", "gu日n", "1日ife", "ｇｕｎ", "g\u200bun", "x", "-", "@", "1", "|", "_", " ", ", ", ".",
              "\n", "'", "\""]
    term_words = _banned_word_lists(BANNED)
    for _ in range(3000):
        texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 6))) for _ in range(rng.randint(1, 3))]
        words = set(_words("\n".join(texts)))
        assert may_contain_banned_terms(texts, BANNED) == any(words.issuperset(t) for t in term_words), texts


def test_a_clean_csv_row_reads_as_the_cell_by_cell_reader_reads_it(tmp_path: Path):
    path = tmp_path / "s.csv"
    path.write_bytes(b"asset_id,style,product,,extra\n ok-1 ,acme@2, a\ttent ,,\n,,,,\nbad-3,acme@2,a te\x00nt,,\n"
                     b"ok-4,acme@2,fine\n  ,  ,  ,,\n")
    sheet = read_sheet(path)
    assert [(r.row, r.cells, [p.column for p in r.problems]) for r in sheet.rows] == [
        (2, {"asset_id": "ok-1", "style": "acme@2", "product": "a\ttent", "extra": ""}, []),
        (4, {"asset_id": "bad-3", "style": "acme@2", "product": "a te\x00nt", "extra": ""}, ["product"]),
        (5, {"asset_id": "ok-4", "style": "acme@2", "product": "fine", "extra": ""}, [])]


def test_rows_planned_in_a_worker_come_back_as_planned_here(tmp_path: Path, settings):
    import plan.planner as planner
    from plan.styles import StyleLibrary

    from tests.plan.test_plan_reference import write_sheet

    sheet = read_sheet(write_sheet(tmp_path / "s.csv", 120))
    rows = [(r.cells, r.row) for r in sheet.rows if not r.problems]
    library, where = StyleLibrary(settings.styles_dir), str(sheet.path)
    packed = pickle.loads(pickle.dumps(planner._plan_chunk(settings, where, sheet.campaign, rows)))
    here = planner._plan_with_jobs(rows, library, settings, where, sheet.campaign, planner._PlanMemo(), {})
    back = [o if isinstance(o, list) else planner._unpack(o, cells, row) for o, (cells, row) in zip(packed, rows)]
    assert sum(not isinstance(o, list) for o in here) > 50 and back == here
    assert [job.key for o in back if not isinstance(o, list) for job in o[1]] == \
        [job.key for o in here if not isinstance(o, list) for job in o[1]]


def test_planning_pauses_the_cycle_collector_and_restores_it(tmp_path: Path, settings, monkeypatch):
    import plan.planner as planner

    seen = []
    real = planner._plan_rows
    monkeypatch.setattr(planner, "_plan_rows", lambda *a: seen.append(gc.isenabled()) or real(*a))
    sheet = read_sheet(REPO / "campaigns" / "spring-launch.csv")
    assert gc.isenabled()
    planner.plan_campaign(sheet, settings)
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        planner.plan_campaign(sheet, settings)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_what_reading_and_planning_made_goes_to_the_oldest_generation_and_frozen_objects_stay_frozen(settings):
    import plan.planner as planner

    assert gc.isenabled()
    sheet = read_sheet(REPO / "campaigns" / "spring-launch.csv")  # a CSV is read with the collector paused
    assert gc.isenabled() and id(sheet.rows[0]) in {id(o) for o in gc.get_objects(2)}
    plan = planner.plan_campaign(sheet, settings)
    oldest = {id(o) for o in gc.get_objects(2)}
    assert plan.rows and all(id(o) in oldest for o in (plan, plan.rows, plan.jobs, plan.rows[0]))
    mine = [object()]  # one of the process's own objects
    gc.freeze()  # a process's own frozen objects (e.g. frozen before forking servers) are left frozen
    try:
        assert id(mine) not in {id(o) for o in gc.get_objects()}  # frozen: in no generation
        planner.plan_campaign(sheet, settings)
        # still frozen (the freeze count itself may drop: a cache that evicts a frozen entry frees it)
        assert id(mine) not in {id(o) for o in gc.get_objects()} and gc.get_freeze_count() and gc.isenabled()
    finally:
        gc.unfreeze()


def test_file_name_clashes_across_chunks_are_found_as_in_one_process(tmp_path: Path, settings, monkeypatch):
    """File names are claimed in sheet order chunk by chunk while later chunks are planned: a clash
    with a row of an earlier chunk (planned by a worker or this process) is the later row's, as in one process."""
    import csv

    import plan.planner as planner

    monkeypatch.setattr(planner, "CHUNK_ROWS", 10)
    sheet = tmp_path / "clash.csv"
    ids = [f"sku-{i}" for i in range(120)]
    # each clashes with a row of another chunk
    ids[15], ids[57], ids[98], ids[113] = "SKU-3", "sku-40-v2", "Sku-58-V2", "SKU-112"
    ids[41] = "sku-40-v3"  # sku-40 (2 variants) makes sku-40-v2, not -v3: no clash
    with sheet.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["asset_id", "style", "product", "scene", "variants"])
        writer.writeheader()
        writer.writerows({"asset_id": asset_id, "style": "acme@2", "product": f"a tent {i}", "scene": "a lake",
                          "variants": 2}
                         for i, asset_id in enumerate(ids))
    one = planner.plan_campaign(read_sheet(sheet), settings, workers=1)
    clashes = [(p.row, p.code) for p in one.problems]
    assert clashes == [(17, "file_name_clash"), (59, "file_name_clash"), (100, "file_name_clash"),
                       (115, "file_name_clash")], one.problems
    for limit in (None, 30):
        many = planner.plan_campaign(read_sheet(sheet), settings, limit=limit, workers=3)
        alone = planner.plan_campaign(read_sheet(sheet), settings, limit=limit, workers=1)
        assert [str(p) for p in many.problems] == [str(p) for p in alone.problems]
        assert [r.row for r in many.rows] == [r.row for r in alone.rows]
        assert [j.key for j in many.jobs] == [j.key for j in alone.jobs]


def test_a_script_whose_workers_cannot_start_still_gets_its_plan(tmp_path: Path, settings):
    """A main script without a ``__main__`` guard that runs a thread: spawned workers (``_may_fork``)
    fail to start, so this process plans every row."""
    from tests.plan.test_plan_reference import STYLES, write_sheet

    sheet = write_sheet(tmp_path / "s.csv", 300)
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import dataclasses, datetime as dt, hashlib, threading, plan.planner as p\n"
        "from plan.sheet import read_sheet\n"
        "threading.Thread(target=threading.Event().wait, daemon=True).start()\n"
        "assert not p._may_fork()\n"
        "p.CHUNK_ROWS = 50\n"
        f"settings = p.PlanSettings(styles_dir=__import__('pathlib').Path({str(STYLES)!r}), "
        f"templates_dir=__import__('pathlib').Path({str(settings.templates_dir)!r}), "
        f"placements={dict(settings.placements)!r}, today=dt.date(2026, 11, 23))\n"
        f"plan = p.plan_campaign(read_sheet({str(sheet)!r}), settings, workers=2)\n"
        "print(len(plan.jobs), hashlib.sha256(' '.join(j.key for j in plan.jobs).encode()).hexdigest())\n",
        encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    expected = planner_keys(sheet, dataclasses.replace(settings, styles_dir=STYLES))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == expected


def test_workers_are_forked_only_from_a_process_without_other_threads():
    """In a fresh Python: this test process may still run threads that other tests started."""
    check = (
        "import threading\n"
        "from plan.planner import _may_fork\n"
        "assert threading.active_count() == 1 and _may_fork()\n"
        "stop = threading.Event()\n"
        "thread = threading.Thread(target=stop.wait)\n"
        "thread.start()\n"
        "try:\n"
        "    assert not _may_fork()\n"
        "finally:\n"
        "    stop.set()\n"
        "    thread.join()\n"
        "assert _may_fork()\n"
        "print('checked')\n")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and done.stdout == "checked\n", done.stderr[-2000:]


def test_leetspeak_readings_of_ascii_text_by_bytes_are_those_of_the_tables():
    from plan.prompts import _LEET, _LEET_BYTES

    text = "".join(map(chr, range(128))) + "k1ll 1ife fr33 g!ft $ex n00b |ol"
    assert len(_LEET_BYTES) == len(_LEET) == 2
    for (mapping, drop), table in zip(_LEET_BYTES, _LEET):
        assert text.encode("ascii").translate(mapping, drop).decode("ascii") == text.translate(table)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pipe sizes are Linux's")
def test_workers_send_a_whole_chunk_of_results_without_waiting_for_this_process_to_read():
    """The pool's result pipe holds a chunk's results (a worker waited on a 64 KiB pipe a quarter of
    its time), and the results still arrive whole."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from plan.planner import CHUNK_ROWS, RESULT_PIPE_BYTES, _widen_result_pipe

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        assert _widen_result_pipe(pool) == RESULT_PIPE_BYTES >= 720 * CHUNK_ROWS  # a chunk of the bench sheet
        assert pool.submit(bytes, 3 * RESULT_PIPE_BYTES).result() == bytes(3 * RESULT_PIPE_BYTES)
    assert _widen_result_pipe(object()) is None


def planner_keys(sheet: Path, settings) -> str:
    import hashlib

    from plan.planner import plan_campaign

    plan = plan_campaign(read_sheet(sheet), settings, workers=1)
    return f"{len(plan.jobs)} {hashlib.sha256(' '.join(j.key for j in plan.jobs).encode()).hexdigest()}"


def test_made_jobs_take_no_more_memory_than_render_job_makes():
    """Their dicts share their keys with every job's, as ``RenderJob(...)``'s do (a 100k-row plan
    holds 400,000 jobs: a dict of its own each would be 200 MB more)."""
    import tracemalloc

    maker = JobMaker(**{k: v for k, v in BARE.items() if k not in ("aspect", "seed", "variant")})

    def bytes_per_job(make) -> float:
        for seed in range(5000):  # the key parts' cache full: it holds as much as it frees from here on
            make(-seed)
        tracemalloc.start()
        jobs = [make(seed) for seed in range(2000)]
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return size / len(jobs)

    plain = bytes_per_job(lambda seed: (job := RenderJob(**{**BARE, "seed": seed}), job.key)[0])
    made = bytes_per_job(lambda seed: maker.job(aspect="1:1", seed=seed, variant=1))
    again = bytes_per_job(lambda seed: job_from_values(job_values(maker.job(aspect="1:1", seed=seed, variant=1))))
    assert made < 1.1 * plain and again < 1.1 * plain, (made, again, plain)


def test_a_token_is_read_as_leetspeak_as_the_plain_tables_read_it():
    """``_leet`` drops ASCII characters other than a-z in its table's one step; the plain reading:
    the leetspeak table, then every character but a-z dropped (a token of ASCII letters kept as it
    is). Tokens hold no separator (``_SPLIT``)."""
    import random
    import re

    from plan.prompts import _LEET, _SPLIT, _leet

    plain_tables = (str.maketrans("0134578@$!|", "oieastbasil"), str.maketrans("0134578@$!|", "oleastbasii"))
    rng = random.Random(5)
    alphabet = re.sub(f"[{_SPLIT}]", "", "".join(map(chr, range(128)))) + "abcxyz" * 10 + "é日ß\u200b"
    tokens = ["k1ll", "sku-000123", "acme@2", "Kill", "KI11", "$ex", "|ife", "café", "g\u200bun"]
    tokens += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(2000)]
    for token in tokens:
        for table, plain in zip(_LEET, plain_tables):
            expected = token if token.isalpha() and token.isascii() else re.sub("[^a-z]", "", token.translate(plain))
            assert _leet(token, table) == expected, repr(token)
