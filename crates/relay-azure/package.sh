#!/usr/bin/env bash
# Builds the relay's Azure Function App: the release binary for Linux x64
# (Linux Consumption and Flex Consumption run x86_64 Linux) next to host.json
# and one folder per function, in target/azure-function-app/, zipped into
# target/azure-function-app.zip for zip deployment
# (`az functionapp deployment source config-zip --src target/azure-function-app.zip …`
# or Terraform's zip_deploy_file).
#
# Usage: crates/relay-azure/package.sh            (from anywhere)
#        TARGET=x86_64-unknown-linux-musl crates/relay-azure/package.sh
#
# The default target is x86_64-unknown-linux-gnu, the native toolchain of an
# x86_64 Linux build machine. A glibc binary needs the glibc it was linked
# against or newer at run time: this script prints the version the binary
# requires. Current Functions Linux images are Debian 12 (glibc 2.36) or
# Ubuntu 24.04 (2.39); older Debian 11 images have 2.31, and a binary built
# on a new distribution (which needs 2.34+) does not start there. When in
# doubt build the fully static musl binary instead (needs musl-tools, i.e.
# musl-gcc, for the aws-lc C code of rustls):
#   rustup target add x86_64-unknown-linux-musl && apt-get install musl-tools
#   TARGET=x86_64-unknown-linux-musl crates/relay-azure/package.sh
set -euo pipefail

crate_dir="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$crate_dir/../.." && pwd)"
target="${TARGET:-x86_64-unknown-linux-gnu}"
out="$root/target/azure-function-app"
zip_path="$root/target/azure-function-app.zip"

cd "$root"
cargo build --release --locked -p relay-azure --target "$target"

rm -rf "$out" "$zip_path"
mkdir -p "$out"
cp "$crate_dir/app/host.json" "$out/"
# Every function folder of app/ (one function.json each).
for dir in "$crate_dir"/app/*/; do
  function="$(basename "$dir")"
  [ -f "$dir/function.json" ] || continue
  mkdir -p "$out/$function"
  cp "$dir/function.json" "$out/$function/"
done
install -m 0755 "$root/target/$target/release/relay-azure" "$out/relay-azure"

# Zip the folder's contents (host.json at the root of the archive) and keep
# the executable bit: the host starts the handler directly.
if command -v zip >/dev/null 2>&1; then
  (cd "$out" && zip -q -r -X "$zip_path" .)
else
  python3 - "$out" "$zip_path" <<'PY'
import os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
    for base, _, files in os.walk(src):
        for name in sorted(files):
            path = os.path.join(base, name)
            info = zipfile.ZipInfo.from_file(path, os.path.relpath(path, src))
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as f:
                z.writestr(info, f.read())
PY
fi

# What glibc the binary needs (none for musl: static).
glibc="static (no glibc needed)"
if [[ "$target" == *-gnu ]] && command -v objdump >/dev/null 2>&1; then
  glibc="glibc >= $(objdump -T "$out/relay-azure" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)"
fi

size=$(wc -c <"$out/relay-azure")
echo "Function App folder: $out"
echo "Zip for deployment:  $zip_path ($(wc -c <"$zip_path") bytes; handler $size bytes, $target, $glibc)"
