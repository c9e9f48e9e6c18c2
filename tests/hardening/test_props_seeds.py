"""Properties of seed derivation and job keys."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from plan.jobs import SEED_BITS, RenderJob, derive_seed
from tests.hardening.conftest import bounded

TEXT = st.text(max_size=20)
SEED_INPUT = st.tuples(TEXT, TEXT, st.integers(1, 8), TEXT, st.integers(0, 1000))


@bounded(300)
@given(SEED_INPUT)
def test_seeds_are_63_bit_and_deterministic(args):
    seed = derive_seed(*args)
    assert 0 <= seed < 2**SEED_BITS and seed == derive_seed(*args)


@bounded(300)
@given(SEED_INPUT, SEED_INPUT)
def test_different_inputs_give_different_seeds(a, b):
    # The inputs are JSON-encoded, so no two tuples share a payload ("a-b","c" vs "a","b-c").
    assert (derive_seed(*a) == derive_seed(*b)) == (a == b)


@bounded(200)
@given(campaign=TEXT, ids=st.lists(st.text(min_size=1, max_size=8), min_size=2, max_size=6, unique=True),
       order=st.randoms(use_true_random=False))
def test_a_rows_seed_does_not_depend_on_the_other_rows_or_their_order(campaign, ids, order):
    before = {i: derive_seed(campaign, i, 1, "acme@2") for i in ids}
    shuffled = list(ids)
    order.shuffle(shuffled)
    assert {i: derive_seed(campaign, i, 1, "acme@2") for i in shuffled[1:]} == {i: before[i] for i in shuffled[1:]}


JOB = RenderJob(campaign="c", row_key="a", row=2, variant=1, aspect="1:1", width=64, height=64, prompt="p",
                negative_prompt="", model_id="m", model_revision=None, model_family="sd", scheduler="euler",
                steps=2, guidance=1.0, seed=1, style="acme", style_version=2)


@bounded(200)
@given(row=st.integers(2, 10_000), prompt=st.text(max_size=40))
def test_job_key_ignores_the_sheet_row_and_follows_the_prompt(row, prompt):
    moved = dataclasses.replace(JOB, row=row, prompt=prompt)
    assert moved.key == dataclasses.replace(JOB, prompt=prompt).key
    assert (moved.key == JOB.key) == (prompt == JOB.prompt)
    assert RenderJob.from_dict(moved.to_dict()).key == moved.key
