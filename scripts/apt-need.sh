# shellcheck shell=bash
# Sourced by the scripts that install their own Debian packages (check-macos.sh,
# build-macos.sh, windows.sh): cowtree_need_packages WHO PKG... installs the packages not
# installed yet (from the package lists as they are, then once more after refreshing them),
# saying so as WHO; exits the script when they cannot be installed.
cowtree_need_packages() {
  local who=$1 p
  shift
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "$who: installing ${missing[*]}"
  command -v apt-get >/dev/null || { echo "$who: no apt-get to install ${missing[*]}" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
    { echo "$who: could not install ${missing[*]}" >&2; exit 1; }
}
