"""Render the OCR golden images with Pillow's bundled font (run inside the runtime image).

    python3 make_goldens.py [OUTPUT_DIR]     # default: this script's folder

Same Pillow version -> same bytes: plain black-on-white drawing, no antialiasing randomness, and
PNGs saved without metadata. The runtime image has no CJK font, so every golden is Latin text.
"""

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_SIZE = 32
MARGIN = 24
LINE_GAP = 20

# name -> (lines, turned upside down)
GOLDENS = {
    "hello_2026.png": (["Hello 2026"], False),
    "two_lines.png": (["Hello 2026", "Paddle Triton"], False),
    "hello_2026_upside_down.png": (["Hello 2026"], True),
    # The serving benchmark's larger workload: a page of eight lines.
    "page.png": (
        [
            "Invoice for March",
            "Serving Paddle models",
            "with Triton on CPU",
            "Total amount 1234.56",
            "Reproducible images",
            "Hash locked inputs",
            "Page 1 of 1",
            "Thank you",
        ],
        False,
    ),
}


def render(lines: list[str], upside_down: bool) -> Image.Image:
    font = ImageFont.load_default(size=FONT_SIZE)
    boxes = [font.getbbox(line) for line in lines]
    width = max(b[2] for b in boxes) + 2 * MARGIN
    height = len(lines) * FONT_SIZE + (len(lines) - 1) * LINE_GAP + 2 * MARGIN
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((MARGIN, MARGIN + i * (FONT_SIZE + LINE_GAP)), line, font=font, fill="black")
    return image.rotate(180) if upside_down else image


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    for name, (lines, upside_down) in GOLDENS.items():
        render(lines, upside_down).save(out / name, optimize=True)
        print(out / name)


if __name__ == "__main__":
    main()
