"""Rendering: diffusers pipelines (tiny offline models, local folders, pinned HF cache) and batching.

``render.stage.render_missing`` is the entry point; nothing here imports torch at import time.
"""
