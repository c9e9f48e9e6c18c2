"""Model registry: a style's model id + revision -> a loaded diffusers pipeline.

* ``brandbatch/tiny-<family>`` (sd, sdxl, sd3, flux; revision ``builtin-1``): built locally
  (``render.tiny``).
* A local folder holding a diffusers ``model_index.json``.
* A Hugging Face repo id, loaded from the local HF cache only (``local_files_only=True``), at a
  pinned commit (40 hex digits): an unpinned revision (none, ``main``, a branch) is refused.

Pipelines are loaded once per process and build (``load_pipeline`` is cached) and never
mutated after it: ``pipeline_for`` returns a view sharing the weights with the job's scheduler.
A build is a model plus the style's LoRA adapters (``load_lora_weights`` through peft, each file
checked against its pinned sha256 before anything is loaded, and loaded from the checked bytes)
and IP-Adapter (``load_ip_adapter``, ``set_ip_adapter_scale``): jobs of one build share one
pipeline, whatever their scheduler, size or image-to-image strength. A structure reference's
ControlNet is loaded beside it (``load_controlnet``, pinned the same way) and joins the view.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from render.devices import DeviceSettings
from render.tiny import BUILDERS, TINY_PREFIX, ensure_tiny, is_tiny, quiet_progress_bars

_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")

# style scheduler name -> (diffusers class, extra config); flow-matching families only take flow_euler.
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "pndm": ("PNDMScheduler", {}),
    "flow_euler": ("FlowMatchEulerDiscreteScheduler", {}),
}
FLOW_FAMILIES = ("sd3", "flux")
FLOW_SCHEDULERS = ("flow_euler", "euler")  # flow-matching models: both mean FlowMatchEulerDiscreteScheduler


class ModelError(Exception):
    """A model that cannot be found or loaded; the message names id, revision and path."""


def resolve_model(model_id: str, revision: str | None) -> tuple[Path | str, str | None]:
    """(folder or HF repo id, revision to load); raises ModelError saying what is allowed."""
    if is_tiny(model_id):
        try:
            return ensure_tiny(model_id, revision), None
        except ValueError as exc:
            raise ModelError(str(exc)) from None
    path = Path(model_id).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelError(f"model folder {str(path)!r} has no model_index.json (not a diffusers pipeline folder)")
        return path, None
    if problem := pinning_problem(model_id, revision):
        raise ModelError(problem)
    return model_id, revision


# diffusers pipeline class (model_index.json ``_class_name``) -> the style model family it serves
PIPELINE_FAMILIES = {
    "StableDiffusionPipeline": "sd", "StableDiffusionInpaintPipeline": "sd",
    "StableDiffusionXLPipeline": "sdxl", "StableDiffusionXLInpaintPipeline": "sdxl",
    "StableDiffusion3Pipeline": "sd3", "FluxPipeline": "flux", "FluxFillPipeline": "flux",
}


@lru_cache(maxsize=32)  # asked once per planned row
def model_family(model_id: str, revision: str | None = None) -> str | None:
    """The family (sd, sdxl, sd3, flux) of a model, read cheaply: a built-in tiny model's name, or
    a folder's ``model_index.json`` pipeline class; None when it cannot be told without loading it
    (a Hugging Face repo id, an unknown pipeline class)."""
    import json

    if is_tiny(model_id):
        family = model_id.removeprefix(TINY_PREFIX)
        return family.split("-", 1)[0] if family in BUILDERS else None
    index = Path(model_id).expanduser() / "model_index.json"
    try:
        return PIPELINE_FAMILIES.get(json.loads(index.read_text(encoding="utf-8")).get("_class_name", ""))
    except (OSError, ValueError, AttributeError):
        return None


def pinning_problem(model_id: str, revision: str | None) -> str:
    """Why ``model_id``/``revision`` is not a pinned model ('' when it is): built-in tiny models
    and folders are; a Hugging Face repo id needs a commit hash. Cheap (no model loading), so
    validation can call it for every approved style."""
    if is_tiny(model_id) or Path(model_id).expanduser().is_dir():
        return ""
    if model_id.startswith(("/", ".", "~")) or not _HF_ID.match(model_id):
        return (f"model {model_id!r} is neither a folder on this machine, a Hugging Face repo id "
                f"(owner/name) nor a built-in tiny model ({', '.join(TINY_PREFIX + f for f in BUILDERS)})")
    if revision is None or not _COMMIT.match(revision):
        return (f"model {model_id!r}: revision must be pinned to a 40-hex-digit commit hash "
                f"but is {revision!r} (branches such as 'main' change under you)")
    return ""


@lru_cache(maxsize=2)
def load_pipeline(model_id: str, revision: str | None, settings: DeviceSettings,
                  adapters: tuple[tuple[str, str, float], ...] = (), ip_adapter: tuple[str, str, float] | None = None,
                  embeddings: tuple[tuple[str, str, str], ...] = ()):
    """The pipeline for a build (model, LoRA ``adapters`` as (file, sha256, scale), ``ip_adapter`` as
    (file or tiny id, sha256 or revision, scale), textual inversion ``embeddings`` as (file, sha256,
    token)), loaded once per process and settings (the two most recent kept). A pinned file whose
    bytes changed raises ``ModelError`` before any loading."""
    from diffusers import DiffusionPipeline
    from huggingface_hub.constants import HF_HUB_CACHE

    quiet_progress_bars()
    source, pinned = resolve_model(model_id, revision)
    # every pinned file is read and checked before anything is loaded; the checked bytes are loaded
    lora_files = [pinned_bytes("LoRA adapter", path, sha256) for path, sha256, _scale in adapters]
    embedding_files = [pinned_bytes("textual inversion", path, sha256) for path, sha256, _token in embeddings]
    try:
        pipe = DiffusionPipeline.from_pretrained(source, revision=pinned, local_files_only=True,
                                                 dtype=settings.torch_dtype())
    except (OSError, ValueError) as exc:
        where = (f"folder {str(source)!r}" if isinstance(source, Path)
                 else f"the Hugging Face cache {HF_HUB_CACHE!r} at revision {pinned!r}")
        raise ModelError(f"model {model_id!r} could not be loaded from {where}: {exc}") from None
    if adapters:
        _load_adapters(pipe, model_id, adapters, lora_files)
    if embeddings:
        _load_embeddings(pipe, model_id, embeddings, embedding_files)
    if ip_adapter is not None:
        _load_ip_adapter(pipe, model_id, ip_adapter)
    apply_settings(pipe, settings)
    return pipe


def pinned_bytes(what: str, path: str, sha256: str) -> bytes:
    """The bytes of ``path`` when their sha256 is ``sha256``; else ``ModelError`` naming both hashes."""
    import hashlib

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"{what} {path} cannot be read: {exc.strerror or exc}; nothing renders with it") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ModelError(f"{what} {path} has sha256 {actual}, but the style pins {sha256} (a different or damaged "
                         "file); nothing renders with it")
    return data


def _load_adapters(pipe, model_id: str, adapters: tuple[tuple[str, str, float], ...], files: list[bytes]) -> None:
    """Each LoRA loaded from its checked bytes (``files``) and weighted by its scale."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    names = [f"adapter_{i}" for i in range(len(adapters))]
    for name, data, (path, _sha256, _scale) in zip(names, files, adapters):
        try:
            pipe.load_lora_weights(load(data), adapter_name=name)
        except (SafetensorError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelError(f"LoRA adapter {path} does not fit model {model_id!r}: {type(exc).__name__}: "
                             f"{exc}") from None
        if not any(name in loaded for loaded in pipe.get_list_adapters().values()):  # no key matched: nothing loaded
            raise ModelError(f"LoRA adapter {path} does not fit model {model_id!r}: none of its weights name a "
                             "layer of the model (made for another model family?)")
    pipe.set_adapters(names, adapter_weights=[scale for _path, _sha256, scale in adapters])


def _load_embeddings(pipe, model_id: str, embeddings: tuple[tuple[str, str, str], ...], files: list[bytes]) -> None:
    """Each embedding loaded from its checked bytes (``files``) for its token: one tensor for the
    one text encoder of SD, ``clip_l`` and ``clip_g`` for SDXL's two."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    for data, (path, _sha256, token) in zip(files, embeddings):
        try:
            tensors = load(data)
            if getattr(pipe, "text_encoder_2", None) is not None:  # SDXL: one embedding per text encoder
                pipe.load_textual_inversion(tensors["clip_l"], token=token, text_encoder=pipe.text_encoder,
                                            tokenizer=pipe.tokenizer)
                pipe.load_textual_inversion(tensors["clip_g"], token=token, text_encoder=pipe.text_encoder_2,
                                            tokenizer=pipe.tokenizer_2)
            else:
                pipe.load_textual_inversion(tensors, token=token)
        except (SafetensorError, ValueError, KeyError, RuntimeError, AttributeError) as exc:
            raise ModelError(f"textual inversion {path} does not fit model {model_id!r}: {type(exc).__name__}: "
                             f"{exc}") from None


def _load_ip_adapter(pipe, model_id: str, ip_adapter: tuple[str, str, float]) -> None:
    from render.tiny import TINY_REVISION, ensure_tiny_ip_adapter

    source, pin, scale = ip_adapter
    if source.startswith(TINY_PREFIX):
        if pin != TINY_REVISION:
            raise ModelError(f"tiny IP-Adapter {source!r} has revision {TINY_REVISION!r} only, not {pin!r}")
        path = ensure_tiny_ip_adapter(source)
    else:
        path = Path(source)
        pinned_bytes("IP-Adapter", source, pin)
    if not hasattr(pipe, "load_ip_adapter"):
        raise ModelError(f"model {model_id!r} is a {type(pipe).__name__}, which takes no IP-Adapter")
    try:
        pipe.load_ip_adapter(str(path.parent), subfolder="", weight_name=path.name, local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"IP-Adapter {source} does not fit model {model_id!r}: {type(exc).__name__}: {exc}") from None
    pipe.set_ip_adapter_scale(scale)


def _load(model_id: str, revision: str | None, settings: DeviceSettings, adapters: tuple, ip_adapter: tuple | None,
          embeddings: tuple = ()):
    """``load_pipeline`` called the same way for the same build (its cache keys on the arguments given)."""
    if embeddings:
        return load_pipeline(model_id, revision, settings, tuple(adapters), ip_adapter, tuple(embeddings))
    if adapters or ip_adapter is not None:
        return load_pipeline(model_id, revision, settings, tuple(adapters), ip_adapter)
    return load_pipeline(model_id, revision, settings)


def apply_settings(pipe, settings: DeviceSettings) -> None:
    """Device placement and the opt-in memory/speed options, once, right after loading."""
    if settings.cpu_offload:
        pipe.enable_model_cpu_offload(device=settings.device)
    elif settings.kind != "cpu":
        pipe.to(settings.device)
    if settings.vae_tiling:
        pipe.vae.enable_tiling()
    if settings.vae_slicing:
        pipe.vae.enable_slicing()
    if settings.compile:
        denoiser = pipe.unet if hasattr(pipe, "unet") else pipe.transformer
        denoiser.compile(fullgraph=False)
    pipe.set_progress_bar_config(disable=True)


def make_scheduler(name: str, family: str, base_config: dict):
    """The named scheduler, configured from the model's own scheduler config."""
    import diffusers

    if name not in SCHEDULERS:
        raise ModelError(f"scheduler must be one of {', '.join(SCHEDULERS)} but is {name!r}")
    allowed = FLOW_SCHEDULERS if family in FLOW_FAMILIES else tuple(s for s in SCHEDULERS if s != "flow_euler")
    if name not in allowed:
        raise ModelError(f"scheduler {name!r} does not fit model family {family!r}; allowed: {', '.join(allowed)}")
    class_name, extra = SCHEDULERS["flow_euler" if family in FLOW_FAMILIES else name]
    return getattr(diffusers, class_name).from_config(base_config, **extra)


# text-to-image pipeline class -> the inpainting pipeline that reuses its weights (4-channel
# denoisers: the known area is blended back into the latents each step). Inpainting checkpoints
# (9-channel UNet, FLUX Fill) load as their own inpainting class and are used as they are.
INPAINT_CLASSES = {
    "StableDiffusionPipeline": "StableDiffusionInpaintPipeline",
    "StableDiffusionXLPipeline": "StableDiffusionXLInpaintPipeline",
    "StableDiffusion3Pipeline": "StableDiffusion3InpaintPipeline",
    "FluxPipeline": "FluxInpaintPipeline",
}
INPAINT_PIPELINES = (*INPAINT_CLASSES.values(), "FluxFillPipeline")


def _view(pipe, cls, family: str, scheduler: str, **extra):
    """``cls`` over the shared loaded weights of ``pipe`` (and ``extra`` components, e.g. a
    ControlNet) with its own scheduler; built with the constructor (what ``from_pipe`` does,
    without its cast to fp32)."""
    import inspect

    params = inspect.signature(cls.__init__).parameters
    config = {k: v for k, v in pipe.config.items() if k in params and k not in pipe.components}
    components = {k: v for k, v in pipe.components.items() if k in params}
    components["scheduler"] = make_scheduler(scheduler, family, pipe.scheduler.config)
    view = cls(**components, **config, **extra)
    view.set_progress_bar_config(disable=True)
    return view


# text-to-image pipeline class -> its image-to-image pipeline over the same weights (references).
IMG2IMG_CLASSES = {
    "StableDiffusionPipeline": "StableDiffusionImg2ImgPipeline",
    "StableDiffusionXLPipeline": "StableDiffusionXLImg2ImgPipeline",
    "StableDiffusion3Pipeline": "StableDiffusion3Img2ImgPipeline",
    "FluxPipeline": "FluxImg2ImgPipeline",
}


# (text-to-image pipeline class, image-to-image) -> its ControlNet pipeline (structure references).
CONTROLNET_CLASSES = {
    ("StableDiffusionPipeline", False): "StableDiffusionControlNetPipeline",
    ("StableDiffusionPipeline", True): "StableDiffusionControlNetImg2ImgPipeline",
    ("StableDiffusionXLPipeline", False): "StableDiffusionXLControlNetPipeline",
    ("StableDiffusionXLPipeline", True): "StableDiffusionXLControlNetImg2ImgPipeline",
}


def pipeline_for(model_id: str, revision: str | None, family: str, scheduler: str, settings: DeviceSettings, *,
                 adapters: tuple = (), ip_adapter: tuple | None = None, image_to_image: bool = False,
                 controlnet: tuple | None = None, embeddings: tuple = ()):
    """A pipeline view for one job group: the shared loaded weights of its build (``load_pipeline``)
    plus its own scheduler; ``image_to_image``: the family's image-to-image pipeline
    (``IMG2IMG_CLASSES``); ``controlnet`` ((ControlNet, sha256 or revision)): its ControlNet
    pipeline (``CONTROLNET_CLASSES``) with that ControlNet (``load_controlnet``)."""
    import diffusers

    pipe = _load(model_id, revision, settings, adapters, ip_adapter, embeddings)
    name = type(pipe).__name__
    if controlnet is not None:
        if (name, image_to_image) not in CONTROLNET_CLASSES:
            raise ModelError(f"model {model_id!r} is a {name}, which has no ControlNet pipeline for structure "
                             f"references; allowed: {', '.join(dict.fromkeys(n for n, _ in CONTROLNET_CLASSES))}")
        return _view(pipe, getattr(diffusers, CONTROLNET_CLASSES[name, image_to_image]), family, scheduler,
                     controlnet=load_controlnet(*controlnet, settings))
    if not image_to_image:
        return _view(pipe, type(pipe), family, scheduler)
    if name not in IMG2IMG_CLASSES:
        raise ModelError(f"model {model_id!r} is a {name}, which has no image-to-image pipeline for reference "
                         f"images; allowed: {', '.join(IMG2IMG_CLASSES)}")
    return _view(pipe, getattr(diffusers, IMG2IMG_CLASSES[name]), family, scheduler)


@lru_cache(maxsize=2)
def load_controlnet(source: str, pin: str, settings: DeviceSettings):
    """A ControlNet, loaded once per process: ``brandbatch/tiny-controlnet-<family>`` (pin: its
    revision) or a diffusers ControlNet folder whose weights file has sha256 ``pin`` (checked first)."""
    from diffusers import ControlNetModel

    from plan.styles import CONTROLNET_WEIGHTS
    from render.tiny import TINY_REVISION, ensure_tiny_controlnet

    if source.startswith(TINY_PREFIX):
        if pin != TINY_REVISION:
            raise ModelError(f"tiny ControlNet {source!r} has revision {TINY_REVISION!r} only, not {pin!r}")
        folder = ensure_tiny_controlnet(source)
    else:
        folder = Path(source)
        pinned_bytes("ControlNet", str(folder / CONTROLNET_WEIGHTS), pin)
    try:
        controlnet = ControlNetModel.from_pretrained(folder, local_files_only=True, dtype=settings.torch_dtype())
    except (OSError, ValueError) as exc:
        raise ModelError(f"ControlNet {source} could not be loaded: {exc}") from None
    return controlnet.to(settings.device).eval()


def inpaint_pipeline_for(model_id: str, revision: str | None, family: str, scheduler: str,
                         settings: DeviceSettings, *, adapters: tuple = (), embeddings: tuple = ()):
    """The inpainting view of a model (with its LoRA ``adapters``) for expansions: an inpainting
    checkpoint as it is, a text-to-image model through its family's inpainting pipeline
    (``INPAINT_CLASSES``)."""
    import diffusers

    pipe = _load(model_id, revision, settings, adapters, None, embeddings)
    name = type(pipe).__name__
    if name not in INPAINT_PIPELINES and name not in INPAINT_CLASSES:
        raise ModelError(f"model {model_id!r} is a {name}, which has no inpainting pipeline for expansions; "
                         f"allowed: {', '.join(INPAINT_CLASSES)} or an inpainting checkpoint "
                         f"({', '.join(INPAINT_PIPELINES)})")
    if name == "StableDiffusion3Pipeline" and pipe.transformer.config.in_channels not in (16, 33):
        raise ModelError(f"model {model_id!r} cannot expand: diffusers' StableDiffusion3InpaintPipeline needs a "
                         f"transformer with 16 (or 33) latent channels, this one has "
                         f"{pipe.transformer.config.in_channels} (the tiny sd3 model); use composition: independent")
    cls = type(pipe) if name in INPAINT_PIPELINES else getattr(diffusers, INPAINT_CLASSES[name])
    return _view(pipe, cls, family, scheduler)
