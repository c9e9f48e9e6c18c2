"""CLIP checks with open-clip-torch: prompt-image score, zero-shot safety, image embeddings.

The style names the model (``qa.clip_model``: an open_clip model name, including
``brandbatch-tiny-clip`` from ``qa/clip_models/``) and its weights (``qa.clip_weights``: a
local checkpoint file; none = random weights under a fixed seed, for smoke tests only).
Image embeddings are computed one image at a time (the same bits in any batch: QA row by row
gives the campaign's scores) and cached in the store at
``qa/embeddings/<model-tag>/<job_key>.npy``. torch and open_clip are imported inside functions.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from plan.jobs import RenderJob
from plan.styles import Style
from qa.image import decode
from qa.verdicts import Finding, band
from store.base import Store
from store.keys import embedding_key, render_key

LOCAL_CONFIGS = Path(__file__).resolve().parent / "clip_models"
BATCH_SIZE = 32
RANDOM_INIT_SEED = 0


@dataclass
class ClipModel:
    """A loaded open_clip model with its preprocessing and tokenizer (one per QA run)."""

    tag: str  # names the weights in cache keys: "<model>@random" or "<model>@<sha256[:16]>"
    model: Any
    preprocess: Any
    tokenizer: Any

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, D) float32 unit vectors, each computed alone: the bits of a vector never depend on
        the others of the call (a run that checks row by row, as ``pipeline.stream``, gets the
        scores of one that checks the whole campaign at once)."""
        import torch

        with torch.inference_mode():
            return np.concatenate([self.model.encode_image(self.preprocess(img).unsqueeze(0), normalize=True)
                                   .float().numpy() for img in images])

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) float32 unit vectors, each computed alone (as ``embed_images``)."""
        import torch

        with torch.inference_mode():
            tokens = self.tokenizer(list(texts))
            return np.concatenate([self.model.encode_text(row.unsqueeze(0), normalize=True).float().numpy()
                                   for row in tokens])


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_clip(name: str, weights: str | None = None) -> ClipModel:
    """Build the open_clip model ``name`` from local files only (no download); built once per
    process for the same name and weights file (its size and mtime: a replaced file is read again),
    so QA run row by row (``pipeline.stream``) does not build it for every row."""
    stamp = None
    if weights is not None and Path(weights).is_file():
        stat = Path(weights).stat()
        stamp = (stat.st_size, stat.st_mtime_ns)
    return _build_clip(name, weights, stamp)


@functools.lru_cache(maxsize=4)
def _build_clip(name: str, weights: str | None, _stamp: tuple[int, int] | None) -> ClipModel:
    import open_clip
    import torch

    if name not in open_clip.list_models():
        open_clip.add_model_config(LOCAL_CONFIGS)
    if name not in open_clip.list_models():
        raise ValueError(f"qa.clip_model must be an open_clip model name (e.g. ViT-B-32 or brandbatch-tiny-clip) "
                         f"but is {name!r}")
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"qa.clip_weights must be a local checkpoint file but {weights!r} does not exist")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=weights)
    model.eval()
    safe_name = re.sub(r"[^A-Za-z0-9._-]", "-", name)
    tag = f"{safe_name}@random" if weights is None else f"{safe_name}@{_file_sha256(Path(weights))[:16]}"
    return ClipModel(tag=tag, model=model, preprocess=preprocess, tokenizer=open_clip.get_tokenizer(name))


def _npy(vector: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(vector, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def _cached(store: Store, key: str) -> np.ndarray | None:
    try:
        return np.load(io.BytesIO(store.get(key)), allow_pickle=False)
    except Exception:  # absent or unreadable: compute it again
        return None


def image_embeddings(jobs: Sequence[RenderJob], store: Store, clip: ClipModel,
                     batch_size: int = BATCH_SIZE) -> dict[str, np.ndarray]:
    """Job key -> unit image embedding, from the store's cache or computed in batches (and cached)."""
    out: dict[str, np.ndarray] = {}
    todo: list[RenderJob] = []
    for job in {j.key: j for j in jobs}.values():
        cached = _cached(store, embedding_key(clip.tag, job.key))
        if cached is None:
            todo.append(job)
        else:
            out[job.key] = cached
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        vectors = clip.embed_images([decode(store.get(render_key(j.key))) for j in batch])
        for job, vector in zip(batch, vectors, strict=True):
            store.put(embedding_key(clip.tag, job.key), _npy(vector), content_type="application/octet-stream",
                      overwrite=True)
            out[job.key] = vector
    return out


def judge(image: np.ndarray, prompt: np.ndarray, labels: np.ndarray, label_names: Sequence[str],
          logit_scale: float, style: Style) -> Finding:
    """CLIP score (cosine of image and prompt, floored at 0) against ``min_clip_score``, and
    zero-shot safety: the probability mass on the unsafe labels (softmax over the prompt and
    the labels) against ``unsafe_threshold``; each with its uncertainty band."""
    t = style.qa
    score = max(float(image @ prompt), 0.0)
    fail: list[str] = []
    review: list[str] = []
    details: dict[str, str] = {}
    clip_band = band(score, t.min_clip_score, t.clip_uncertainty)
    fail += ["low_clip_score"] if clip_band == "fail" else []
    review += ["clip_uncertain"] if clip_band == "uncertain" else []
    scores = {"clip_score": score}
    if len(label_names):
        logits = logit_scale * (np.vstack([prompt, labels]) @ image)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        unsafe = float(probs[1:].sum())
        scores["unsafe_probability"] = unsafe
        safety = band(unsafe, t.unsafe_threshold, t.unsafe_uncertainty, higher_is_better=False)
        fail += ["unsafe"] if safety == "fail" else []
        review += ["unsafe_uncertain"] if safety == "uncertain" else []
        if safety != "pass":
            details["unsafe_label"] = label_names[int(np.argmax(probs[1:]))]
    return Finding(fail=tuple(fail), review=tuple(review), scores=scores, details=details)


@dataclass
class ClipOutcome:
    findings: dict[str, Finding]
    embeddings: dict[str, np.ndarray]
    errors: dict[str, str]  # job key -> error message (the job goes to review)


def clip_checks(jobs: Sequence[RenderJob], store: Store, styles: Mapping[str, Style]) -> ClipOutcome:
    """CLIP findings and image embeddings for every job whose style names a CLIP model; one
    model load per (model, weights). A failure affects only the jobs it touched."""
    outcome = ClipOutcome({}, {}, {})
    groups: dict[tuple[str, str | None], list[RenderJob]] = {}
    for job in jobs:
        t = styles[f"{job.style}@{job.style_version}"].qa
        if t.clip_model:
            groups.setdefault((t.clip_model, t.clip_weights), []).append(job)
    for (name, weights), members in groups.items():
        try:
            clip = load_clip(name, weights)
        except Exception as exc:
            outcome.errors.update({j.key: f"{type(exc).__name__}: {exc}"[:500] for j in members})
            continue
        label_vectors: dict[tuple[str, ...], np.ndarray] = {}
        for start in range(0, len(members), BATCH_SIZE):
            batch = members[start:start + BATCH_SIZE]
            try:
                embeddings = image_embeddings(batch, store, clip)
                prompts = clip.embed_texts([j.prompt for j in batch])
                for job, prompt in zip(batch, prompts, strict=True):
                    style = styles[f"{job.style}@{job.style_version}"]
                    names = style.qa.unsafe_labels
                    if names not in label_vectors:
                        label_vectors[names] = clip.embed_texts(names) if names else np.zeros((0, prompts.shape[1]))
                    outcome.findings[job.key] = judge(embeddings[job.key], prompt, label_vectors[names], names,
                                                      clip.logit_scale, style)
                outcome.embeddings.update(embeddings)
            except Exception as exc:
                outcome.errors.update({j.key: f"{type(exc).__name__}: {exc}"[:500] for j in batch})
    return outcome
