# The serving runtime: the base, exactly the locked wheels, and Triton with its python backend
# (both from the locked nvidia-pytriton wheel). One stage per target; `base` and `wheelhouse`
# are named build contexts (the base pinned by digest, the wheelhouse hash-checked by fetch).
FROM base AS runtime-common
ARG SOURCE_DATE_EPOCH
ENV HPS_HOME=/opt/hps
ENV HPS_SITE_PACKAGES=/opt/hps/lib/python3.11/site-packages
# Installed with no network at all: every file comes from the verified wheelhouse. The venv gets
# no pip of its own (only the locked packages): Debian's bundled pip wheel, run by the venv's
# interpreter, installs into it.
RUN --network=none \
    --mount=type=bind,from=wheelhouse,target=/wheelhouse \
    --mount=type=bind,source=requirements.txt,target=/tmp/requirements.txt \
    set -eu; \
    python3 -m venv --without-pip "$HPS_HOME"; \
    bundled_pip=$(echo /usr/share/python-wheels/pip-*.whl); \
    "$HPS_HOME/bin/python" "$bundled_pip/pip" install \
        --disable-pip-version-check --no-input --no-index --find-links /wheelhouse \
        --require-hashes --only-binary :all: -r /tmp/requirements.txt; \
    triton="$HPS_SITE_PACKAGES/pytriton/tritonserver"; \
    cp "$triton/python_backend_stubs/3.11/triton_python_backend_stub" "$triton/backends/python/"; \
    rm -rf "$triton/python_backend_stubs" "$triton/caches"; \
    # C++ headers for compiling custom operators: not needed to serve (keeps the image < 1.5 GB).
    rm -rf "$HPS_SITE_PACKAGES/paddle/include"; \
    ln -s "$triton" /opt/tritonserver; \
    # The backend stub's interpreter ignores PYTHONPATH but reads .pth files: a pipeline bundle's
    # lib/ (hps_server and the pipeline's code) joins sys.path wherever HPS_SERVER_ROOT points.
    echo 'import os, sys; root = os.environ.get("HPS_SERVER_ROOT"); root and sys.path.insert(0, os.path.join(root, "lib"))' \
        > "$HPS_SITE_PACKAGES/hps_server_root.pth"
# The stub embeds Debian's libpython3.11 (the interpreter of the venv): it finds the packages
# through PYTHONPATH; tritonserver finds its shared libraries in the wheel's .libs folder.
ENV PATH=/opt/hps/bin:/opt/tritonserver/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/opt/hps/lib/python3.11/site-packages \
    LD_LIBRARY_PATH=/opt/hps/lib/python3.11/site-packages/nvidia_pytriton.libs \
    OMP_NUM_THREADS=1
# A fixed, unprivileged user written directly (useradd would stamp today's date into /etc/shadow).
RUN set -eu; \
    echo 'triton:x:1000:1000:Triton server:/home/triton:/usr/sbin/nologin' >> /etc/passwd; \
    echo 'triton:x:1000:' >> /etc/group; \
    echo 'triton:!:0::::::' >> /etc/shadow; \
    mkdir -p /home/triton /models; \
    chown 1000:1000 /home/triton /models
COPY --chmod=0755 hps-serve /usr/local/bin/hps-serve
USER 1000:1000
WORKDIR /home/triton
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2)"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/hps-serve"]
CMD []

FROM runtime-common AS runtime-cpu

FROM runtime-common AS runtime-gpu
# cuDNN and TensorRT from the verified vendor blobs (the `blobs` context holds only those files).
USER 0:0
RUN --network=none --mount=type=bind,from=blobs,target=/blobs \
    set -eu; \
    for archive in /blobs/*; do \
        case "$archive" in *cudnn*) into=/opt/nvidia/cudnn ;; *TensorRT*) into=/opt/nvidia/tensorrt ;; *) continue ;; esac; \
        mkdir -p "$into"; tar -xf "$archive" -C "$into" --strip-components=1; \
    done
ENV LD_LIBRARY_PATH=/opt/nvidia/cudnn/lib:/opt/nvidia/tensorrt/lib:/opt/hps/lib/python3.11/site-packages/nvidia_pytriton.libs
USER 1000:1000
