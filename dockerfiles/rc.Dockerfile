# The rc image: the base plus the Python tools `nox -s freeze` compiles pip locks with.
# `base` is a named build context pinned to the base image's digest.
FROM base
# Exported to RUN steps: pip's byte-compilation then writes hash-checked, timestamp-free .pyc.
ARG SOURCE_DATE_EPOCH
COPY --chmod=0644 rc-requirements.txt /opt/rc/requirements.txt
# The host CA (for the PyPI proxy) is a secret mount: it never lands in a layer or in history.
RUN --mount=type=secret,id=ca-bundle,required=false \
    --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    set -eu; \
    if [ -f /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    python3 -m venv /opt/rc; \
    /opt/rc/bin/pip install --disable-pip-version-check --no-input --require-hashes \
        --only-binary :all: -r /opt/rc/requirements.txt; \
    /opt/rc/bin/pip-compile --version
ENV PATH=/opt/rc/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /work
