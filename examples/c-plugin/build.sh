#!/usr/bin/env bash
# Builds blocklist.wasm, a WebAssembly component, from blocklist.c and the
# wit-bindgen C bindings in bindings/.
#
#   ./build.sh              build blocklist.wasm
#   ./build.sh --check      build into a temporary file and compare it with
#                           the committed blocklist.wasm (exit 1 if they differ)
#   ./build.sh --bindings   regenerate bindings/ first (needs wit-bindgen-cli
#                           0.63: cargo install wit-bindgen-cli --version 0.63.0)
#
# Tools (Debian 12: apt-get install clang-16 lld-16 wasi-libc
# libclang-rt-16-dev-wasm32; the Rust toolchain ships wasm-component-ld):
#   CC                 a clang with the wasm32 backend        (default: clang-16, else clang)
#   WASM_LD            wasm-ld, which wasm-component-ld runs  (default: wasm-ld-16, else wasm-ld)
#   WASM_COMPONENT_LD  wasm-component-ld                      (default: the one in rustc's sysroot)
#   WASI_SYSROOT       a wasi-libc sysroot                    (default: clang's own, /usr on Debian)
set -euo pipefail
cd "$(dirname "$0")"

check=false
for arg in "$@"; do
    case "$arg" in
        --check) check=true ;;
        --bindings)
            wit-bindgen c --world participant-plugin --out-dir bindings ../../wit/participant@1.0.0 ;;
        *) echo "usage: $0 [--check] [--bindings]" >&2; exit 2 ;;
    esac
done

first_of() {
    for tool in "$@"; do
        if command -v "$tool" >/dev/null 2>&1; then command -v "$tool"; return; fi
    done
    echo "none of $* found; see the top of $0" >&2
    exit 1
}
CC=${CC:-$(first_of clang-16 clang)}
WASM_LD=${WASM_LD:-$(first_of wasm-ld-16 wasm-ld)}
if [ -z "${WASM_COMPONENT_LD:-}" ]; then
    host=$(rustc -vV | sed -n 's/^host: //p')
    WASM_COMPONENT_LD="$(rustc --print sysroot)/lib/rustlib/$host/bin/wasm-component-ld"
fi
[ -x "$WASM_COMPONENT_LD" ] || { echo "no wasm-component-ld at $WASM_COMPONENT_LD" >&2; exit 1; }

target=(--target=wasm32-wasi)
if [ -n "${WASI_SYSROOT:-}" ]; then target+=(--sysroot="$WASI_SYSROOT"); fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. Compile: a core wasm32 object per C file. The participant is held to
#    -Werror; the generated bindings are not ours to fix.
"$CC" "${target[@]}" -Os -std=c11 -Wall -Wextra -Werror -Ibindings \
    -c blocklist.c -o "$work/blocklist.o"
"$CC" "${target[@]}" -Os -std=c11 -c bindings/participant_plugin.c -o "$work/participant_plugin.o"

# 2. Link and componentize in one step: clang drives wasm-component-ld as its
#    linker, which runs wasm-ld (a reactor: no main, `_initialize` runs the
#    constructors) and then turns the core module into a component, reading
#    the world's type from participant_plugin_component_type.o. The module
#    imports nothing from WASI, so no WASI adapter is needed. Names and debug
#    information are stripped: the component is ~19 KB.
out="$work/blocklist.wasm"
"$CC" "${target[@]}" -Os -mexec-model=reactor \
    -fuse-ld="$WASM_COMPONENT_LD" \
    -Wl,--wasm-ld-path="$WASM_LD" \
    -Wl,--wasi-adapter=none \
    -Wl,--strip-all \
    "$work/blocklist.o" "$work/participant_plugin.o" bindings/participant_plugin_component_type.o \
    -o "$out"

if $check; then
    if cmp -s "$out" blocklist.wasm; then
        echo "blocklist.wasm is what build.sh produces ($(wc -c <"$out") bytes)"
    else
        echo "blocklist.wasm differs from what build.sh produces: rebuild and commit it" >&2
        exit 1
    fi
else
    cp "$out" blocklist.wasm
    echo "built $(pwd)/blocklist.wasm ($(wc -c <blocklist.wasm) bytes)"
fi
