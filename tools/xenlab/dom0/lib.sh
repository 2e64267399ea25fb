# xenlab dom0 helpers, sourced by dom0/init and by every scenario (bash). A scenario writes its outcome in
# $XL_SDIR: 'error' (why it failed; any line there fails it), 'figures' (key=value lines), 'step' (where it is).

XL_IMAGES=/var/lib/xenlab
XL_CONSOLES=/var/log/xen/console   # copied to $XL_OUT/consoles every 20 s and at the end of each scenario

lab_log() { echo "[$(cut -d' ' -f1 /proc/uptime)] $*" >&2; }
lab_fatal() { echo "XENLAB-FATAL $*"; echo "$*" >"$XL_OUT/fatal"; sleep 1; busybox poweroff -f; }
lab_step() { lab_log "step: $*"; [ -n "${XL_SDIR:-}" ] && echo "$*" >"$XL_SDIR/step"; }
lab_fail() { lab_log "FAIL: $*"; echo "$*" >>"$XL_SDIR/error"; exit 1; }
lab_check() { lab_log "check failed: $*"; echo "$*" >>"$XL_SDIR/error"; }   # records, carries on
lab_figure() { lab_log "figure $1=$2"; echo "$1=$2" >>"$XL_SDIR/figures"; }
lab_now() { date +%s%N; }
lab_secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", (b - a) / 1e9}'; }

# lab_wait SECONDS WHAT COMMAND...: polls COMMAND every 0.25 s; 1 when the deadline passes.
lab_wait() {
    local secs=$1 what=$2 end; shift 2
    end=$(( $(date +%s) + secs ))
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$end" ]; then lab_log "gave up waiting ${secs}s for $what"; return 1; fi
        sleep 0.25
    done
}

blktap() { dotnet "$XL_BLKTAP_DLL" "$@"; }

# ---- the blktap xen serve process (one per chain; kept across scenarios while the chain is the same) ----
XL_SERVE_STATE=/run/xenlab-serve
lab_serve_pid() { cat "$XL_SERVE_STATE.pid" 2>/dev/null; }
lab_serve_log() { cat "$XL_SERVE_STATE.log" 2>/dev/null; }
lab_serve_alive() { local p; p=$(lab_serve_pid); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

# lab_serve TAP...: makes sure 'blktap xen serve --tap TAP...' runs and serves; figure serve_start_s when started.
lab_serve() {
    local chain="$*" n log t0 args=() t
    XL_USING_SERVE=1
    if lab_serve_alive && [ "$(cat "$XL_SERVE_STATE.chain")" = "$chain" ]; then return 0; fi
    lab_serve_stop
    n=$(ls "$XL_OUT"/blktap-serve-*.log 2>/dev/null | wc -l)
    log="$XL_OUT/blktap-serve-$((n + 1)).log"
    for t in "$@"; do args+=(--tap "$t"); done
    lab_step "starting blktap xen serve ${args[*]}"
    mkdir -p /var/lib/xenlab/serve-cwd
    t0=$(lab_now)
    # The wrapper records how the server ended (an exit code, or 128+signal) in the log.
    (cd /var/lib/xenlab/serve-cwd || exit 1
     DOTNET_hostBuilder__reloadConfigOnChange=false setsid dotnet "$XL_BLKTAP_DLL" xen serve "${args[@]}" >"$log" 2>&1 </dev/null &
     echo $! >"$XL_SERVE_STATE.pid"; wait $!; rc=$?
     echo "xenlab: blktap xen serve exited with status $rc at $(cut -d' ' -f1 /proc/uptime)" >>"$log"
     [ $rc -ge 128 ] && dmesg | tail -30 >>"$log") &
    lab_wait 10 "the server's pid" test -s "$XL_SERVE_STATE.pid"
    echo "$chain" >"$XL_SERVE_STATE.chain"
    echo "$log" >"$XL_SERVE_STATE.log"
    if ! lab_wait "$XL_SERVE_TIMEOUT" "blktap xen serve to log 'serving'" grep -q "serving /local" "$log"; then
        lab_serve_alive || lab_fail "blktap xen serve exited: $(tail -5 "$log" | tr '\n' ' ')"
        lab_fail "blktap xen serve did not log 'serving' within ${XL_SERVE_TIMEOUT}s"
    fi
    lab_figure serve_start_s "$(lab_secs "$t0" "$(lab_now)")"
    echo "$(lab_secs "$t0" "$(lab_now)") $chain" >>"$XL_OUT/serve-starts"
}

lab_serve_stop() {
    local p; p=$(lab_serve_pid)
    [ -n "$p" ] || return 0
    if kill -0 "$p" 2>/dev/null; then
        kill -TERM "$p"
        lab_wait 60 "blktap xen serve to stop" bash -c "! kill -0 $p" || kill -KILL "$p"
    fi
    rm -f "$XL_SERVE_STATE.pid" "$XL_SERVE_STATE.chain"
}

# ---- images ----
# lab_image PATH MIB: a raw image whose every 512-byte sector starts with its number ("XENLAB-INIT sector=N", so a
# misplaced read names the sector it came from) followed by random bytes; prints its sha256.
lab_image() {
    mkdir -p "$(dirname "$1")"
    python3 -c 'import os, sys
n = int(sys.argv[2]) * 2048
with open(sys.argv[1], "wb") as f:
    for i in range(0, n, 256):
        rnd = os.urandom(480 * 256)
        f.write(b"".join(b"XENLAB-INIT sector=%012d\n" % (i + k) + rnd[480 * k:480 * (k + 1)] for k in range(256)))' "$1.rnd" "$2"
    mv "$1.rnd" "$1"
    local sha v; sha=$(sha256sum "$1" | cut -d' ' -f1)
    # The workload's own SHA-256, run in dom0 on the same file: tells a wrong digest from a wrong read.
    if [ -x "$XL_OUT/workload/verify" ]; then
        v=$("$XL_OUT/workload/verify" digest --dev "$1" --no-direct 2>&1 | awk '/XENLAB-DIGEST/ {print $2}')
        lab_log "dom0: sha256sum $sha, verify digest $v ($1)"
        [ "$v" = "$sha" ] || lab_check "in dom0, verify digest of $1 is $v but sha256sum says $sha"
    fi
    echo "$sha"
}
lab_sha() { sha256sum "$1" | cut -d' ' -f1; }

# ---- domUs ----
lab_console() { echo "$XL_CONSOLES/guest-$1.log"; }

# lab_domu NAME KEY=VALUE...: creates a paused PV domU (no disk) whose init reads xenlab.KEY=VALUE; prints its domid.
lab_domu() {
    local name=$1 cfg extra="console=hvc0 loglevel=4" kv; shift
    for kv in "$@"; do extra="$extra xenlab.$kv"; done
    cfg="$XL_IMAGES/$name.cfg"
    mkdir -p "$XL_IMAGES"
    cat >"$cfg" <<CFG
name = "$name"
type = "pv"
kernel = "$XL_VMLINUX"
ramdisk = "$XL_DOMU_INITRD"
extra = "$extra"
memory = $XL_DOMU_MEM
vcpus = ${XL_DOMU_VCPUS:-1}
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
${XL_DOMU_EXTRA_CFG:-}
CFG
    rm -f "$(lab_console "$name")"
    xl create -p "$cfg" >>"$XL_SDIR/xl.log" 2>&1 || lab_fail "xl create -p $name failed: $(tail -3 "$XL_SDIR/xl.log" | tr '\n' ' ')"
    xl domid "$name"
}

# lab_attach DOMID IMAGE [blktap xen attach options]: the project's verb writes the vbd3 nodes.
lab_attach() {
    local d=$1 img=$2; shift 2
    blktap xen attach --domain "$d" --vdev xvda --params "$img" "$@" >>"$XL_SDIR/attach.log" 2>&1 \
        || lab_fail "blktap xen attach --domain $d --params $img failed: $(tail -3 "$XL_SDIR/attach.log" | tr '\n' ' ')"
}

# lab_wait_console NAME REGEX SECONDS: waits for a console line matching REGEX; prints the last such line.
lab_wait_console() {
    local f; f=$(lab_console "$1")
    lab_wait "$3" "$1's console to show /$2/" lab_console_or_dead "$2" "$f" || return 1
    if ! grep -qaE "$2" "$f"; then
        lab_check "blktap xen serve died while $1 waited for /$2/: $(grep -a 'exited with status' "$(lab_serve_log)" | tail -1)"
        return 1
    fi
    grep -aE "$2" "$f" | tail -1 | tr -d '\r'
}

# True when the console shows the pattern, or when the server that should be serving it is gone.
lab_console_or_dead() {
    grep -qaE "$1" "$2" && return 0
    [ "${XL_USING_SERVE:-0}" = 1 ] && ! lab_serve_alive && return 0
    return 1
}

lab_domain_exists() { xl domid "$1" >/dev/null 2>&1; }
lab_wait_gone() { lab_wait "$2" "domain $1 to go away" bash -c "! xl domid '$1'"; }

# lab_verify NAME SECONDS: waits for the domU's XENLAB-VERIFY line; fails the scenario unless ok; prints the line.
lab_verify() {
    local line
    # The domU's end without a result line (the workload crashed, say) fails at once instead of at the deadline.
    line=$(lab_wait_console "$1" "XENLAB-VERIFY (ok|FAIL)|XENLAB-DOMU-END" "$2") || lab_fail "no XENLAB-VERIFY line from $1 within $2 s (console: $(tail -3 "$(lab_console "$1")" | tr '\r\n' '  '))"
    case "$line" in *XENLAB-DOMU-END*)
        line=$(grep -aE "XENLAB-VERIFY (ok|FAIL)" "$(lab_console "$1")" | tail -1 | tr -d '\r') ;; esac
    case "$line" in ""|*XENLAB-DOMU-END*)
        lab_fail "$1 ended without a XENLAB-VERIFY line (console: $(grep -av '^\[' "$(lab_console "$1")" | tail -4 | tr '\r\n' '  '))" ;; esac
    lab_log "$1: $line"
    case "$line" in *"XENLAB-VERIFY ok"*) ;; *)
        lab_fail "$1: $line" ;; esac
    echo "$line"
}
lab_field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }

# Timing of one domU run: from xl create to the domain being gone.
lab_run_domu() {   # NAME IMAGE KEY=VALUE...  (attach with blktap, unpause, verify, wait gone) -> prints the verify line
    local name=$1 img=$2 d line; shift 2
    d=$(lab_domu "$name" "$@") || exit 1
    lab_attach "$d" "$img"
    xl unpause "$d"
    line=$(lab_verify "$name" "$XL_DOMU_TIMEOUT") || exit 1
    lab_wait_gone "$name" 120 || lab_fail "$name did not shut down after its workload"
    echo "$line"
}

lab_dump_state() {
    local dir=$1 p
    xenstore-ls -fp >"$dir/xenstore-ls.txt" 2>&1
    xl list >"$dir/xl-list.txt" 2>&1
    p=$(lab_serve_pid)
    if [ -n "$p" ] && [ -d "/proc/$p" ]; then
        ls -l "/proc/$p/fd" >"$dir/blktap-fds.txt" 2>&1
        grep -c gntdev "/proc/$p/maps" >"$dir/blktap-gntdev-maps.txt" 2>&1
    fi
    dmesg | tail -100 >"$dir/dmesg-tail.txt"
}

lab_cleanup_domains() {
    local d
    for d in $(xl list 2>/dev/null | awk 'NR > 1 && $2 != 0 {print $2}'); do xl destroy "$d" >/dev/null 2>&1; done
}

# ---- the kernel's blkback as a chain's lower end (interpose scenarios) ----
# lab_lower_attach IMAGE: a loop device over IMAGE served by xen-blkback to a vbd of dom0 itself (xvdb, 51728), the
# way a user makes one: xl block-attach 0. Nothing in dom0 drives its frontend (xen-blkfront is not loaded): the
# chain's vbd tap is that frontend. Sets XL_LOWER_LOOP.
lab_lower_attach() {
    local img=$1
    XL_LOWER_LOOP=$(losetup -f --show "$img") || lab_fail "losetup $img failed"
    lab_step "xl block-attach 0 phy:$XL_LOWER_LOOP,xvdb,w"
    xl block-attach 0 "phy:$XL_LOWER_LOOP,xvdb,w" >"$XL_SDIR/block-attach.log" 2>&1 \
        || lab_fail "xl block-attach 0 phy:$XL_LOWER_LOOP,xvdb,w failed: $(tail -3 "$XL_SDIR/block-attach.log" | tr '\n' ' ')"
    lab_wait 60 "blkback to wait for dom0's frontend (backend/vbd/0/51728 state 2)" \
        bash -c '[ "$(xenstore-read /local/domain/0/backend/vbd/0/51728/state 2>/dev/null)" = 2 ]' \
        || lab_fail "the kernel's blkback did not reach InitWait for dom0's xvdb: $(xenstore-ls -f /local/domain/0/backend/vbd/0 2>&1 | head -20 | tr '\n' ' ')"
}

# lab_lower_detach: the vbd and the loop device go away (after the server that used them stopped).
lab_lower_detach() {
    xl block-detach 0 xvdb >>"$XL_SDIR/block-attach.log" 2>&1 || lab_check "xl block-detach 0 xvdb failed: $(tail -2 "$XL_SDIR/block-attach.log" | tr '\n' ' ')"
    lab_wait 30 "xl to remove backend/vbd/0/51728" bash -c '! xenstore-read /local/domain/0/backend/vbd/0/51728/state >/dev/null 2>&1' \
        || lab_check "backend/vbd/0/51728 is still there after xl block-detach"
    losetup -d "$XL_LOWER_LOOP" 2>/dev/null || lab_check "losetup -d $XL_LOWER_LOOP failed (still in use?)"
}
