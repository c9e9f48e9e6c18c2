"""Tiny offline models: real diffusers architectures with random weights, built from configs.

``brandbatch/tiny-<family>`` at revision ``builtin-1`` is built under a fixed torch seed (as
diffusers' own tests build their tiny components), saved with ``save_pretrained`` into a
normal diffusers folder, written atomically (temp dir + rename), then loaded from that folder
like any other local model. Images are noise-like; timing and determinism are real.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

TINY_PREFIX = "brandbatch/tiny-"
TINY_REVISION = "builtin-1"
BUILD_SEED = 0


def is_tiny(model_id: str) -> bool:
    return model_id.startswith(TINY_PREFIX)


def model_cache_root() -> Path:
    """``$BRANDBATCH_MODEL_CACHE``, else ``~/.cache/brandbatch/models``."""
    env = os.environ.get("BRANDBATCH_MODEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "brandbatch" / "models"


def quiet_progress_bars() -> None:
    """No tqdm bars from diffusers/transformers while saving and loading (logs stay readable)."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def _clip_text_config(projection: bool = False):
    from transformers import CLIPTextConfig

    from plan.tokens import MAX_TOKENS, clip_tokenizer

    tok = clip_tokenizer()
    return CLIPTextConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=MAX_TOKENS, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, projection_dim=32 if projection else 512, layer_norm_eps=1e-5,
    )


def _vae():
    """Four blocks, so the VAE scale factor is 8 as in real SD/SDXL (128 px -> 16x16 latents)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8, 8, 16, 16), in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=8, sample_size=128,
    )


def _build_sd():
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    from plan.tokens import clip_tokenizer

    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
    )
    vae = _vae()
    text_encoder = CLIPTextModel(_clip_text_config())
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="leading", steps_offset=1)
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(), unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False,
    )


def _build_sdxl():
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from plan.tokens import clip_tokenizer

    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32, cross_attention_dim=64, norm_num_groups=1,
    )
    vae = _vae()
    text_encoder = CLIPTextModel(_clip_text_config())
    text_encoder_2 = CLIPTextModelWithProjection(_clip_text_config(projection=True))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="leading", steps_offset=1)
    return StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer(), unet=unet, scheduler=scheduler, force_zeros_for_empty_prompt=True,
    )


BUILDERS = {"sd": _build_sd, "sdxl": _build_sdxl}


def tiny_family(model_id: str) -> str:
    family = model_id.removeprefix(TINY_PREFIX)
    if family not in BUILDERS:
        allowed = ", ".join(TINY_PREFIX + f for f in BUILDERS)
        raise ValueError(f"unknown tiny model {model_id!r}; built-in tiny models are {allowed}")
    return family


def build_tiny(model_id: str):
    """A fresh tiny pipeline (fp32, CPU) with weights fixed by ``BUILD_SEED``."""
    import torch

    builder = BUILDERS[tiny_family(model_id)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(BUILD_SEED)
        return builder()


def ensure_tiny(model_id: str, revision: str | None) -> Path:
    """The folder of a tiny model, building and saving it first if it is not there yet."""
    tiny_family(model_id)
    if revision not in (None, TINY_REVISION):
        raise ValueError(f"tiny model {model_id!r} has revision {TINY_REVISION!r} only, but {revision!r} was asked")
    folder = model_cache_root() / model_id.removeprefix("brandbatch/") / TINY_REVISION
    if (folder / "model_index.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    quiet_progress_bars()
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        build_tiny(model_id).save_pretrained(tmp, safe_serialization=True)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / "model_index.json").is_file():  # lost a race to another process: fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
