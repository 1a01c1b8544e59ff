#!/usr/bin/env bash
# Build model.engine on this device from the bundle's ONNX with trtexec, for the TensorRT installed here.
# Engines are specific to a GPU and a TensorRT version, so each device builds its own.
#
#   ./build_engine.sh [--precision fp16|fp32|int8] [--output model.engine]
#                     [--trt-version 8.2] [--sm 72] [--trtexec PATH] [--trt-include DIR] [--print-command]
#
# --print-command prints the commands (plugin build, trtexec) instead of running them; with --trt-version and
# --sm it needs neither TensorRT nor a GPU. The flags it chooses:
#   precision   TensorRT up to 10.x: --fp16 / --int8 on the FP32 ONNX (INT8 from the Q/DQ ONNX, with --fp16
#               for the layers left unquantized); TensorRT 11 builds strongly typed networks only: the FP16 or
#               Q/DQ ONNX as they are, no precision flag.
#   shapes      --minShapes/--optShapes/--maxShapes for a dynamic input.
#   plugin      the DAttnGridSample plugin is built first with CMake for this GPU's SM, then loaded with
#               --plugins up to TensorRT 8.5 and --staticPlugins from 8.6.
#   workspace   --workspace=1024 (MiB) before TensorRT 8.4, whose trtexec otherwise allows 16 MiB.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=bundle.env
source "$HERE/bundle.env"  # written with the bundle: the model's files, input name, shapes, plugin use

PRECISION="${DEFAULT_PRECISION}"
PRECISION_GIVEN=0
OUTPUT="$HERE/model.engine"
TRT_VERSION="${TRT_VERSION:-}"
SM="${CUDA_SM:-}"
TRTEXEC="${TRTEXEC:-}"
TRT_INCLUDE="${TRT_INCLUDE_DIR:-}"
PRINT_ONLY=0
WORKSPACE_MIB=1024

usage() {
  sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
  echo "build_engine.sh: error: $*" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --precision) PRECISION="${2:?--precision needs fp16, fp32 or int8}"; PRECISION_GIVEN=1; shift 2 ;;
    --output) OUTPUT="${2:?--output needs a path}"; shift 2 ;;
    --trt-version) TRT_VERSION="${2:?--trt-version needs a version such as 8.2}"; shift 2 ;;
    --sm) SM="${2:?--sm needs a compute capability such as 72}"; shift 2 ;;
    --trtexec) TRTEXEC="${2:?--trtexec needs a path}"; shift 2 ;;
    --trt-include) TRT_INCLUDE="${2:?--trt-include needs a folder}"; shift 2 ;;
    --print-command) PRINT_ONLY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

# The TensorRT version as MAJOR.MINOR: from the Python bindings, the Debian package, or the headers.
header_version() {
  local header="" folder
  for folder in "$TRT_INCLUDE" /usr/include/aarch64-linux-gnu /usr/include/x86_64-linux-gnu /usr/local/tensorrt/include /usr/include; do
    if [ -n "$folder" ] && [ -f "$folder/NvInferVersion.h" ]; then header="$folder/NvInferVersion.h"; break; fi
  done
  [ -n "$header" ] || return 0
  # 11.x spells them TRT_MAJOR_ENTERPRISE; earlier versions NV_TENSORRT_MAJOR.
  local major minor
  major=$(grep -E '#define (NV_TENSORRT_MAJOR|TRT_MAJOR_[A-Z]+) +[0-9]+' "$header" | head -n1 | awk '{print $3}')
  minor=$(grep -E '#define (NV_TENSORRT_MINOR|TRT_MINOR_[A-Z]+) +[0-9]+' "$header" | head -n1 | awk '{print $3}')
  [ -n "$major" ] && [ -n "$minor" ] && echo "$major.$minor"
  return 0
}

detect_trt_version() {
  local found=""
  if command -v python3 >/dev/null 2>&1; then
    found=$(python3 -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null || true)
  fi
  if [ -z "$found" ] && command -v dpkg-query >/dev/null 2>&1; then
    found=$(dpkg-query -W -f='${Version}' libnvinfer-bin 2>/dev/null || true)
  fi
  if [ -z "$found" ]; then
    found=$(header_version)
  fi
  echo "$found" | grep -oE '^[0-9]+\.[0-9]+' || true
}

detect_sm() {
  local found=""
  found=$(PYTHONPATH="$HERE" python3 -m dattn.runtime.cuda 2>/dev/null || true)
  if [ -z "$found" ] && command -v nvidia-smi >/dev/null 2>&1; then
    found=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d '. ' || true)
  fi
  echo "$found"
}

find_trtexec() {
  if [ -n "$TRTEXEC" ]; then echo "$TRTEXEC"; return; fi
  if command -v trtexec >/dev/null 2>&1; then command -v trtexec; return; fi
  echo /usr/src/tensorrt/bin/trtexec  # where JetPack and the Debian packages put it
}

find_nvcc() {
  if [ -n "${CUDACXX:-}" ]; then echo "$CUDACXX"; return; fi
  if command -v nvcc >/dev/null 2>&1; then command -v nvcc; return; fi
  echo /usr/local/cuda/bin/nvcc  # JetPack's CUDA, not on PATH by default
}

# Prints a command (shell-quoted) in --print-command mode, runs it otherwise.
run() {
  if [ "$PRINT_ONLY" = 1 ]; then
    printf '%q ' "$@"
    printf '\n'
  else
    echo "+ $*" >&2
    "$@"
  fi
}

[ -n "$TRT_VERSION" ] || TRT_VERSION=$(detect_trt_version)
[ -n "$TRT_VERSION" ] || die "cannot tell which TensorRT is installed (no python3 tensorrt, no libnvinfer-bin package, no NvInferVersion.h); pass --trt-version, e.g. --trt-version 8.2"
TRT_MAJOR=${TRT_VERSION%%.*}
TRT_MINOR=${TRT_VERSION#*.}
TRT_MINOR=${TRT_MINOR%%.*}
[[ "$TRT_MAJOR" =~ ^[0-9]+$ && "$TRT_MINOR" =~ ^[0-9]+$ ]] || die "--trt-version must look like 8.2 or 10.3, got $TRT_VERSION"
TRT_NUMBER=$((TRT_MAJOR * 100 + TRT_MINOR))  # 8.2 -> 802, 10.3 -> 1003

# The ONNX and the precision flags.
PRECISION_FLAGS=()
if [ "$TRT_MAJOR" -ge 11 ] && [ "$PRECISION" = fp16 ] && [ -z "$ONNX_FP16" ] && [ "$PRECISION_GIVEN" = 0 ]; then
  echo "build_engine.sh: TensorRT $TRT_VERSION builds strongly typed networks and this bundle has no FP16 ONNX: building FP32" >&2
  PRECISION=fp32
fi
case "$PRECISION" in
  fp32) ONNX="$ONNX_FP32" ;;
  fp16)
    if [ "$TRT_MAJOR" -ge 11 ]; then
      [ -n "$ONNX_FP16" ] || die "TensorRT $TRT_VERSION builds strongly typed networks only and this bundle has no FP16 ONNX; use --precision fp32, or make the bundle with an FP16 ONNX"
      ONNX="$ONNX_FP16"
    else
      ONNX="$ONNX_FP32"; PRECISION_FLAGS=(--fp16)
    fi ;;
  int8)
    [ -n "$ONNX_INT8" ] || die "this bundle has no INT8 (Q/DQ) ONNX: make it with calibration images, or use --precision fp16"
    ONNX="$ONNX_INT8"
    if [ "$TRT_MAJOR" -lt 11 ]; then PRECISION_FLAGS=(--int8 --fp16); fi ;;
  *) die "--precision must be fp16, fp32 or int8, got $PRECISION" ;;
esac

# ${a[@]+"${a[@]}"}: an empty array under `set -u` in bash before 4.4
TRTEXEC_ARGS=(--onnx="$HERE/$ONNX" --saveEngine="$OUTPUT" ${PRECISION_FLAGS[@]+"${PRECISION_FLAGS[@]}"})
if [ "$DYNAMIC" = 1 ]; then
  TRTEXEC_ARGS+=(--minShapes="$INPUT_NAME:$MIN_SHAPE" --optShapes="$INPUT_NAME:$OPT_SHAPE" --maxShapes="$INPUT_NAME:$MAX_SHAPE")
fi
if [ "$TRT_NUMBER" -lt 804 ]; then
  TRTEXEC_ARGS+=(--workspace="$WORKSPACE_MIB")
fi

if [ "$USES_PLUGIN" = 1 ]; then
  [ -n "$SM" ] || SM=$(detect_sm)
  [ -n "$SM" ] || die "cannot tell this GPU's compute capability (needs libcudart or nvidia-smi); pass --sm, e.g. --sm 53 (Nano), 62 (TX2), 72 (Xavier), 87 (Orin)"
  PLUGIN_BUILD="$HERE/plugin/build"
  PLUGIN_LIBRARY="$PLUGIN_BUILD/libdattn_trt_plugins.so"
  CONFIGURE=(cmake -S "$HERE/plugin" -B "$PLUGIN_BUILD" -DCMAKE_BUILD_TYPE=Release -DDATTN_CUDA_ARCHS="$SM"
             -DCMAKE_CUDA_COMPILER="$(find_nvcc)")
  if [ -n "$TRT_INCLUDE" ]; then CONFIGURE+=(-DTRT_INCLUDE_DIR="$TRT_INCLUDE"); fi
  if [ "$PRINT_ONLY" = 0 ]; then
    command -v cmake >/dev/null 2>&1 || die "cmake is not installed: pip3 install --user cmake (3.18 or newer; JetPack 4.x's apt cmake is too old)"
  fi
  run "${CONFIGURE[@]}"
  run cmake --build "$PLUGIN_BUILD" --target dattn_trt_plugins --parallel "$(nproc 2>/dev/null || echo 2)"
  if [ "$TRT_NUMBER" -lt 806 ]; then
    TRTEXEC_ARGS+=(--plugins="$PLUGIN_LIBRARY")
  else
    TRTEXEC_ARGS+=(--staticPlugins="$PLUGIN_LIBRARY")
  fi
fi

EXECUTABLE=$(find_trtexec)
if [ "$PRINT_ONLY" = 0 ] && [ ! -x "$EXECUTABLE" ]; then
  die "trtexec is not found at $EXECUTABLE: on a Jetson it comes with JetPack (/usr/src/tensorrt/bin), elsewhere with TensorRT; pass --trtexec PATH"
fi
run "$EXECUTABLE" "${TRTEXEC_ARGS[@]}"
if [ "$PRINT_ONLY" = 0 ]; then
  echo "build_engine.sh: wrote $OUTPUT (TensorRT $TRT_VERSION, $PRECISION); now: python3 $HERE/run.py --source IMAGES" >&2
fi
