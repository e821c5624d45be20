#!/bin/sh
# Entry point of the GPU image. Before a command that runs the models, build the TensorRT engines into
# the /engines volume: they depend on the GPU, so they cannot be made at image build time. An engine
# that already fits is kept, so later starts take seconds; the timing cache lives in the volume too.
# Without TensorRT or a GPU the build is skipped and ONNX Runtime (CUDA, else CPU) is used.
set -e
case "$1" in
  run|swap|bench)
    if [ -z "$SWAPCAM_SKIP_ENGINES" ]; then
      python /opt/swapcam/app/tools/build_engines.py --engines-dir "$SWAPCAM_ENGINES" \
        --timing-cache "$SWAPCAM_ENGINES/timing.cache" \
        || echo "swapcam: TensorRT engines not built (see above); continuing with ONNX Runtime" >&2
    fi
    ;;
esac
exec swapcam "$@"
