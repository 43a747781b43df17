"""hpsforge: reproducible, hash-locked serving images for PaddlePaddle pipelines on Triton."""

from hpsforge.errors import HpsforgeError

__all__ = ["HpsforgeError"]
