#!/usr/bin/env bash
# Builds the xenlab verifying workload as a static x86_64 binary: tools/xenlab/workload/build.sh OUTDIR
# writes OUTDIR/verify. Installs gcc and libc6-dev (libc.a) with apt-get when they are missing.
# CC overrides the compiler (default gcc). Exit 0 on success; 2 on bad usage.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
out="$1"
cc="${CC:-gcc}"

libc_a() {
  for f in /usr/lib/x86_64-linux-gnu/libc.a /usr/lib64/libc.a /usr/lib/libc.a; do
    [ -f "$f" ] && return 0
  done
  return 1
}

if ! command -v "$cc" >/dev/null 2>&1 || ! libc_a; then
  echo "build.sh: installing gcc and libc6-dev" >&2
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null
fi

mkdir -p "$out"
tmp="$out/.verify.$$"
trap 'rm -f "$tmp"' EXIT
"$cc" -std=c11 -static -O2 -Wall -Wextra -Werror -s -o "$tmp" "$here/verify.c" "$here/sha256.c"
mv -f "$tmp" "$out/verify"
echo "$out/verify"
