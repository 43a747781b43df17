# The rc image: the base plus the Python tools `nox -s freeze` compiles pip locks with.
# `base` is a named build context pinned to the base image's digest; `wheelhouse` holds exactly
# the wheels of lock/rc-requirements.txt, hash-checked by hpsforge.
FROM base
# Exported to RUN steps: pip's byte-compilation then writes hash-checked, timestamp-free .pyc.
ARG SOURCE_DATE_EPOCH
COPY --chmod=0644 rc-requirements.txt /opt/rc/requirements.txt
# No network: every file comes from the verified wheelhouse, so the image builds offline too.
RUN --network=none \
    --mount=type=bind,from=wheelhouse,target=/wheelhouse \
    set -eu; \
    python3 -m venv /opt/rc; \
    /opt/rc/bin/pip install --disable-pip-version-check --no-input --no-index --find-links /wheelhouse \
        --require-hashes --only-binary :all: -r /opt/rc/requirements.txt; \
    /opt/rc/bin/pip-compile --version
ENV PATH=/opt/rc/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /work
