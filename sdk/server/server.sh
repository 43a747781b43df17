#!/bin/sh
# Serve this pipeline bundle with Triton: its model repository, its libraries, its model files.
#   HPS_DEVICE=auto|cpu|gpu   which model configs to load (auto: gpu when a GPU is usable, else cpu;
#                             gpu without a usable GPU: exit 2 with the reason)
#   HPS_ADMIN_KEY=<secret>    the key of Triton's restricted APIs (model repository: load/unload;
#                             shared memory; logging; trace), sent as the HTTP header
#                             `hps-admin-key` (gRPC metadata `triton-grpc-protocol-hps-admin-key`).
#                             16+ characters of [A-Za-z0-9._~+/=-]. Unset: those APIs are locked
#                             with a random key. Triton takes it on its command line (visible in ps).
#   HPS_STATE_DIR             where pipelines keep state (the face index); default ~/hps-state
#   HPS_INSTANCES, HPS_CPU_THREADS
#                             instances per CPU model and Paddle threads per instance; by default
#                             one instance per CPU this container may use (cgroup quota and
#                             affinity) and CPUs / instances threads, every CPU for a request that
#                             runs alone (HPS_BURST=0: never; see lib/hps_server/launch.py)
#   HPS_RUNTIME_DIR           where the model repository with those counts is written at start
#                             (default ${TMPDIR:-/tmp}/hps-server; it links to this bundle)
# Extra arguments go to tritonserver unchanged.
set -eu
root=$(cd "$(dirname "$0")" && pwd)

device=${HPS_DEVICE:-auto}
case "$device" in
    auto|cpu|gpu) ;;
    *) echo "server.sh: HPS_DEVICE must be auto, cpu or gpu (got '$device')" >&2; exit 2 ;;
esac
# GPU runtimes ship hps-gpu-check; `--count` asks the driver how many GPUs are usable (0 without
# one). gpu configs only with a GPU; HPS_DEVICE=gpu without one is an error, not a crash loop.
if [ "$device" != cpu ]; then
    if command -v hps-gpu-check >/dev/null 2>&1; then
        counted=$(hps-gpu-check --count 2>/dev/null) || counted=0
        gpus=$(printf '%s\n' "$counted" | head -n 1)
        case "$gpus" in ''|*[!0-9]*) gpus=0 ;; esac
        # A second line: GPUs are there, but not ones this image covers (architecture or driver).
        why=$(printf '%s\n' "$counted" | sed -n 2p)
        [ -n "$why" ] || why="no usable NVIDIA GPU is visible (run the container with --gpus on a host with the NVIDIA driver and container toolkit)"
    elif [ "$device" = auto ]; then
        gpus=-1  # a cpu runtime: auto is cpu, nothing to report
    else
        gpus=0 why="this runtime has no GPU support (no hps-gpu-check: use a gpu image)"
    fi
    if [ "$gpus" -gt 0 ]; then
        device=gpu
    elif [ "$device" = gpu ]; then
        echo "server.sh: HPS_DEVICE=gpu, but $why; set HPS_DEVICE=auto to serve on the CPU instead" >&2
        exit 2
    else
        [ "$gpus" -lt 0 ] || echo "server.sh: $why: falling back to the CPU model configs" >&2
        device=cpu
    fi
fi

# Whoever can load models or write Triton's log and trace files can run code: those APIs need the key.
key=${HPS_ADMIN_KEY:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
if ! printf '%s' "$key" | grep -Eq '^[A-Za-z0-9._~+/=-]{16,}$'; then
    echo "server.sh: HPS_ADMIN_KEY must be 16 or more characters of A-Z a-z 0-9 . _ ~ + / = -" >&2
    exit 2
fi
restricted="model-repository,shared-memory,logging,trace:hps-admin-key=$key"

# Every model the bundle declares (MODELS, written by hpsforge) is loaded by name: a missing or
# broken one stops the server instead of leaving it "ready" without it. Prepended, so the
# caller's own arguments stay last.
while read -r model; do
    if [ -n "$model" ]; then set -- "--load-model=$model" "$@"; fi
done < "$root/MODELS"

export HPS_SERVER_ROOT="$root"
export PYTHONPATH="$root/lib${PYTHONPATH:+:$PYTHONPATH}"
# OpenCV refuses images over 64 Mpixels before decoding them (a small PNG can declare gigapixels).
export OPENCV_IO_MAX_IMAGE_PIXELS="${OPENCV_IO_MAX_IMAGE_PIXELS:-67108864}"
# --- instances and threads (hpsforge serving) ---
# The instance count and Paddle threads of each model, from the CPUs this container may use,
# written into a repository that links to this bundle's models (hps_server.launch).
runtime_dir=${HPS_RUNTIME_DIR:-${TMPDIR:-/tmp}/hps-server}
repository=$(python3 -m hps_server.launch "$root" "$device" "$runtime_dir") || exit 2
# Paddle's OpenMP threads wait 5 ms for more work, not 200: a request that used every CPU
# (alone) must not keep them spinning while the next ones run on one thread each.
export KMP_BLOCKTIME="${KMP_BLOCKTIME:-5}"
# --- end of instances and threads ---
echo "server.sh: serving $root/model_repo on $device" >&2
# Each python-backend model instance talks to Triton through its own shared-memory region:
# start small and grow, so a dozen models fit Docker's default 64 MB /dev/shm.
exec tritonserver \
    --model-repository="$repository" \
    --model-control-mode=explicit \
    --http-restricted-api="$restricted" \
    --grpc-restricted-protocol="$restricted" \
    --backend-directory="${HPS_BACKEND_DIRECTORY:-/opt/tritonserver/backends}" \
    --backend-config="python,shm-default-byte-size=${HPS_SHM_DEFAULT_BYTES:-4194304}" \
    --backend-config="python,shm-growth-byte-size=${HPS_SHM_GROWTH_BYTES:-4194304}" \
    --http-port="${HPS_HTTP_PORT:-8000}" --grpc-port="${HPS_GRPC_PORT:-8001}" \
    --metrics-port="${HPS_METRICS_PORT:-8002}" \
    --exit-timeout-secs="${HPS_EXIT_TIMEOUT_SECS:-25}" \
    "$@"
