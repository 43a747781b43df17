#!/bin/sh
# Serve this pipeline bundle with Triton: its model repository, its libraries, its model files.
#   HPS_DEVICE=auto|cpu|gpu   which model configs to load (auto: gpu when an NVIDIA device exists)
#   HPS_ADMIN_KEY=<secret>    enable loading/unloading models through the repository API, with
#                             this key in the HTTP header `hps-admin-key` (gRPC metadata:
#                             `triton-grpc-protocol-hps-admin-key`); off when unset
#   HPS_STATE_DIR             where pipelines keep state (the face index); default ~/hps-state
# Extra arguments go to tritonserver unchanged.
set -eu
root=$(cd "$(dirname "$0")" && pwd)

device=${HPS_DEVICE:-auto}
if [ "$device" = auto ]; then
    if [ -e /dev/nvidia0 ]; then device=gpu; else device=cpu; fi
fi
case "$device" in
    cpu|gpu) ;;
    *) echo "server.sh: HPS_DEVICE must be auto, cpu or gpu (got '$device')" >&2; exit 2 ;;
esac

# Every model the bundle declares (MODELS, written by hpsforge) is loaded by name: a missing or
# broken one stops the server instead of leaving it "ready" without it. The repository API
# (load/unload: whoever can load models can run code) needs HPS_ADMIN_KEY; without one it is
# locked with a random key nobody knows.
key=${HPS_ADMIN_KEY:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
management="--model-control-mode=explicit
    --http-restricted-api=model-repository:hps-admin-key=$key
    --grpc-restricted-protocol=model-repository:hps-admin-key=$key"
while read -r model; do
    [ -n "$model" ] && management="$management --load-model=$model"
done < "$root/MODELS"

export HPS_SERVER_ROOT="$root"
export PYTHONPATH="$root/lib${PYTHONPATH:+:$PYTHONPATH}"
echo "server.sh: serving $root/model_repo on $device" >&2
# Each python-backend model instance talks to Triton through its own shared-memory region:
# start small and grow, so a dozen models fit Docker's default 64 MB /dev/shm.
set -f  # $management is split into options below, never globbed
# shellcheck disable=SC2086
exec tritonserver \
    --model-repository="$root/model_repo" \
    --model-config-name="$device" \
    --backend-directory="${HPS_BACKEND_DIRECTORY:-/opt/tritonserver/backends}" \
    --backend-config="python,shm-default-byte-size=${HPS_SHM_DEFAULT_BYTES:-4194304}" \
    --backend-config="python,shm-growth-byte-size=${HPS_SHM_GROWTH_BYTES:-4194304}" \
    --http-port="${HPS_HTTP_PORT:-8000}" --grpc-port="${HPS_GRPC_PORT:-8001}" \
    --metrics-port="${HPS_METRICS_PORT:-8002}" \
    --exit-timeout-secs="${HPS_EXIT_TIMEOUT_SECS:-25}" \
    $management \
    "$@"
