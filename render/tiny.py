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

from settings import load_settings

TINY_PREFIX = "brandbatch/tiny-"
TINY_REVISION = "builtin-1"
BUILD_SEED = 0


def is_tiny(model_id: str) -> bool:
    return model_id.startswith(TINY_PREFIX)


def model_cache_root() -> Path:
    """``$BRANDBATCH_MODEL_CACHE``, else ``~/.cache/brandbatch/models``."""
    return load_settings().model_cache


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


def _sd_unet(in_channels: int = 4):
    """``in_channels`` 9 is the inpainting UNet: latents + mask + masked-image latents."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=in_channels, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
    )


def _sdxl_unet(in_channels: int = 4):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=in_channels, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32, cross_attention_dim=64, norm_num_groups=1,
    )


def _build_sd():
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel

    from plan.tokens import clip_tokenizer

    unet = _sd_unet()
    vae = _vae()
    text_encoder = CLIPTextModel(_clip_text_config())
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="leading", steps_offset=1)
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(), unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False,
    )


def _build_sdxl():
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from plan.tokens import clip_tokenizer

    unet = _sdxl_unet()
    vae = _vae()
    text_encoder = CLIPTextModel(_clip_text_config())
    text_encoder_2 = CLIPTextModelWithProjection(_clip_text_config(projection=True))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="leading", steps_offset=1)
    return StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer(), unet=unet, scheduler=scheduler, force_zeros_for_empty_prompt=True,
    )


def t5_tokenizer():
    """A T5 (Unigram) tokenizer built offline: the real T5 sentencepiece vocabulary cannot be
    downloaded here, so its pieces are the 2000 most frequent words of the CLIP BPE vocabulary
    (as word starts and word parts) plus single characters; ``</s>`` ends every prompt as in T5."""
    import re

    from transformers import T5Tokenizer

    from plan.tokens import vocab_and_merges

    clip_vocab, _ = vocab_and_merges()
    words = [t[:-4] for t in clip_vocab if t.endswith("</w>") and re.fullmatch(r"[a-z]{2,}", t[:-4])][:2000]
    chars = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()&/%$#@+*=")
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [("\u2581" + w, -3.0 - i / len(words)) for i, w in enumerate(words)]
    pieces += [(w, -5.0 - i / len(words)) for i, w in enumerate(words)]
    pieces += [(c, -10.0) for c in chars] + [("\u2581" + c, -10.5) for c in chars]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def _t5_encoder(vocab_size: int, d_model: int):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=8, d_ff=37, num_layers=2,
                                   num_heads=4, relative_attention_num_buckets=8, decoder_start_token_id=0))


def _flow_vae():
    """The four-block tiny VAE without quant convs, with SD3/FLUX-style shift and scale."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8, 8, 16, 16), in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=8, sample_size=128, use_quant_conv=False, use_post_quant_conv=False,
        shift_factor=0.0609, scaling_factor=1.5035,
    )


def _build_sd3():
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    from plan.tokens import clip_tokenizer

    t5_tok = t5_tokenizer()
    transformer = SD3Transformer2DModel(
        sample_size=16, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8, num_attention_heads=4,
        caption_projection_dim=32, joint_attention_dim=64, pooled_projection_dim=64, out_channels=4,
    )
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=_flow_vae(),
        text_encoder=CLIPTextModelWithProjection(_clip_text_config(projection=True)), tokenizer=clip_tokenizer(),
        text_encoder_2=CLIPTextModelWithProjection(_clip_text_config(projection=True)), tokenizer_2=clip_tokenizer(),
        text_encoder_3=_t5_encoder(len(t5_tok), 64), tokenizer_3=t5_tok,
    )


def _flux_transformer(in_channels: int = 16):
    """Packed 2x2 latents: 4 latent channels -> 16. The Fill transformer also takes the packed
    masked-image latents (16) and the packed 8x8 mask (64 x 4 = 256): 288 in, 16 out."""
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(
        patch_size=1, in_channels=in_channels, out_channels=16, num_layers=1, num_single_layers=1,
        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        axes_dims_rope=(4, 4, 8), guidance_embeds=True,
    )


def _build_flux():
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
    from transformers import CLIPTextModel

    from plan.tokens import clip_tokenizer

    t5_tok = t5_tokenizer()
    transformer = _flux_transformer()
    return FluxPipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=_flow_vae(),
        text_encoder=CLIPTextModel(_clip_text_config()), tokenizer=clip_tokenizer(),
        text_encoder_2=_t5_encoder(len(t5_tok), 32), tokenizer_2=t5_tok,
    )


def _with_denoiser(pipeline_class, base, **denoiser):
    """An inpainting pipeline of ``pipeline_class`` from a base pipeline's components with a new
    denoiser (built after the base under the same seed: the base's text encoders and VAE, as
    real inpainting checkpoints are fine-tuned from their base model)."""
    import inspect

    params = inspect.signature(pipeline_class.__init__).parameters
    components = {k: v for k, v in base.components.items() if k in params and k not in denoiser}
    extra = {k: v for k, v in base.config.items() if k in params and k not in base.components}
    return pipeline_class(**components, **extra, **denoiser)


def _build_sd_inpaint():
    from diffusers import StableDiffusionInpaintPipeline

    return _with_denoiser(StableDiffusionInpaintPipeline, _build_sd(), unet=_sd_unet(in_channels=9))


def _build_sdxl_inpaint():
    from diffusers import StableDiffusionXLInpaintPipeline

    return _with_denoiser(StableDiffusionXLInpaintPipeline, _build_sdxl(), unet=_sdxl_unet(in_channels=9))


def _build_flux_fill():
    from diffusers import FluxFillPipeline

    return _with_denoiser(FluxFillPipeline, _build_flux(), transformer=_flux_transformer(in_channels=16 + 16 + 256))


BUILDERS = {"sd": _build_sd, "sdxl": _build_sdxl, "sd3": _build_sd3, "flux": _build_flux,
            # inpainting checkpoints for creative families (a style's expand_model)
            "sd-inpaint": _build_sd_inpaint, "sdxl-inpaint": _build_sdxl_inpaint, "flux-fill": _build_flux_fill}


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
        pipe = builder()
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()  # as from_pretrained leaves them: no dropout (T5 has 0.1)
    return pipe


def ensure_tiny(model_id: str, revision: str | None) -> Path:
    """The folder of a tiny model, building and saving it first if it is not there yet."""
    tiny_family(model_id)
    if revision not in (None, TINY_REVISION):
        raise ValueError(f"tiny model {model_id!r} has revision {TINY_REVISION!r} only, but {revision!r} was asked")
    folder = model_cache_root() / model_id.removeprefix("brandbatch/") / TINY_REVISION
    return _saved(folder, "model_index.json", lambda tmp: build_tiny(model_id).save_pretrained(
        tmp, safe_serialization=True))


def _saved(folder: Path, marker: str, write) -> Path:
    """``folder``, written first by ``write(temp folder)`` and renamed into place unless its
    ``marker`` file is there already."""
    if (folder / marker).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    quiet_progress_bars()
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        write(tmp)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / marker).is_file():  # lost a race to another process: fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


# Adapters for the tiny models: real diffusers/peft code paths, random weights.
_UNETS = {"sd": _sd_unet, "sdxl": _sdxl_unet}


def _unet_for(family: str):
    if family not in _UNETS:
        raise ValueError(f"tiny adapters exist for the families {', '.join(_UNETS)}, not {family!r}")
    return _UNETS[family]()


def ensure_tiny_ip_adapter(ip_adapter_id: str) -> Path:
    """The weights file of ``brandbatch/tiny-ip-adapter-<sd|sdxl>`` (built first if missing): an
    IP-Adapter state dict (``image_proj`` + per cross-attention ``to_k_ip``/``to_v_ip``, the layout
    diffusers' ``load_ip_adapter`` reads) sized for the tiny UNet, with a tiny CLIP image encoder
    in ``image_encoder/`` beside it, as h94/IP-Adapter lays out its files."""
    from plan.styles import TINY_IP_ADAPTER

    family = ip_adapter_id.removeprefix(TINY_IP_ADAPTER)
    _unet_for(family)  # an unknown family fails here
    folder = model_cache_root() / ip_adapter_id.removeprefix("brandbatch/") / TINY_REVISION
    return _saved(folder, "ip-adapter.safetensors", lambda tmp: _write_ip_adapter(tmp, family)) / "ip-adapter.safetensors"


def _write_ip_adapter(folder: Path, family: str) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    embed_dim = 32
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(BUILD_SEED)
        unet = _unet_for(family)
        cross = unet.config.cross_attention_dim
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=32,
            patch_size=4, projection_dim=embed_dim)).eval()
        weights = {"image_proj.proj.weight": torch.randn(4 * cross, embed_dim) * 0.1,
                   "image_proj.proj.bias": torch.zeros(4 * cross),
                   "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
        key_id = 1  # diffusers numbers the attention processors; the cross-attention ones are odd
        for name, module in unet.named_modules():
            if name.endswith("attn2"):
                hidden = module.to_q.out_features
                weights[f"ip_adapter.{key_id}.to_k_ip.weight"] = torch.randn(hidden, cross) * 0.1
                weights[f"ip_adapter.{key_id}.to_v_ip.weight"] = torch.randn(hidden, cross) * 0.1
                key_id += 2
    encoder.save_pretrained(folder / "image_encoder", safe_serialization=True)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(folder / "ip-adapter.safetensors"))


def ensure_tiny_controlnet(controlnet_id: str) -> Path:
    """The folder of ``brandbatch/tiny-controlnet-<sd|sdxl>`` (built first if missing): diffusers'
    ``ControlNetModel.from_unet`` of the tiny UNet, its zero-initialised convolutions (control image
    embedding out, residual outputs) given random weights (a trained ControlNet has learnt
    something), saved with ``save_pretrained``."""
    from plan.styles import TINY_CONTROLNET

    family = controlnet_id.removeprefix(TINY_CONTROLNET)
    _unet_for(family)  # an unknown family fails here
    folder = model_cache_root() / controlnet_id.removeprefix("brandbatch/") / TINY_REVISION
    return _saved(folder, "config.json", lambda tmp: _build_controlnet(family).save_pretrained(
        tmp, safe_serialization=True))


def _build_controlnet(family: str):
    import torch
    from diffusers import ControlNetModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(BUILD_SEED)
        controlnet = ControlNetModel.from_unet(_unet_for(family), conditioning_embedding_out_channels=(8, 8, 16, 16))
        for module in (*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                       controlnet.controlnet_cond_embedding.conv_out):  # zero-initialised: no effect yet
            torch.nn.init.normal_(module.weight, std=0.05)
    return controlnet.eval()


def save_tiny_lora(path: Path, family: str, seed: int = 1, rank: int = 2) -> None:
    """A LoRA for ``brandbatch/tiny-<family>``'s UNet (peft ``LoraConfig`` on its attention
    projections, random weights under ``seed``), saved with diffusers' LoRA save helper as one
    ``.safetensors`` file at ``path`` (the format ``load_lora_weights`` reads)."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(BUILD_SEED)
        unet = _unet_for(family)
        torch.manual_seed(seed)
        unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                    target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
        for name, param in unet.named_parameters():
            if "lora_B" in name:  # peft starts B at zero (no change); a brand model has learnt something
                torch.nn.init.normal_(param, std=0.5)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(path.parent, unet_lora_layers=get_peft_model_state_dict(unet),
                                              weight_name=path.name)


def save_tiny_embedding(path: Path, family: str, token: str, seed: int = 1) -> None:
    """A textual inversion for ``brandbatch/tiny-<family>`` (random vectors under ``seed`` for
    ``token``), saved as ``.safetensors`` in the layout ``load_textual_inversion`` reads: one
    tensor named after the token (SD), ``clip_l`` + ``clip_g`` (SDXL, one per text encoder)."""
    import torch
    from safetensors.torch import save_file

    _unet_for(family)  # an unknown family fails here
    width = _clip_text_config().hidden_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tensors = ({token: torch.randn(1, width)} if family == "sd" else
                   {"clip_l": torch.randn(1, width), "clip_g": torch.randn(1, _clip_text_config(projection=True).hidden_size)})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
