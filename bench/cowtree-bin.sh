# Sourced by the benchmarks, from the repository's root: makes COWTREE the absolute path of the
# binary to measure, the one COWTREE names, else a `cargo build --release` of this checkout's
# (run as the user who ran sudo, if any, so that target/ stays theirs).
if [[ -z "${COWTREE:-}" ]]; then
  printf 'bench: building cowtree --release\n' >&2
  if [[ -n "${SUDO_USER:-}" && "$SUDO_USER" != root ]]; then
    sudo -u "$SUDO_USER" -H env PATH="$PATH" cargo build --release --quiet -p cowtree-cli
  else
    cargo build --release --quiet -p cowtree-cli
  fi
  COWTREE="${CARGO_TARGET_DIR:-$PWD/target}/release/cowtree"
fi
[[ -x "$COWTREE" ]] || { printf 'bench: COWTREE=%s is not an executable\n' "$COWTREE" >&2; exit 1; }
COWTREE=$(realpath "$COWTREE")
