"""Versioned style templates: ``styles/<name>/v<N>.yaml``, validated on load.

A style is immutable once approved: a change is a new ``v<N+1>.yaml``. The schema is the
``Style`` model below; README.md ("Styles") documents every key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from functools import lru_cache
import reprlib
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from plan.errors import InputError, Problem
from plan.yaml_safe import load_yaml

ASPECT_RATIOS = ("1:1", "4:5", "9:16", "16:9", "1.91:1", "2:3", "3:2")
MODEL_FAMILIES = ("sd", "sdxl", "sd3", "flux")
SCHEDULERS = ("euler", "euler_a", "ddim", "dpmpp_2m", "pndm", "flow_euler")
MAX_STYLE_BYTES = 256 * 1024
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_VERSION_FILE = re.compile(r"^v([1-9][0-9]{0,5})\.ya?ml$")

Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRef(_Frozen):
    """Which diffusers model renders this style.

    ``id`` is ``brandbatch/tiny-<family>`` (built locally, offline), a Hugging Face repo id
    (loaded from the local HF cache at the pinned ``revision``), or a local folder path.
    """

    id: str = Field(min_length=1)
    revision: str | None = None
    family: Literal["sd", "sdxl", "sd3", "flux"] = "sd"
    resolution: Annotated[int, Field(ge=32, le=2048)] | None = None


class QAThresholds(_Frozen):
    min_clip_score: Unit = 0.20
    clip_uncertainty: Unit = 0.03
    palette_min_share: Unit = 0.0
    palette_delta_e: Annotated[float, Field(gt=0, le=100)] = 20.0
    min_sharpness: Annotated[float, Field(ge=0)] = 0.0
    max_clipped_share: Unit = 0.5
    min_contrast: Annotated[float, Field(ge=0)] = 4.0
    duplicate_hamming: Annotated[int, Field(ge=0, le=64)] = 4
    review_sample_rate: Unit = 0.02  # share of renders sent to review anyway (deterministic by job key)
    unsafe_labels: tuple[str, ...] = ("nudity", "violence", "gore", "weapon", "hate symbol")
    unsafe_threshold: Unit = 0.5
    # Added by qa/ (docs/qa.md explains each one). Luma is 0-255 (Rec. 601).
    blank_std: Annotated[float, Field(ge=0)] = 2.0  # luma std below this: blank/uniform image
    near_black_mean: Annotated[float, Field(ge=0, le=255)] = 12.0  # mean luma below this: near-black
    max_exact_black_share: Unit = 0.10  # share of exact (0,0,0) pixels above this: NaN artefact
    palette_uncertainty: Unit = 0.05  # palette share within +/- this of palette_min_share: review
    unsafe_uncertainty: Unit = 0.10  # unsafe probability within +/- this of unsafe_threshold: review
    duplicate_cosine: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.97  # CLIP image cosine at/above: near-duplicate
    clip_model: str | None = None  # open_clip model name (e.g. ViT-B-32, brandbatch-tiny-clip); None: no CLIP checks
    clip_weights: str | None = None  # local open_clip checkpoint file; None: random weights (smoke tests only)
    # Creative families (composition: expand): every expansion against its master.
    min_family_similarity: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.80  # CLIP image cosine to the master
    max_seam_ratio: Annotated[float, Field(gt=0)] = 3.0  # luma step across the master's border / the image's own


LOGO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
DEFAULT_MAX_UPSCALE = 1.25  # exports enlarging a render more than this use the style's upscaler
TINY_UPSCALER = "brandbatch/tiny-esrgan"
UPSCALER_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt")


@lru_cache(maxsize=64)
def _file_sha256(path: str, _mtime_ns: int, _size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file, computed again only when it changes (size or mtime)."""
    stat = path.stat()
    return _file_sha256(str(path), stat.st_mtime_ns, stat.st_size)


class Upscaler(_Frozen):
    """The super-resolution model exports use when a placement needs more than ``max_upscale``
    from its render: ``brandbatch/tiny-esrgan`` (built offline, random weights: tests and the
    example), or an ESRGAN-family weights file (loaded with spandrel), absolute or relative to the
    style's folder, pinned by its ``sha256``."""

    id: str = Field(min_length=1)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _pinned(self, info: ValidationInfo) -> Upscaler:
        if self.id == TINY_UPSCALER:
            return self
        if not self.id.lower().endswith(UPSCALER_SUFFIXES):
            raise ValueError(f"id: must be {TINY_UPSCALER} or a weights file ({', '.join(UPSCALER_SUFFIXES)}) "
                             f"but is {self.id!r}")
        if self.sha256 is None:
            raise ValueError(f"sha256: required for the weights file {self.id!r} (pins the exact weights)")
        folder = (info.context or {}).get("folder")
        if folder is not None:
            path = self.path(Path(folder))
            if not path.is_file():
                raise ValueError(f"id: no such weights file {str(path)!r}")
            actual = file_sha256(path)
            if actual != self.sha256:
                raise ValueError(f"sha256: the weights file {str(path)!r} has sha256 {actual}, not the pinned "
                                 f"{self.sha256} (a different or damaged file)")
        return self

    def path(self, folder: Path) -> Path:
        """The weights file (relative ids are relative to the style's folder)."""
        return (Path(folder) / Path(self.id).expanduser()).resolve()


ADAPTER_SUFFIXES = (".safetensors",)  # pickled .bin/.ckpt adapters are refused: loading one runs code
TINY_IP_ADAPTER = "brandbatch/tiny-ip-adapter-"  # + the family (sd, sdxl): built offline, random weights
TINY_ADAPTER_REVISION = "builtin-1"  # render.tiny.TINY_REVISION: pins a tiny IP-Adapter or ControlNet in job keys
TINY_CONTROLNET = "brandbatch/tiny-controlnet-"  # + the family (sd, sdxl): built offline, random weights
CONTROLNET_WEIGHTS = "diffusion_pytorch_model.safetensors"  # what a ControlNet folder's sha256 pins
IP_ADAPTER_FAMILIES = ("sd", "sdxl")  # diffusers' IP-Adapter support for UNet families


def _pinned_file(path: Path, sha256: str) -> str:
    """Why the file at ``path`` is not the pinned one ('' when it is)."""
    if not path.is_file():
        return f"no such file {str(path)!r}"
    actual = file_sha256(path)
    if actual != sha256:
        return (f"the file {str(path)!r} has sha256 {actual}, not the pinned {sha256} (a different or damaged "
                "file); nothing renders with it")
    return ""


class _PinnedWeights(_Frozen):
    """A weights file (absolute, or relative to the style's folder) pinned by sha256: checked when
    the style loads with its folder in the validation context."""

    KIND: ClassVar[str]
    path: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _pinned(self, info: ValidationInfo) -> _PinnedWeights:
        if not self.path.lower().endswith(ADAPTER_SUFFIXES):
            raise ValueError(f"path: must be a {'/'.join(ADAPTER_SUFFIXES)} {self.KIND} file but is {self.path!r}")
        folder = (info.context or {}).get("folder")
        if folder is not None and (problem := _pinned_file(self.resolve(Path(folder)), self.sha256)):
            raise ValueError(f"path: {problem}")
        return self

    def resolve(self, folder: Path) -> Path:
        return (Path(folder) / Path(self.path).expanduser()).resolve()


class Adapter(_PinnedWeights):
    """A brand model: a LoRA ``.safetensors`` loaded into the style's model with diffusers'
    ``load_lora_weights`` at ``scale``."""

    KIND: ClassVar[str] = "LoRA"
    scale: Annotated[float, Field(ge=-4.0, le=4.0)] = 1.0


class Embedding(_PinnedWeights):
    """A textual inversion: a learnt embedding for a new prompt ``token`` (e.g. ``<acme-look>``,
    used in ``style_tokens``), a ``.safetensors`` loaded with diffusers' ``load_textual_inversion``.
    SD files hold one tensor; SDXL files hold ``clip_l`` and ``clip_g`` (one per text encoder)."""

    KIND: ClassVar[str] = "embedding"
    token: str = Field(pattern=r"^<[a-z0-9][a-z0-9_-]{0,40}>$")


class IPAdapter(_Frozen):
    """A style reference through diffusers' IP-Adapter support (SD, SDXL): ``brandbatch/tiny-ip-adapter-<family>``
    (built offline) or an IP-Adapter ``.safetensors`` (absolute, or relative to the style's folder) with its
    CLIP image encoder in ``image_encoder/`` beside it (the layout of h94/IP-Adapter), pinned by sha256."""

    path: str = Field(min_length=1)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    scale: Annotated[float, Field(ge=0.0, le=2.0)] = 0.6

    @model_validator(mode="after")
    def _pinned(self, info: ValidationInfo) -> IPAdapter:
        if self.path.startswith(TINY_IP_ADAPTER):
            return self
        if not self.path.lower().endswith(ADAPTER_SUFFIXES) or self.sha256 is None:
            raise ValueError(f"path: must be {TINY_IP_ADAPTER}<family> or an IP-Adapter .safetensors file pinned by "
                             f"sha256 but is {self.path!r} (sha256 {self.sha256!r})")
        folder = (info.context or {}).get("folder")
        if folder is not None:
            path = self.resolve(Path(folder))
            if problem := _pinned_file(path, self.sha256):
                raise ValueError(f"path: {problem}")
            if not (path.parent / "image_encoder" / "config.json").is_file():
                raise ValueError(f"path: no CLIP image encoder folder {str(path.parent / 'image_encoder')!r} beside it")
        return self

    def resolve(self, folder: Path) -> Path:
        return (Path(folder) / Path(self.path).expanduser()).resolve()


class Structure(_Frozen):
    """A structure reference: the Canny edges of the reference image steer a ControlNet (SD, SDXL):
    ``brandbatch/tiny-controlnet-<family>`` (built offline) or a diffusers ControlNet folder
    (absolute, or relative to the style's folder) whose ``diffusion_pytorch_model.safetensors`` is
    pinned by sha256 (e.g. lllyasviel/sd-controlnet-canny, diffusers/controlnet-canny-sdxl-1.0)."""

    controlnet: str = Field(min_length=1)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    scale: Annotated[float, Field(ge=0.0, le=2.0)] = 0.8  # controlnet_conditioning_scale

    @model_validator(mode="after")
    def _pinned(self, info: ValidationInfo) -> Structure:
        if self.controlnet.startswith(TINY_CONTROLNET):
            return self
        if self.sha256 is None:
            raise ValueError(f"sha256: required for the ControlNet folder {self.controlnet!r} (the sha256 of its "
                             f"{CONTROLNET_WEIGHTS})")
        folder = (info.context or {}).get("folder")
        if folder is not None and (problem := _pinned_file(self.resolve(Path(folder)) / CONTROLNET_WEIGHTS,
                                                           self.sha256)):
            raise ValueError(f"controlnet: {problem}")
        return self

    def resolve(self, folder: Path) -> Path:
        return (Path(folder) / Path(self.controlnet).expanduser()).resolve()


def file_in_folder(value: str, suffixes: tuple[str, ...], folder: Path | None) -> str:
    """Why ``value`` is not a file path (ending in one of ``suffixes``) relative to and inside
    ``folder``; '' if it is. ``folder`` None: only the form is checked."""
    relative = Path(value)
    if relative.is_absolute() or ".." in relative.parts or relative.suffix.lower() not in suffixes:
        return f"must be a {'/'.join(suffixes)} file path relative to the folder"
    if folder is not None:
        path = (Path(folder) / relative).resolve()
        if not path.is_relative_to(Path(folder).resolve()) or not path.is_file():
            return f"no such file in {folder}"
    return ""


def _file_in_style_folder(value: str | None, suffixes: tuple[str, ...], info: ValidationInfo) -> str | None:
    """The loader passes the style's folder as validation context, so existence is checked on load."""
    problem = value and file_in_folder(value, suffixes, (info.context or {}).get("folder"))
    if problem:
        raise ValueError(problem)
    return value


Aspect = Literal["1:1", "4:5", "9:16", "16:9", "1.91:1", "2:3", "3:2"]


class ProductPlacement(_Frozen):
    """Where a row's packshot (``product_image``) sits in a render."""

    anchor: tuple[Unit, Unit] = (0.5, 0.55)  # the product's centre, x and y as 0..1 of the render
    height: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5  # the product's height, share of the render's
    shadow: bool = True  # a soft contact shadow under the product


class Product(ProductPlacement):
    """Packshots (docs/rendering.md, "Packshots"): the scene is inpainted around the product, whose
    pixels are composited back exactly; ``aspects`` overrides the placement per aspect ratio.
    Product fidelity QA: mean CIEDE2000 inside the product at most ``max_delta_e``; a failure
    sends the render to review or rejects it (``on_fail``)."""

    aspects: dict[Aspect, ProductPlacement] = {}
    max_delta_e: Annotated[float, Field(gt=0.0, le=100.0)] = 1.0
    on_fail: Literal["review", "reject"] = "review"

    def placement(self, aspect: str) -> ProductPlacement:
        return self.aspects.get(aspect, self)


class Overlay(_Frozen):
    """How headline, CTA and logo are drawn on exports; an unset key keeps the exports default
    (docs/exports.md, "Overlays")."""

    font: str | None = None  # .ttf/.otf in the style's folder; None: the bundled Geist
    weight: Annotated[int, Field(ge=1, le=1000)] | None = None  # variable fonts' wght axis
    light_colour: str | None = None  # text is light_colour or dark_colour, whichever contrasts more
    dark_colour: str | None = None
    cta_colour: str | None = None  # the call-to-action button
    align: Literal["left", "center", "right"] | None = None
    margin: Annotated[float, Field(ge=0.0, le=0.25)] | None = None  # of the shorter side, inside the safe zone

    @field_validator("light_colour", "dark_colour", "cta_colour")
    @classmethod
    def _colour(cls, v: str | None) -> str | None:
        if v is not None and not _HEX.match(v):
            raise ValueError("must be a '#RRGGBB' hex colour")
        return v.upper() if v else v

    @field_validator("font")
    @classmethod
    def _font(cls, v: str | None, info: ValidationInfo) -> str | None:
        return _file_in_style_folder(v, (".ttf", ".otf"), info)


class Style(_Frozen):
    """A validated style template (one ``v<N>.yaml``)."""

    name: str
    version: Annotated[int, Field(ge=1)]
    owner: str = Field(min_length=1)
    status: Literal["draft", "approved", "deprecated"]
    deprecated_on: dt.date | None = None
    description: str = ""
    model: ModelRef
    scheduler: Literal["euler", "euler_a", "ddim", "dpmpp_2m", "pndm", "flow_euler"] = "euler"
    steps: Annotated[int, Field(ge=1, le=150)] = 25
    guidance: Annotated[float, Field(ge=0.0, le=30.0)] = 6.0
    prompt_template: str = Field(pattern=r"^[A-Za-z0-9_.-]+\.j2$")
    style_tokens: tuple[str, ...] = ()
    negative_prompt: str = ""
    banned_terms: tuple[str, ...] = ()
    aspect_ratios: tuple[Literal["1:1", "4:5", "9:16", "16:9", "1.91:1", "2:3", "3:2"], ...] = Field(
        min_length=1
    )
    # Creative families: ``expand`` renders one master per asset variant at ``master_aspect`` and
    # outpaints it to every other aspect (with ``expand_model``, else ``model`` through its
    # inpaint pipeline); ``independent`` renders each aspect on its own. A file without the key is
    # ``independent``: that is what every style written before families meant, and an approved
    # file must mean the same after an upgrade (new versions say ``composition: expand``).
    composition: Literal["independent", "expand"] = "independent"
    master_aspect: Literal["1:1", "4:5", "9:16", "16:9", "1.91:1", "2:3", "3:2"] = "1:1"
    expand_model: ModelRef | None = None
    # Exports: a placement needing more than this enlargement of its render is first upscaled by
    # ``upscaler`` (none: resampled only, and listed as a warning).
    max_upscale: Annotated[float, Field(ge=1.0, le=16.0)] = DEFAULT_MAX_UPSCALE
    upscaler: Upscaler | None = None
    palette: tuple[str, ...] = ()
    qa: QAThresholds = QAThresholds()
    placements: tuple[str, ...] = Field(min_length=1)
    overlay: Overlay = Overlay()
    focal: tuple[Unit, Unit] | None = None  # crop centre (x, y as 0..1) for exports; None: saliency
    logo: str | None = None  # .png/.jpg/.webp in the style's folder, composited on exports
    # Brand models and references (docs/rendering.md, "Brand models (LoRA adapters)", "Reference images").
    adapters: tuple[Adapter, ...] = Field(default=(), max_length=8)
    embeddings: tuple[Embedding, ...] = Field(default=(), max_length=8)  # textual inversions (sd, sdxl)
    reference_image: str | None = None  # .png/.jpg/.webp in the style's folder; a row's reference_image replaces it
    reference_strength: Annotated[float, Field(gt=0.0, le=1.0)] | None = None  # image-to-image from the reference
    ip_adapter: IPAdapter | None = None  # style reference: the reference image steers through an IP-Adapter
    structure: Structure | None = None  # structure reference: the reference's edges steer a ControlNet
    product: Product | None = None  # rows with a product_image need it (packshots)

    @field_validator("logo")
    @classmethod
    def _logo(cls, v: str | None, info: ValidationInfo) -> str | None:
        return _file_in_style_folder(v, LOGO_SUFFIXES, info)

    @field_validator("reference_image")
    @classmethod
    def _reference_image(cls, v: str | None, info: ValidationInfo) -> str | None:
        return _file_in_style_folder(v, LOGO_SUFFIXES, info)

    def _clip_family(self, what: str, detail: str = "") -> None:
        """``what`` (a key and its feature) works only for the SD/SDXL families: say so otherwise."""
        if self.model.family not in IP_ADAPTER_FAMILIES:
            raise ValueError(f"{what} the {', '.join(IP_ADAPTER_FAMILIES)} families{detail}, "
                             f"not {self.model.family!r}")

    def _tiny_of_family(self, key: str, kind: str, path: str, prefix: str) -> None:
        """A built-in tiny ``kind`` (``prefix`` + family) must be the one of the style's family."""
        if path.startswith(prefix) and path != prefix + self.model.family:
            raise ValueError(f"{key}: the built-in tiny {kind} for family {self.model.family!r} is "
                             f"{prefix + self.model.family}, not {path!r}")

    @model_validator(mode="after")
    def _references(self) -> Style:
        if self.ip_adapter is not None:
            self._clip_family("ip_adapter: diffusers' IP-Adapter support covers")
            self._tiny_of_family("ip_adapter", "IP-Adapter", self.ip_adapter.path, TINY_IP_ADAPTER)
        if self.embeddings:
            self._clip_family("embeddings: textual inversion covers", " (CLIP text encoders)")
        if len({e.token for e in self.embeddings}) < len(self.embeddings):
            raise ValueError("embeddings: each embedding needs its own token")
        if self.structure is not None:
            self._clip_family("structure: ControlNet structure references cover")
            self._tiny_of_family("structure", "ControlNet", self.structure.controlnet, TINY_CONTROLNET)
        if self.reference_image and self.reference_strength is None and self.ip_adapter is None and \
                self.structure is None:
            raise ValueError("reference_image: a reference needs reference_strength (image-to-image), ip_adapter "
                             "(style reference) or structure (ControlNet), or several")
        return self

    @field_validator("master_aspect")
    @classmethod
    def _master_aspect(cls, v: str, info: ValidationInfo) -> str:
        aspects = info.data.get("aspect_ratios")
        if info.data.get("composition") == "expand" and aspects and v not in aspects:
            raise ValueError(f"must be one of the style's aspect_ratios ({', '.join(aspects)}) for composition: "
                             "expand")
        return v

    @field_validator("expand_model")
    @classmethod
    def _expand_model(cls, v: ModelRef | None, info: ValidationInfo) -> ModelRef | None:
        model = info.data.get("model")
        if v is not None and model is not None and v.family != model.family:
            raise ValueError(f"must be an inpainting model of the style's model family {model.family!r} (its "
                             f"latents and text encoders), but its family is {v.family!r}")
        return v

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be lowercase letters, digits, '-' or '_' (max 64)")
        return v

    @field_validator("negative_prompt")
    @classmethod
    def _negative_prompt(cls, v: str) -> str:
        from plan.tokens import MAX_TOKENS, count_tokens, most_tokens

        # a short text cannot be too long: no tokenizer (~0.15 s to build) for commands that only read styles
        if v and most_tokens(v) > MAX_TOKENS and (n := count_tokens(v)) > MAX_TOKENS:
            raise ValueError(f"is {n} CLIP tokens; the text encoder reads at most {MAX_TOKENS} and would cut "
                             "the rest (shorten it)")
        return v

    @field_validator("palette")
    @classmethod
    def _palette(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [c for c in v if not _HEX.match(c)]
        if bad:
            raise ValueError(f"colours must be '#RRGGBB' hex but got {bad}")
        return tuple(c.upper() for c in v)

    @model_validator(mode="after")
    def _status(self) -> Style:
        if self.status == "deprecated" and self.deprecated_on is None:
            raise ValueError("deprecated_on: a deprecated style needs a deprecation date (YYYY-MM-DD)")
        if self.status != "deprecated" and self.deprecated_on is not None:
            raise ValueError(f"deprecated_on: only a deprecated style has a deprecation date (status is {self.status})")
        return self


_SHORT = reprlib.Repr()  # bounded repr for error messages
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist = 2, 80, 80, 4


def _describe(err: dict) -> str:
    # Keys and values come from the file: shown bounded (a huge or deeply shared value must not
    # blow up the message) and quoted unless they are plain names.
    loc = ".".join(str(p) if re.fullmatch(r"[A-Za-z0-9_]{1,64}", str(p)) else _SHORT.repr(p)
                   for p in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] in ("missing",):
        return f"{loc}: required key is missing"
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown key (allowed keys: see README 'Styles')"
    return f"{loc}: {msg} but is {_SHORT.repr(err.get('input'))}"


def load_style_file(path: Path) -> Style:
    """Load and validate one style file; raises InputError naming file, key and value."""
    where = str(path)
    match = _VERSION_FILE.match(path.name)
    if not match:
        raise InputError([Problem(where, "style files are named v<N>.yaml (N = 1, 2, ...)", code="bad_file_name")])
    if path.stat().st_size > MAX_STYLE_BYTES:
        raise InputError([Problem(where, f"file is larger than the {MAX_STYLE_BYTES} byte cap for styles",
                                  code="file_too_large")])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError([Problem(where, f"is not UTF-8 text (byte {exc.start}): {exc.reason}",
                                  code="not_utf8")]) from None
    data = load_yaml(text, where)  # safe tags only; alias bombs and deep nesting refused
    if not isinstance(data, dict):
        raise InputError([Problem(where, f"top level must be a mapping but is {type(data).__name__}", code="bad_yaml")])
    try:
        style = Style.model_validate(data, context={"folder": path.parent})
    except ValidationError as exc:
        raise InputError([Problem(where, _describe(e), code="invalid_style") for e in exc.errors()]) from None
    problems = []
    if style.name != path.parent.name:
        problems.append(Problem(where, f"name: must match its folder {path.parent.name!r} but is {style.name!r}",
                                code="invalid_style"))
    if style.version != int(match.group(1)):
        problems.append(Problem(where, f"version: must match the file name ({match.group(1)}) but is {style.version}",
                                code="invalid_style"))
    if problems:
        raise InputError(problems)
    return style


class StyleLibrary:
    """The styles under one directory, loaded lazily and cached per (name, version)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._cache: dict[tuple[str, int], Style] = {}
        self._versions: dict[str, list[int]] = {}  # listed once per library, like the styles

    def path(self, name: str, version: int) -> Path:
        return self.root / name / f"v{version}.yaml"

    def versions(self, name: str) -> list[int]:
        if name not in self._versions:
            folder = self.root / name
            self._versions[name] = [] if not _NAME.match(name) or not folder.is_dir() else sorted(
                int(m.group(1)) for p in folder.iterdir() if (m := _VERSION_FILE.match(p.name)))
        return self._versions[name]

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self.versions(p.name))

    def get(self, name: str, version: int) -> Style:
        key = (name, version)
        if key not in self._cache:
            self._cache[key] = load_style_file(self.path(name, version))
        return self._cache[key]


def parse_style_ref(text: str) -> tuple[str, int]:
    """``name@version`` -> (name, version); ValueError says what is allowed."""
    name, sep, version = text.strip().partition("@")
    if not sep or not _NAME.match(name) or not version.isdigit() or int(version) < 1:
        raise ValueError(f"must be name@version, e.g. acme@2, but is {text!r}")
    return name, int(version)
