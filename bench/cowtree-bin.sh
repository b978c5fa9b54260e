# Sourced by the benchmarks, from the repository's root: makes COWTREE the absolute path of the
# binary to measure, the one COWTREE names, else a `cargo build --release` of this checkout's
# into $CARGO_TARGET_DIR (default target/), built by the user running the benchmark (root,
# under sudo).
if [[ -z "${COWTREE:-}" ]]; then
  printf 'bench: building cowtree --release\n' >&2
  cargo build --release --quiet -p cowtree-cli
  COWTREE="${CARGO_TARGET_DIR:-$PWD/target}/release/cowtree"
fi
[[ -x "$COWTREE" ]] || { printf 'bench: COWTREE=%s is not an executable\n' "$COWTREE" >&2; exit 1; }
COWTREE=$(realpath "$COWTREE")
