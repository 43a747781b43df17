# The model converter: the base, exactly the wheels of lock/requirements/convert.txt (paddle2onnx,
# OpenVINO, the Paddle they read) and converter/hps_convert.py. Never served or released: it runs
# each conversion with no network (images/converter.py). `base` and `wheelhouse` are named build
# contexts (the base pinned by digest, the wheelhouse hash-checked by fetch).
FROM base
ARG SOURCE_DATE_EPOCH
ENV HPS_CONVERT=/opt/hps-convert
RUN --network=none \
    --mount=type=bind,from=wheelhouse,target=/wheelhouse \
    --mount=type=bind,source=requirements.txt,target=/tmp/requirements.txt \
    set -eu; \
    python3 -m venv --without-pip "$HPS_CONVERT"; \
    bundled_pip=$(echo /usr/share/python-wheels/pip-*.whl); \
    "$HPS_CONVERT/bin/python" "$bundled_pip/pip" install \
        --disable-pip-version-check --no-input --no-index --find-links /wheelhouse \
        --require-hashes --only-binary :all: -r /tmp/requirements.txt; \
    find "$HPS_CONVERT" -name __pycache__ -prune -exec rm -rf {} +
COPY --chmod=0755 hps_convert.py /opt/hps-convert/bin/hps_convert.py
ENV PATH=/opt/hps-convert/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    OMP_NUM_THREADS=1
# Runs as the caller's user (images/converter.py passes it) so the files it writes are theirs.
WORKDIR /tmp
ENTRYPOINT ["/opt/hps-convert/bin/python", "/opt/hps-convert/bin/hps_convert.py"]
