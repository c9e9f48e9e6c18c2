"""On a CUDA device (opt-in: ``-m gpu``): bf16/fp16 renders and batch invariance there too.

Written without a GPU at hand: these tests were not run in the session that wrote them."""

from __future__ import annotations

import pytest
import torch
from tests.render.jobs import make_job

from render.devices import device_settings
from render.stage import render_missing
from store.keys import render_key
from store.local import LocalStore

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("family", ["sd", "sdxl", "sd3", "flux"])
def test_cuda_renders_in_half_precision_and_is_batch_invariant(tmp_path, family):
    scheduler = "flow_euler" if family in ("sd3", "flux") else "euler"
    jobs = [make_job(i, family, scheduler=scheduler) for i in range(4)]
    settings = device_settings("cuda")
    assert settings.dtype in ("bfloat16", "float16")
    one, four = LocalStore(tmp_path / "one"), LocalStore(tmp_path / "four")
    assert render_missing(jobs, one, batch_size=1, settings=settings).failed == []
    assert render_missing(jobs[::-1], four, batch_size=4, settings=settings).failed == []
    assert all(one.get(render_key(j.key)) == four.get(render_key(j.key)) for j in jobs)
