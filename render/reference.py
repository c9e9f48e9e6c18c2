"""Reference images at render time: read from the store (``inputs/<sha256>``, written at
planning), decoded under the upload rules again, and fitted to the job for image-to-image."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageOps

from plan.jobs import RenderJob
from plan.uploads import decode_image
from store.base import Store
from store.keys import input_key


@dataclass(frozen=True)
class Reference:
    """What a reference job's pipeline call needs: its reference image (RGB)."""

    image: Image.Image


def load_reference(store: Store, job: RenderJob) -> Reference:
    """Raises ``LookupError`` when the reference is not in the store, ``plan.uploads.UploadError``
    (a ``ValueError``) when its bytes are not a usable image."""
    sha256 = job.input_sha256["reference_image"]
    try:
        data = store.get(input_key(sha256))
    except FileNotFoundError:
        raise LookupError(f"the reference_image of {job.row_key} ({sha256}) is not in the store; planning writes "
                          "it (run the campaign again)") from None
    return Reference(decode_image(f"reference_image {sha256[:12]}", data).convert("RGB"))


def fit_reference(image: Image.Image, width: int, height: int) -> Image.Image:
    """The start image of an image-to-image job: centre-cropped to the job's aspect ratio and
    resized to its size (Lanczos), so the reference is never distorted."""
    return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS, centering=(0.5, 0.5))


CANNY_SIGMA = 2.0  # Gaussian blur before Canny, in pixels of the fitted reference (skimage's default is 1)


def edge_map(image: Image.Image, width: int, height: int) -> Image.Image:
    """The control image of a structure reference: Canny edges (``skimage.feature.canny``) of the
    reference fitted to the job, white on black, RGB (what canny ControlNets are trained on)."""
    import numpy as np
    from skimage.feature import canny

    grey = np.asarray(fit_reference(image, width, height).convert("L"), dtype=np.float64) / 255.0
    edges = (canny(grey, sigma=CANNY_SIGMA) * 255).astype(np.uint8)
    return Image.fromarray(edges, mode="L").convert("RGB")
