"""The errors users see: what failed, the command that fixes it, and an exit code CI can tell apart.

`ExitCode` is the one table of exit codes: each error kind below takes its code from it, noxfile.py
exits with the code of the error a session raised, and a repro run with its worst verdict's
(prove/repro.py). README.md's "Exit codes" table follows it (a unit test holds them together).
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    """How a session ends, one code per kind of failure."""

    SUCCESS = 0
    FAILURE = 1  # any other failure (a build step, a test, the engine)
    USAGE = 2  # bad arguments or a malformed declaration: fix the command or the file
    STALE_LOCK = 3  # a lock is missing, stale against its declaration, or unhashed: re-lock
    INPUT_UNAVAILABLE = 4  # a locked input cannot be had (gone upstream, unreachable, not supplied)
    HASH_MISMATCH = 5  # a file does not match its lock: tampering or corruption
    DIGEST_MISMATCH = 6  # a rebuilt image's digest differs from the recorded one
    NEW_INPUTS = 7  # images whose inputs have no recorded digest yet (repro has nothing to compare)
    BAD_SIGNATURE = 8  # an image's signature or a statement's envelope does not verify with the key
    PROVENANCE_MISMATCH = 9  # a provenance statement names another digest, or inputs the locks do not pin
    NOT_ENOUGH_REBUILDS = 10  # fewer independent rebuild attestations than `verify --rebuilds N` asks
    MODEL_UNLOADABLE = 11  # new-pipeline: Paddle cannot load the model (or the kind cannot serve it)
    CONVERSION_FAILED = 12  # a model's converter failed or wrote files that do not load
    PARITY = 13  # a model's default engine differs from Paddle beyond its tolerance, or fails the goldens
    KERNEL_COVERAGE = 14  # a GPU target's CUDA libraries have no kernels for an architecture it promises


class HpsforgeError(Exception):
    """A failure the user can act on. Sessions print it without a traceback."""

    exit_code: ClassVar[ExitCode] = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  -> {hint}")


class UsageError(HpsforgeError):
    exit_code = ExitCode.USAGE


class StaleLockError(HpsforgeError):
    exit_code = ExitCode.STALE_LOCK


class InputUnavailableError(HpsforgeError):
    exit_code = ExitCode.INPUT_UNAVAILABLE


class HashMismatchError(HpsforgeError):
    exit_code = ExitCode.HASH_MISMATCH


class ConvertedMismatchError(HashMismatchError):
    """A model's converted files differ from lock/conversions.json (names pipeline, model, engine,
    file and both sha256)."""


class DigestMismatchError(HpsforgeError):
    exit_code = ExitCode.DIGEST_MISMATCH


class NewInputsError(HpsforgeError):
    exit_code = ExitCode.NEW_INPUTS


class BadSignatureError(HpsforgeError):
    exit_code = ExitCode.BAD_SIGNATURE


class ProvenanceMismatchError(HpsforgeError):
    exit_code = ExitCode.PROVENANCE_MISMATCH


class NotEnoughRebuildsError(HpsforgeError):
    exit_code = ExitCode.NOT_ENOUGH_REBUILDS


class NoModelError(UsageError):
    """new-pipeline: the folder holds no Paddle inference model (inference.json or *.pdmodel, + .pdiparams)."""


class PipelineExistsError(UsageError):
    """new-pipeline: a pipeline of that name (or of the same image name) exists already."""


class PipelineNameError(UsageError):
    """new-pipeline: a name a pipeline folder, Triton model, image or Kubernetes object cannot take."""


class UnknownKindError(UsageError):
    """new-pipeline: a kind of pipeline there is no template for."""


class DictionaryError(UsageError):
    """new-pipeline --kind ocr-like: the character dictionary (--dict) is missing, unreadable or does
    not fit the model's classes."""


class ModelUnloadableError(HpsforgeError):
    """new-pipeline: real Paddle (in the runtime image) cannot load or run the model."""

    exit_code = ExitCode.MODEL_UNLOADABLE


class ConversionError(HpsforgeError):
    """A model's converter (paddle2onnx, OpenVINO) failed or wrote files that do not load."""

    exit_code = ExitCode.CONVERSION_FAILED


class ParityError(HpsforgeError):
    """A model's default engine fails parity with Paddle (names pipeline, model, engine, difference)."""

    exit_code = ExitCode.PARITY


class KernelCoverageError(HpsforgeError):
    """A GPU target's CUDA libraries have no kernels (SASS or PTX) for an architecture the target
    promises (names the architecture, library, wheel and what the library has)."""

    exit_code = ExitCode.KERNEL_COVERAGE
