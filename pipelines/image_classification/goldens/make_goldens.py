"""Render the golden text-line images (run inside the runtime image: its Pillow, FreeType and zlib
make the PNG bytes reproducible).

    python3 make_goldens.py [OUT_DIR]     # default: this script's folder

The expected categories and scores are in cases.toml (see README.md for how they were measured).
"""

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

TEXT = "Serving Paddle models with Triton"
IMAGES = {"textline_upright.png": False, "textline_rot180.png": True}  # name -> turned upside down
LARGE = "textline_large.png"  # the serving benchmark's larger workload: the line at 4x the size


def render(size: int = 28) -> Image.Image:
    font = ImageFont.load_default(size=size)  # Pillow's bundled font: no system fonts involved
    left, top, right, bottom = font.getbbox(TEXT)
    image = Image.new("RGB", (right - left + 16, bottom - top + 16), "white")
    ImageDraw.Draw(image).text((8 - left, 8 - top), TEXT, font=font, fill="black")
    return image


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    upright = render()
    for name, flipped in IMAGES.items():
        # ROTATE_180 is a pixel transpose, so the turned image is exactly the upright one reversed.
        (upright.transpose(Image.Transpose.ROTATE_180) if flipped else upright).save(out / name)
        print(out / name)
    render(4 * 28).save(out / LARGE)
    print(out / LARGE)


if __name__ == "__main__":
    main()
