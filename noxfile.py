"""hpsforge's user commands: each session maps to one function of hpsforge.sessions.

Run through ./noxw, which provides the locked host environment these sessions run in.
"""

from __future__ import annotations

import sys

import nox

try:
    from hpsforge import sessions
    from hpsforge.errors import HpsforgeError
except ImportError as missing:  # plain `nox` outside the locked environment
    raise SystemExit(f"hpsforge is not importable ({missing}); run sessions with ./noxw instead of nox") from None

nox.options.default_venv_backend = "none"  # ./noxw already provides the locked environment
nox.options.sessions = ["images"]
nox.options.error_on_missing_interpreters = True


def _call(session: nox.Session, function) -> None:
    try:
        function(session.posargs)
    except HpsforgeError as error:
        session.error(str(error))


@nox.session
def engine(session: nox.Session) -> None:
    """Make sure a Docker engine with BuildKit answers (installs and starts one on bare Debian)."""
    _call(session, sessions.run_engine)


@nox.session
def freeze(session: nox.Session) -> None:
    """Re-lock everything: the engine packages, the base's Debian packages, the rc tools."""
    _call(session, sessions.run_freeze)


@nox.session
def images(session: nox.Session) -> None:
    """Verify every input against the locks and build the images (-- --no-cache to rebuild)."""
    _call(session, sessions.run_images)


@nox.session
def unit(session: nox.Session) -> None:
    """Run the fast unit tests (no engine needed)."""
    session.run(sys.executable, "-m", "pytest", "-m", "not engine", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite, engine-backed tests included."""
    session.run(sys.executable, "-m", "pytest", *session.posargs)
