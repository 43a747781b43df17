"""Tools run in an image of the graph: pip-compile and pip download in the rc image (the images'
own Python and platform), with the host's CA bundle mounted read-only, never copied."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from python_on_whales import docker
from python_on_whales.exceptions import DockerException

from hpsforge.core.errors import HpsforgeError
from hpsforge.images.buildkit import host_ca_bundle
from hpsforge.inputs import wheelhouse
from hpsforge.inputs.store import ContentStore, cache_root
from hpsforge.locks.images_lock import BASE_ROLE, RC_ROLE, ImageRecord

CA_IN_CONTAINER = "/run/secrets/ca-bundle"


def _essential(lines: list[str]) -> list[str]:
    """A tool's failure output without Python traceback frames: the lines that say what failed."""
    kept, in_traceback = [], False
    for line in lines:
        if line.startswith("Traceback (most recent call last)"):
            in_traceback = True
            continue
        if in_traceback and (line[:1].isspace() or not line.strip()):
            continue
        in_traceback = False
        if line.strip() and not line.startswith(("The above exception", "During handling")):
            kept.append(line)
    return kept[-15:]


def run_in_rc(
    rc_image: ImageRecord, command: list[str], workdir: Path, *, failure_hint: str | None = None
) -> list[str]:
    """Run `command` in the rc image with `workdir` at /work, pip's and pip-tools' caches kept
    across runs and the host CA bundle mounted read-only (never copied); stream its output."""
    tool_cache = cache_root() / "rc-cache"
    tool_cache.mkdir(parents=True, exist_ok=True)
    volumes = [(str(workdir), "/work", "rw"), (str(tool_cache), "/root/.cache", "rw")]
    envs = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    if bundle := host_ca_bundle():
        volumes.append((str(bundle), CA_IN_CONTAINER, "ro"))
        envs["PIP_CERT"] = CA_IN_CONTAINER
    lines: list[str] = []
    try:
        for _source, chunk in docker.run(
            rc_image.reference, command, volumes=volumes, envs=envs, workdir="/work", remove=True, stream=True
        ):
            text = chunk.decode(errors="replace")
            print(text, end="", flush=True)
            lines += text.splitlines()
    except DockerException as error:
        summary = "\n    ".join(_essential(lines)) or (error.stderr or "").strip()
        raise HpsforgeError(
            f"`{command[0]}` failed in the rc image (exit {error.return_code}):\n    {summary}", hint=failure_hint
        ) from None
    return lines


# pip of the images' own Python where no pip-tools exist yet (the base image: Debian's bundled pip wheel).
BASE_PIP = ("sh", "-c", 'wheel=$(echo /usr/share/python-wheels/pip-*.whl); exec python3 "$wheel/pip" "$@"', "pip")
RC_PIP = ("pip",)


def pip_download(image: ImageRecord, pip: tuple[str, ...] = RC_PIP) -> wheelhouse.Downloader:
    """A wheelhouse downloader that runs `pip download` in `image`: the files chosen are the ones
    the images' Python installs; pip checks each against the lock's hashes."""

    def download(work: Path) -> None:
        run_in_rc(
            image,
            [
                *pip,
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--require-hashes",
                "--progress-bar",
                "off",
                "--dest",
                "downloads",
                "--requirement",
                "requirements.txt",
            ],
            work,
            failure_hint="a wheel does not match its lock: if the lock was edited by hand, "
            "restore it from git or re-lock with `nox -s freeze`",
        )

    return download


def fetch_wheelhouse(
    target: str, rc_image: ImageRecord, lock_path: Path | None = None, store: ContentStore | None = None
) -> Path:
    """The target's wheelhouse, its missing wheels downloaded in the rc image."""
    return wheelhouse.fetch(target, pip_download(rc_image), lock_path=lock_path, store=store, where=rc_image.reference)


class ImageWheelsets:
    """The wheelsets of the locks of the images' platform, for an input archive: the rc lock's
    downloaded by the base image's own pip, every other lock's in the rc image. The two images are
    asked for (and so built) only when the store lacks a wheelset."""

    def __init__(self, shared_images: Callable[[], dict[str, ImageRecord]], store: ContentStore) -> None:
        self._shared_images = shared_images
        self._built: dict[str, ImageRecord] | None = None
        self.store = store

    def _image(self, role: str) -> ImageRecord:
        if self._built is None:
            self._built = self._shared_images()
        return self._built[role]

    def __call__(self, name: str, lock_path: Path) -> wheelhouse.WheelhouseManifest:
        def downloader() -> wheelhouse.Downloader:
            if name == RC_ROLE:  # no pip-tools yet: the base image's own pip downloads them
                return pip_download(self._image(BASE_ROLE), BASE_PIP)
            return pip_download(self._image(RC_ROLE))

        return wheelhouse.wheelset(name, lock_path, downloader, self.store)
