"""Makes the brand files of the example style ``nordic@2`` (run from the repository root:
``python styles/nordic/brand/make.py``); the style pins the LoRA by its sha256.

* ``house-look.safetensors``: the brand model, a LoRA for ``brandbatch/tiny-sdxl`` made with
  ``render.tiny.save_tiny_lora`` (peft, random weights): how a brand LoRA trained with
  diffusers' ``train_dreambooth_lora_sdxl.py`` plugs in, at toy size.
* ``reference.png``: the house look, a calm interior drawn in the style's palette: image-to-image
  start and IP-Adapter style reference of every row that names no ``reference_image`` of its own.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent


def reference() -> Image.Image:
    image = Image.new("RGB", (256, 256), "#F4F1EA")  # pale wall
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 176, 255, 255), fill="#D8D3CD")  # oak floor
    draw.rectangle((150, 36, 230, 136), fill="#E8EEF0", outline="#797A7E", width=4)  # window
    draw.line((190, 36, 190, 136), fill="#797A7E", width=3)
    draw.rounded_rectangle((28, 128, 150, 188), radius=14, fill="#4A5859")  # sofa
    draw.rounded_rectangle((36, 104, 142, 140), radius=12, fill="#5C6B6C")
    draw.ellipse((170, 170, 214, 190), fill="#797A7E")  # rug
    return image


def main() -> None:
    from render.tiny import save_tiny_lora

    save_tiny_lora(HERE / "house-look.safetensors", "sdxl", seed=7)
    reference().save(HERE / "reference.png", optimize=True)


if __name__ == "__main__":
    main()
