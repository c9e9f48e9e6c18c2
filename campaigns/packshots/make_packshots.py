"""Draws the example campaign's packshot, ``acme-bottle.png``: an Acme water bottle cut out on a
transparent background (RGBA, anti-aliased edges), the way a studio delivers a product shot.
Deterministic (Pillow only): ``python campaigns/packshots/make_packshots.py`` writes the same
bytes again; tests/plan/test_uploads.py checks the committed file against it."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

SCALE = 4  # drawn at 4x, then reduced: soft, anti-aliased alpha edges


def acme_bottle() -> Image.Image:
    width, height = 160, 400
    big = Image.new("RGBA", (width * SCALE, height * SCALE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(big)

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
        return round(x0 * SCALE), round(y0 * SCALE), round(x1 * SCALE), round(y1 * SCALE)

    draw.rounded_rectangle(box(52, 8, 108, 60), radius=10 * SCALE, fill=(41, 51, 92, 255))  # navy cap
    draw.rectangle(box(62, 56, 98, 84), fill=(200, 200, 205, 255))  # steel neck
    draw.rounded_rectangle(box(18, 76, 142, 392), radius=34 * SCALE, fill=(228, 87, 46, 255))  # orange body
    draw.rectangle(box(18, 180, 142, 290), fill=(245, 241, 232, 255))  # cream label
    for i, colour in enumerate(((41, 51, 92, 255), (243, 167, 18, 255), (41, 51, 92, 255))):
        draw.rectangle(box(18, 196 + i * 28, 142, 208 + i * 28), fill=colour)  # label stripes
    draw.rounded_rectangle(box(30, 100, 44, 370), radius=7 * SCALE, fill=(255, 160, 120, 255))  # highlight
    return big.convert("RGBa").resize((width, height), Image.Resampling.LANCZOS).convert("RGBA")


def main() -> None:
    acme_bottle().save(Path(__file__).with_name("acme-bottle.png"), format="PNG", optimize=False, compress_level=9)


if __name__ == "__main__":
    main()
