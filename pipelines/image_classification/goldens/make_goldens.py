"""Render the golden text-line images and, given the model, measure expected.json.

Run inside the runtime image (its Pillow, FreeType and zlib make the PNG bytes reproducible):
    python3 make_goldens.py OUT_DIR [MODEL_DIR]
with hps_server and server/lib on PYTHONPATH when MODEL_DIR (inference.pdmodel +
inference.pdiparams of the textline_orientation artifact) is given.
"""

import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

TEXT = "Serving Paddle models with Triton"
IMAGES = {"textline_upright.png": False, "textline_rot180.png": True}  # name -> turned upside down
TOLERANCE = 1e-4


def render() -> Image.Image:
    font = ImageFont.load_default(size=28)  # Pillow's bundled font: no system fonts involved
    left, top, right, bottom = font.getbbox(TEXT)
    image = Image.new("RGB", (right - left + 16, bottom - top + 16), "white")
    ImageDraw.Draw(image).text((8 - left, 8 - top), TEXT, font=font, fill="black")
    return image


def measure(out: Path, model_dir: Path) -> dict:
    import cv2
    from hps_server import ServerContext, paddle_predictor
    from image_classification_pipeline import Classifier, Settings

    settings = Settings()
    context = ServerContext(root=model_dir.parent.parent, model_name="image-classification")
    predictor = paddle_predictor(model_dir / settings.model_file, model_dir / settings.params_file, context)
    classifier = Classifier(predictor, settings, model_dir)
    names = list(IMAGES)
    scores = classifier.scores([cv2.imread(str(out / name)) for name in names])
    cases = [{"image": name, "request": {"topk": 5},
              "categories": classifier.categories(row, 5)} for name, row in zip(names, scores)]
    return {"tolerance": TOLERANCE, "cases": cases}


def main() -> None:
    out = Path(sys.argv[1])
    upright = render()
    for name, flipped in IMAGES.items():
        (upright.transpose(Image.Transpose.ROTATE_180) if flipped else upright).save(out / name)
    if len(sys.argv) > 2:
        expected = measure(out, Path(sys.argv[2]))
        (out / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
        print(json.dumps(expected, indent=2))


if __name__ == "__main__":
    main()
