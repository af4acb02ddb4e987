#!/usr/bin/env bash
# Runs one fuzz target with libFuzzer (cargo-fuzz), its committed corpus
# and the fixtures it is seeded from. Usage:
#
#   fuzz/run.sh TARGET [libFuzzer options…]     e.g. fuzz/run.sh okta -max_total_time=60
#   fuzz/run.sh --list                           the targets
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a toolchain
# that takes `-Z` flags: the nightly toolchain when installed (`rustup
# toolchain install nightly`), else the stable one with RUSTC_BOOTSTRAP=1.
# FUZZ_SANITIZER=address|none (default none: the relay is safe Rust, and
# libFuzzer runs 2-3x faster without ASan). New inputs libFuzzer finds go
# into fuzz/work/corpus/TARGET (git-ignored; it grows across runs), crashes
# into fuzz/artifacts/TARGET; the committed corpus fuzz/corpus/TARGET and
# the fixtures are read only (README.md: what to commit).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

if [[ "${1:-}" == "--list" ]]; then
  sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^relay-fuzz$'
  exit 0
fi
target="${1:?usage: fuzz/run.sh TARGET [libFuzzer options…] (fuzz/run.sh --list)}"
shift

# The fixtures each target is seeded from, read-only next to its corpus.
case "$target" in
  okta) seeds=(../tests/fixtures/okta) ;;
  auth0_events | auth0_logs) seeds=(../tests/fixtures/auth0) ;;
  *) seeds=() ;;
esac

if rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(cargo +nightly)
else
  echo "no nightly toolchain: using stable with RUSTC_BOOTSTRAP=1" >&2
  export RUSTC_BOOTSTRAP=1
  toolchain=(cargo)
fi

mkdir -p "work/corpus/$target" "corpus/$target"
exec "${toolchain[@]}" fuzz run -s "${FUZZ_SANITIZER:-none}" "$target" \
  "work/corpus/$target" "corpus/$target" "${seeds[@]}" -- "$@"
