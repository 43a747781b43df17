"""Baidu LAC lexical analysis (Chinese word segmentation, POS and entity tags) for hpsforge."""

from lexical_analysis.analyzer import MAX_CHARS, MAX_TEXTS, LexicalAnalyzer, Request
from lexical_analysis.lexicon import Lexicon
from lexical_analysis.tagger import run_network, to_words

__all__ = ["MAX_CHARS", "MAX_TEXTS", "LexicalAnalyzer", "Lexicon", "Request", "run_network", "to_words"]
