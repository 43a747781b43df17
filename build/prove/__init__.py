"""Proofs about images: rebuilt from nothing to the same digest (and why not), SBOMs from the
locks, and the conformance suite run against serving images; and about the code (lint.py)."""
