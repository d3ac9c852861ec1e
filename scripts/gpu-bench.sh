#!/bin/sh
# The training-step benchmark (scripts/step-bench.ts) on a bare x86-64 Linux GPU machine: no Node, no Vulkan loader,
# no network, only an NVIDIA driver (issue 19). Two halves:
#
#   scripts/gpu-bench.sh --prepare        on a development machine (this repo with node_modules, apt, esbuild):
#                                         builds dist/gpu-bench/ (gitignored, ~45 MB): the esbuild bundle of
#                                         step-bench.ts, Dawn's dawn.node (`webgpu` package), the tfjs-wasm .wasm files,
#                                         this machine's node binary (stripped, gzip), Debian's Vulkan loader
#                                         (libvulkan1, unpacked), the default model's config.json (random weights of its
#                                         shapes: the step's cost depends on shapes only), and libstdc++/libgcc_s as a
#                                         fallback for a system without them
#   scripts/gpu-bench.sh [options]        on the GPU machine, from the repo root (or any copy holding dist/gpu-bench):
#                                         unpacks to a temporary directory, finds the Vulkan ICD (VK_ICD_FILENAMES, else
#                                         the NVIDIA ICD json, else one written for libGLX_nvidia.so.0), and runs the
#                                         step benchmark on webgpu and on wasm: one JSON line per shape and backend on
#                                         stdout, everything else on stderr
#
# Options (run): --shapes 16x64,32x128,128x128   --steps N (webgpu timed steps; default 10 on a hardware GPU, 1 on a
#   software one)   --wasm-steps N (default 3)   --backends webgpu,wasm   --dir DIR (default dist/gpu-bench next to
#   this script's repo root)   --keep (leave the unpacked directory)
#   --webgpu-flags NAME=VALUE,...  one more webgpu run with these tfjs flags (repeatable), e.g.
#   --webgpu-flags WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=64: how many dispatches tfjs-webgpu records before a submit (15)
# With a software Vulkan driver (SwiftShader: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json) the default
# shape is 2x16 and one step, since SwiftShader takes about a minute per step at 16x64: that tests everything up to
# the GPU itself.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
dir="$repo/dist/gpu-bench"

DEBS="libvulkan1 libglvnd0 libglx0 libegl1 libgl1 libopengl0 libgles2 libx11-6 libx11-xcb1 libxext6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0"

# the dynamic linker's cache (ldconfig is in /sbin, which a non-root PATH may lack)
ldc() { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true; }

log() { printf 'gpu-bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

prepare() {
  command -v node >/dev/null || die "--prepare needs node (this repo's development machine)"
  [ -x "$repo/node_modules/.bin/esbuild" ] || die "--prepare needs esbuild in node_modules (npm install)"
  dawn="$repo/node_modules/webgpu/dist/linux-x64/dawn.node"
  wasm="$repo/node_modules/@tensorflow/tfjs-backend-wasm/dist"
  [ -f "$dawn" ] || die "no $dawn (the webgpu package is not installed)"
  rm -rf "$dir"
  mkdir -p "$dir/dist/linux-x64" "$dir/wasm" "$dir/model" "$dir/vulkan" "$dir/fallback-lib"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # the bundle: ESM, with require/__dirname for the CommonJS inside (Emscripten's wasm loader reads __dirname)
  "$repo/node_modules/.bin/esbuild" "$repo/scripts/step-bench.ts" --bundle --platform=node --format=esm \
    --target=node20 --log-level=warning --outfile="$tmp/step-bench.mjs" \
    --banner:js="import { createRequire as __fl_cr } from 'node:module'; import { fileURLToPath as __fl_fu } from 'node:url'; import { dirname as __fl_dn } from 'node:path'; const require = __fl_cr(import.meta.url); const __filename = __fl_fu(import.meta.url); const __dirname = __fl_dn(__filename);"
  gzip -9 -c "$tmp/step-bench.mjs" >"$dir/step-bench.mjs.gz"
  # webgpu's index.js loads <bundle dir>/dist/<platform>-<arch>/dawn.node
  gzip -9 -c "$dawn" >"$dir/dist/linux-x64/dawn.node.gz"
  cp "$wasm/tfjs-backend-wasm-simd.wasm" "$wasm/tfjs-backend-wasm.wasm" "$dir/wasm/"
  cp "$repo/models/fedlora-bert-mini/config.json" "$dir/model/"
  cp "$(command -v node)" "$tmp/node"
  if command -v strip >/dev/null; then strip "$tmp/node"; fi
  gzip -9 -c "$tmp/node" >"$dir/node.gz"
  # Debian's Vulkan loader, and the GL dispatch and X11 client libraries NVIDIA's Vulkan ICD (libGLX_nvidia.so.0)
  # links against (without them the loader fails "Could not get 'vkCreateInstance' via 'vk_icdGetInstanceProcAddr'",
  # docs/BACKENDS.md); not Mesa (libglx0's own dependency, ~100 MB), which the NVIDIA ICD does not use
  (cd "$tmp" && apt-get download $DEBS >/dev/null 2>&1) || die "apt-get download $DEBS failed"
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/vk"; done
  # real files under their sonames (no symlinks: copies of the folder may drop links); libvulkan.so.1 is the one Dawn
  # dlopens, always the bundled one; the others go to gl-lib/, used at run time only where the system lacks them
  cp -L "$tmp/vk/usr/lib/x86_64-linux-gnu/libvulkan.so.1" "$dir/vulkan/libvulkan.so.1"
  mkdir -p "$dir/gl-lib"
  for so in "$tmp"/vk/usr/lib/x86_64-linux-gnu/*.so.[0-9]; do
    case "$so" in */libvulkan.so.1) ;; *) cp -L "$so" "$dir/gl-lib/" ;; esac
  done
  for lib in libstdc++.so.6 libgcc_s.so.1; do
    cp -L "$(ldc | awk -v l="$lib" '$1 == l && /x86-64/ { print $NF; exit }')" "$dir/fallback-lib/$lib"
  done
  {
    echo "prepared $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm)"
    echo "node $(node -v); webgpu $(node -p "require('$repo/node_modules/webgpu/package.json').version")"
    echo "debs: $(cd "$tmp" && ls ./*.deb | sed 's|^./||' | tr '\n' ' ')"
    echo "commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  } >"$dir/VERSION"
  size=$(du -sk "$dir" | cut -f1)
  log "prepared $dir: $((size / 1024)) MiB"
  [ "$size" -le $((60 * 1024)) ] || die "$dir is over 60 MiB"
}

find_icd() {
  if [ -n "${VK_ICD_FILENAMES:-}" ]; then
    echo "$VK_ICD_FILENAMES"
    return
  fi
  if [ -n "${VK_DRIVER_FILES:-}" ]; then
    echo "$VK_DRIVER_FILES"
    return
  fi
  # /usr/local/nvidia/...: where the NVIDIA container runtime put it on the H100 machine of docs/BENCHMARKS.md
  for f in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
    /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/etc/vulkan/icd.d/nvidia_icd.json \
    /usr/share/vulkan/icd.d/nvidia_icd.x86_64.json /etc/vulkan/icd.d/nvidia_icd.x86_64.json \
    /usr/local/share/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$f" ]; then
      echo "$f"
      return
    fi
  done
  # containers given only the compute capability have the driver's Vulkan library but no ICD json: write one
  glx=$(ldc | awk '$1 == "libGLX_nvidia.so.0" { print $NF; exit }')
  if [ -z "$glx" ]; then
    for d in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/nvidia/lib64; do
      if [ -f "$d/libGLX_nvidia.so.0" ]; then
        glx="$d/libGLX_nvidia.so.0"
        break
      fi
    done
  fi
  if [ -n "$glx" ]; then
    printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s", "api_version": "1.3.0"}}\n' "$glx" >"$work/nvidia_icd.json"
    echo "$work/nvidia_icd.json"
  fi
}

run() {
  shapes=""
  steps=""
  wasm_steps=3
  backends="webgpu,wasm"
  keep=0
  variants=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --shapes) shapes=$2; shift 2 ;;
      --steps) steps=$2; shift 2 ;;
      --wasm-steps) wasm_steps=$2; shift 2 ;;
      --backends) backends=$2; shift 2 ;;
      --dir) dir=$2; shift 2 ;;
      --keep) keep=1; shift ;;
      --webgpu-flags)
        case "$2" in *[!A-Za-z0-9_=,.-]*) die "--webgpu-flags: NAME=VALUE,... expected, got $2" ;; esac
        variants="$variants $2"; shift 2 ;;
      -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
      *) die "unknown option $1 (see --help)" ;;
    esac
  done
  [ -f "$dir/node.gz" ] || die "no prepared folder at $dir: run scripts/gpu-bench.sh --prepare on the development machine and copy dist/gpu-bench here"
  work=$(mktemp -d "${TMPDIR:-/tmp}/fedlora-gpu-bench.XXXXXX")
  if [ "$keep" = 0 ]; then trap 'rm -rf "$work"' EXIT; fi
  mkdir -p "$work/dist/linux-x64"
  gzip -dc "$dir/node.gz" >"$work/node"
  chmod +x "$work/node"
  gzip -dc "$dir/step-bench.mjs.gz" >"$work/step-bench.mjs"
  gzip -dc "$dir/dist/linux-x64/dawn.node.gz" >"$work/dist/linux-x64/dawn.node"
  # bundled libraries other than the Vulkan loader only where the system has none (a system one must win: the NVIDIA
  # driver's libraries may need a newer libstdc++ or libX11 than Debian 12's)
  mkdir -p "$work/lib"
  have=$(ldc | awk '{ print $1 }')
  added=""
  for so in "$dir"/gl-lib/* "$dir"/fallback-lib/*; do
    [ -f "$so" ] || continue
    name=$(basename "$so")
    if ! echo "$have" | grep -qx "$name"; then
      ln -s "$so" "$work/lib/$name"
      added="$added $name"
    fi
  done
  [ -n "$added" ] && log "bundled libraries used (the system has none):$added"
  export LD_LIBRARY_PATH="$dir/vulkan:$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export FEDLORA_WASM_DIR="$dir/wasm/"
  log "$(cat "$dir/VERSION" | tr '\n' ';')"
  log "node $("$work/node" -v) from $dir/node.gz; LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  if command -v nvidia-smi >/dev/null; then
    log "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 4 | tr '\n' ';')"
  fi
  icd=$(find_icd)
  software=0
  if [ -n "$icd" ]; then
    export VK_ICD_FILENAMES="$icd"
    log "Vulkan ICD: $icd ($(tr -d '\n' <"${icd%%:*}" 2>/dev/null | cut -c1-160))"
    case "$icd" in *swiftshader*|*lvp_icd*|*lavapipe*) software=1 ;; esac
  else
    log "Vulkan ICD: none found (no VK_ICD_FILENAMES, no nvidia_icd.json, no libGLX_nvidia.so.0): webgpu will not start"
  fi
  if [ -z "$shapes" ]; then
    if [ "$software" = 1 ]; then shapes=2x16; else shapes=16x64,32x128,128x128; fi
  fi
  if [ -z "$steps" ]; then
    if [ "$software" = 1 ]; then steps=1; else steps=10; fi
  fi
  status=0
  for b in $(echo "$backends" | tr ',' ' '); do
    case "$b" in
      webgpu)
        if [ "$software" = 1 ]; then warm=1; else warm=2; fi
        "$work/node" "$work/step-bench.mjs" --backend webgpu --shapes "$shapes" --steps "$steps" --warmup "$warm" \
          --model-dir "$dir/model" || status=1
        for flags in $variants; do
          "$work/node" "$work/step-bench.mjs" --backend webgpu --shapes "$shapes" --steps "$steps" --warmup "$warm" \
            --model-dir "$dir/model" --tf-flags "$flags" || status=1
        done ;;
      wasm)
        "$work/node" "$work/step-bench.mjs" --backend wasm --shapes "$shapes" --steps "$wasm_steps" --warmup 1 \
          --model-dir "$dir/model" || status=1 ;;
      *) die "unknown backend $b (webgpu, wasm)" ;;
    esac
  done
  [ "$keep" = 1 ] && log "kept $work"
  return $status
}

if [ "${1:-}" = "--prepare" ]; then
  prepare
else
  run "$@"
fi
