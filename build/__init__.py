"""hpsforge: reproducible, hash-locked serving images for PaddlePaddle pipelines on Triton."""

import logging

from hpsforge.core.errors import HpsforgeError

# python-on-whales logs every docker command at INFO; hpsforge prints its own progress.
logging.getLogger("python_on_whales").setLevel(logging.WARNING)

__all__ = ["HpsforgeError"]
