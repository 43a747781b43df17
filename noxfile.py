"""hpsforge's user commands: each session maps to one function of hpsforge.cli.

Run through ./noxw, which provides the locked host environment these sessions run in.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import nox
from nox.logger import logger

try:
    from hpsforge import cli
    from hpsforge.core.errors import HpsforgeError
except ImportError as missing:  # plain `nox` outside the locked environment
    raise SystemExit(f"hpsforge is not importable ({missing}); run sessions with ./noxw instead of nox") from None

nox.options.default_venv_backend = "none"  # ./noxw already provides the locked environment
nox.options.sessions = ["images"]
nox.options.error_on_missing_interpreters = True


def _call(session: nox.Session, function: Callable[[list[str]], object], argv: list[str] | None = None) -> None:
    """Run a session's function (on the session's arguments, or `argv`); a failure prints its message
    and exits with the code of its kind (ExitCode, build/core/errors.py), so CI can tell a stale lock
    from tampering from a moved digest."""
    try:
        function(session.posargs if argv is None else argv)
    except HpsforgeError as error:
        code = error.exit_code
        logger.error(str(error))
        logger.error(f"Session {session.name} failed (exit {code.value}: {code.name.lower().replace('_', ' ')}).")
        raise SystemExit(code.value) from None


@nox.session
def engine(session: nox.Session) -> None:
    """Make sure a Docker engine with BuildKit answers (installs and starts one on bare Debian)."""
    _call(session, cli.run_engine)


@nox.session
def freeze(session: nox.Session) -> None:
    """Re-lock everything (engine, base .debs, rc tools, model sources, pip per target); -- cpu: one target."""
    _call(session, cli.run_freeze)


@nox.session(name="lock-check")
def lock_check(session: nox.Session) -> None:
    """Fail if any lock is stale against its declaration or any requirement lacks a hash."""
    _call(session, cli.run_lock_check)


@nox.session
def verify(session: nox.Session) -> None:
    """Check a target's blobs and model files (-- cpu|gpu), or a pushed image's signature and provenance (-- REF@sha256:... --key PUB)."""
    _call(session, cli.run_verify)


@nox.session
def keygen(session: nox.Session) -> None:
    """Make a release key pair PREFIX.private (encrypted) and PREFIX.pub (-- PREFIX [--passphrase-file F])."""
    _call(session, cli.run_keygen)


@nox.session
def fetch(session: nox.Session) -> None:
    """Download a target's locked wheels into the hash-checked wheelhouse (-- cpu|gpu)."""
    _call(session, cli.run_fetch)


@nox.session
def kernels(session: nox.Session) -> None:
    """Which GPU architectures a target's CUDA libraries have kernels for (-- gpu-cu12 [--architectures sm_..])."""
    _call(session, cli.run_kernels)


@nox.session
def sbom(session: nox.Session) -> None:
    """Write a CycloneDX SBOM of a target's image from the locks (-- cpu|gpu)."""
    _call(session, cli.run_sbom)


@nox.session
def images(session: nox.Session) -> None:
    """Verify every input and build the base, rc, runtime and pipeline images (-- cpu gpu; --no-cache; --push)."""
    _call(session, cli.run_images)


@nox.session(name="new-pipeline")
def new_pipeline(session: nox.Session) -> None:
    """Write pipelines/NAME/ for a Paddle model folder (-- NAME --model DIR [--kind tensor|classification] [--record-goldens])."""
    _call(session, cli.run_new_pipeline)


@nox.session
def assemble(session: nox.Session) -> None:
    """Package pipelines' server and client into output/<Name>_sdk[.tar.gz] (-- OCR ...|--all; --no-server, --no-client)."""
    _call(session, cli.run_assemble)


@nox.session
def serve(session: nox.Session) -> None:
    """Start a pipeline's image and print its HTTP, gRPC and metrics addresses (-- OCR [--target cpu])."""
    _call(session, cli.run_serve)


@nox.session
def deploy(session: nox.Session) -> None:
    """Write Kubernetes/KServe manifests of a pipeline image to output/deploy/<Name>/ (-- OCR --kubernetes [--kserve] [--image REF@sha256:...])."""
    _call(session, cli.run_deploy)


@nox.session
def conformance(session: nox.Session) -> None:
    """Start each pipeline image and check real inference, protocol, bad input, lifecycle (-- OCR ...; --url HOST:PORT)."""
    _call(session, cli.run_conformance)


@nox.session
def repro(session: nox.Session) -> None:
    """Rebuild every image of a target's graph from nothing, compare digests, write output/repro/ (-- cpu|--all; --compare A B)."""
    _call(session, cli.run_repro)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmark: rebuild times of a target's images (-- cpu), or (-- cpu --serving) each pipeline image's size, start-to-ready and latency."""
    _call(session, cli.run_bench)


@nox.session
def archive(session: nox.Session) -> None:
    """Input archive: `export DIR` every locked input (--target, --include-blobs, --push REF); `import DIR` (--pull REF)."""
    _call(session, cli.run_archive)


@nox.session(name="host-lock")
def host_lock(session: nox.Session) -> None:
    """Re-lock the host environment ./noxw installs (lock/host-requirements.txt)."""
    _call(session, cli.run_host_lock)


@nox.session
def lint(session: nox.Session) -> None:
    """Check the code: ruff (lint and format), mypy --strict on hpsforge, import-linter's contracts."""
    _call(session, cli.run_lint)


@nox.session(venv_backend="venv", reuse_venv=True)
def docs(session: nox.Session) -> None:
    """Build the documentation site into output/site/ (mkdocs build --strict; MkDocs from lock/requirements/docs.txt, in this session's own virtualenv)."""
    session.install("--require-hashes", "--no-deps", "--only-binary", ":all:", "-r", "lock/requirements/docs.txt")
    _call(session, cli.run_docs, ["--mkdocs", str(Path(session.bin) / "mkdocs"), *session.posargs])


@nox.session
def unit(session: nox.Session) -> None:
    """Lint, then run the fast unit tests (no engine needed)."""
    _call(session, cli.run_lint, [])  # the session's arguments are pytest's
    session.run(sys.executable, "-m", "pytest", "-m", "not engine and not site", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Lint, then run the whole test suite, engine-backed tests and the documentation site's --strict build included."""
    _call(session, cli.run_lint, [])
    session.run(sys.executable, "-m", "pytest", *session.posargs)
