# A bench image (never a release): the runtime, the serving benchmark's tools from the bench-only
# lock (lock/requirements/bench.txt: Flask, gunicorn, matplotlib) installed from the hash-checked
# wheelhouse with no network, and one pipeline's server bundle, staged exactly as for its pipeline
# image (the benchmark checks that the two bundles hash the same). Packages the runtime already
# holds are held at the same versions by the lock, so the pipeline's work runs on the runtime's
# own packages. The tools' layer is the same for every pipeline (cached once).
FROM runtime
USER 0:0
RUN --network=none \
    --mount=type=bind,from=wheelhouse,target=/wheelhouse \
    --mount=type=bind,source=requirements.txt,target=/tmp/requirements.txt \
    set -eu; \
    bundled_pip=$(echo /usr/share/python-wheels/pip-*.whl); \
    "$HPS_HOME/bin/python" "$bundled_pip/pip" install \
        --disable-pip-version-check --no-input --no-index --find-links /wheelhouse \
        --require-hashes --only-binary :all: -r /tmp/requirements.txt
USER 1000:1000
COPY opt/ /opt/
ENV HPS_SERVER_ROOT=/opt/hps/server MPLCONFIGDIR=/tmp/matplotlib
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD []
