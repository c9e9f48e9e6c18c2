"""Rendering: diffusers pipelines for planned jobs, batched, deterministic, resumable.

* ``render.stage``: ``render_missing`` (the entry point), ``RenderReport``, ``RenderFailure``.
* ``render.registry``: model id + revision -> loaded pipeline (tiny, local folder, pinned HF cache).
* ``render.tiny``: the tiny offline models ``brandbatch/tiny-{sd,sdxl,sd3,flux}`` and the inpainting
  ``brandbatch/tiny-{sd-inpaint,sdxl-inpaint,flux-fill}``.
* ``render.devices``: device, dtype, threads and the opt-in options.
* ``render.expand``: where a master sits on an expansion's canvas, the mask, the paste-back.
* ``render.product``: where a packshot sits in a render, the inpainting mask around it, the composite.
* ``render.upscale``: the exports' super-resolution model (spandrel, sha256-pinned weights).

docs/rendering.md is the user documentation. Nothing here imports torch at import time.
"""
