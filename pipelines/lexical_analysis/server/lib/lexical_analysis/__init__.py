"""Baidu LAC lexical analysis (Chinese word segmentation, POS and entity tags) for hpsforge."""

from lexical_analysis.ensemble import MAX_CHARS, MAX_TEXTS, Network, Postprocess, Request, Tokenizer
from lexical_analysis.lexicon import Lexicon
from lexical_analysis.tagger import run_network, to_words

__all__ = ["MAX_CHARS", "MAX_TEXTS", "Lexicon", "Network", "Postprocess", "Request", "Tokenizer",
           "run_network", "to_words"]
