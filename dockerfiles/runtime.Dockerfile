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
# The CUDA stack of [targets.gpu.cuda] in hpsforge.toml; build/gpu.py writes the plan
# (gpu/gpu-stack.json). The cu11 wheels are installed above with the rest of the lock;
# install-gpu-libraries links the unversioned names Paddle dlopens to the wheels' files, takes
# only the declared shared libraries out of the verified cuDNN and TensorRT tarballs (the `blobs`
# context), and puts every library folder on the loader path with ld.so.conf.d + ldconfig.
USER 0:0
RUN --network=none \
    --mount=type=bind,from=blobs,target=/blobs \
    --mount=type=bind,source=gpu,target=/tmp/hps-gpu \
    /opt/hps/bin/python /tmp/hps-gpu/install-gpu-libraries /tmp/hps-gpu/gpu-stack.json /blobs \
        "$HPS_SITE_PACKAGES" /usr/local/share/hpsforge/gpu-stack.json
COPY --chmod=0755 gpu/hps-gpu-check /usr/local/bin/hps-gpu-check
# What the NVIDIA container toolkit mounts (libcuda, NVML), and the driver it requires: Triton's
# bundled cudart 12.6 needs one that supports CUDA 12 (the toolkit refuses an older one clearly).
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    NVIDIA_REQUIRE_CUDA="cuda>=12.0"
USER 1000:1000
# Every library Paddle and Triton open must resolve, or the build fails here and nothing is
# tagged; the error names the library and the wheel or archive it should have come from.
RUN --network=none --mount=type=tmpfs,target=/tmp \
    PYTHONDONTWRITEBYTECODE=1 HOME=/tmp hps-gpu-check
