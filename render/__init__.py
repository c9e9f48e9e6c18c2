"""Rendering: diffusers pipelines for planned jobs, batched, deterministic, resumable.

* ``render.stage``: ``render_missing`` (the entry point), ``RenderReport``, ``RenderFailure``.
* ``render.registry``: model id + revision -> loaded pipeline (tiny, local folder, pinned HF cache).
* ``render.tiny``: the tiny offline models ``brandbatch/tiny-{sd,sdxl,sd3,flux}``.
* ``render.devices``: device, dtype, threads and the opt-in options.

docs/rendering.md is the user documentation. Nothing here imports torch at import time.
"""
