# xenlab: logging and small helpers shared by the host-side scripts.
XL_T0=$(date +%s)
xl_log() { printf '[xenlab %4ss] %s\n' "$(( $(date +%s) - XL_T0 ))" "$*" >&2; }
xl_die() { xl_log "FATAL: $*"; XL_FATAL="$*"; exit 3; }
# Times a step: xl_step NAME command...; records "NAME seconds" in $XL_OUT/steps.
xl_step() {
    local name=$1 t; shift
    t=$(date +%s)
    XL_CURRENT_STEP=$name
    echo "$name" >"$XL_OUT/current-step"
    "$@"
    local rc=$?
    echo "$name $(( $(date +%s) - t ))" >>"$XL_OUT/steps"
    return $rc
}
