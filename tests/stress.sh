#!/usr/bin/env bash
# tests/stress.sh [N]: runs ./test.sh N times (default 3) while two CPU burners run beside it, the way a
# busy dom0 or a shared CI machine runs the suite. Prints each run's closing line ("N passed, N failed[,
# N skipped]") and the name of every test that failed in any run; exits non-zero if any run failed.
# Burners: `stress-ng --cpu 2` (installed with apt-get when missing), else two shell busy loops.
set -uo pipefail
cd "$(dirname "$0")/.."

runs="${1:-3}"
case "$runs" in ''|*[!0-9]*|0) echo "usage: tests/stress.sh [N >= 1]" >&2; exit 2 ;; esac

# The Xen lab (when ./test.sh runs one) is skipped under stress by default: it is a separate harness
# with its own deadlines, not part of what this script checks. Export BLKTAP_XENLAB=1 to include it.
export BLKTAP_XENLAB="${BLKTAP_XENLAB:-0}"

# Another apt-get (a parallel ./test.sh installing its peers) may hold the dpkg lock: wait for it.
if ! command -v stress-ng >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  { $SUDO apt-get update -qq -o DPkg::Lock::Timeout=300 && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends stress-ng; } >/dev/null 2>&1 \
    || echo "stress.sh: stress-ng not installed; burning CPU with shell loops instead"
fi

burners=()
logs=$(mktemp -d)
stop_burners() {
  for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${burners[@]}"; do wait "$pid" 2>/dev/null; done
  burners=()
}
trap 'stop_burners; rm -rf "$logs"' EXIT
trap 'exit 130' INT TERM

if command -v stress-ng >/dev/null 2>&1; then
  stress-ng --cpu 2 --quiet >/dev/null 2>&1 &
  burners+=($!)
  what="stress-ng --cpu 2"
else
  for _ in 1 2; do
    ( while :; do :; done ) &
    burners+=($!)
  done
  what="two shell busy loops"
fi
echo "stress.sh: $runs run(s) of ./test.sh beside $what (pid ${burners[*]})"

failed_runs=0
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  ./test.sh >"$logs/out.$i" 2>"$logs/err.$i"
  status=$?
  closing=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$logs/out.$i" | tail -1)
  echo "run $i: ${closing:-no closing line} (exit $status, $(( $(date +%s) - start )) s)"
  if [ "$status" -ne 0 ]; then
    failed_runs=$((failed_runs + 1))
    [ -n "$closing" ] || tail -20 "$logs/err.$i" "$logs/out.$i" | sed 's/^/  | /'
    kept=$(mktemp -d /tmp/stress-run-$i-XXXX)
    cp "$logs/out.$i" "$logs/err.$i" "$kept/" && echo "run $i: full output kept in $kept"
  fi
  grep -E '^FAILED ' "$logs/err.$i" | sed "s/^/run $i: /"
done

names=$(cat "$logs"/err.* | grep -E '^FAILED ' | awk '{ sub(/^FAILED /, ""); print substr($0, 1, index($0, ": ") - 1) }' | sort | uniq -c)
if [ -n "$names" ]; then
  echo "tests that failed (count of runs):"
  echo "$names"
fi
echo "stress.sh: $failed_runs of $runs run(s) failed"
[ "$failed_runs" -eq 0 ]
