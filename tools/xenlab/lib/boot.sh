# xenlab: boot Xen + dom0 under qemu (TCG), follow the console's XENLAB-* markers, enforce the global timeout.

XL_QEMU_PID=""

# Everything dom0/init needs, as shell assignments it sources from the output share.
xl_write_env() {
    cat >"$XL_OUT/lab.env" <<ENV
export XL_SCENARIOS="$XL_SCENARIOS"
export XL_REPO="$XL_REPO"
export XL_BLKTAP_DLL="$XL_BLKTAP_DLL"
export XL_TESTS_DLL="$XL_TESTS_DLL"
export XL_VMLINUX="$XL_VMLINUX"
export XL_DOMU_INITRD="$XL_DOMU_INITRD"
export XL_DOMU_MEM=${XENLAB_DOMU_MEM:-256}
export XL_IMAGE_MIB=${XENLAB_IMAGE_MIB:-32}
export XL_OPS=${XENLAB_OPS:-2000}
export XL_BENCH_SECONDS=${XENLAB_BENCH_SECONDS:-10}
export XL_SERVE_TIMEOUT=${XENLAB_SERVE_TIMEOUT:-400}
export XL_DOMU_TIMEOUT=${XENLAB_DOMU_TIMEOUT:-400}
export XL_SCENARIO_TIMEOUT=${XENLAB_SCENARIO_TIMEOUT:-1200}
export XL_SHELL=$1
# .NET's background tier-1 JIT crashed (SIGSEGV in libclrjit.so, ".NET Tiered Com" thread) in blktap xen serve
# under load in this dom0 (TCG); XENLAB_DOTNET_TIERED=1 puts tiered compilation back to see it again.
export DOTNET_TieredCompilation=${XENLAB_DOTNET_TIERED:-0}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1 DOTNET_CLI_HOME=/tmp/dotnet-home
ENV
}

xl_qemu_stop() {
    [ -n "$XL_QEMU_PID" ] || return 0
    if kill -0 "$XL_QEMU_PID" 2>/dev/null; then kill -TERM "$XL_QEMU_PID" 2>/dev/null; sleep 1; kill -KILL "$XL_QEMU_PID" 2>/dev/null; fi
    wait "$XL_QEMU_PID" 2>/dev/null
    XL_QEMU_PID=""
}

xl_boot_and_wait() {
    local shell=$1 console="$XL_OUT/console.log" accel=tcg cpu=${XENLAB_QEMU_CPU:-max,-smap,-smep,-pcid,-invpcid,-xsave,-xsaveopt,-fsgsbase,-avx,-avx2,-fma,-f16c,-vaes,-vpclmulqdq,-avx512f} serial
    # -smap/-smep: plain max crashes dom0 in create_bounce_frame. No AVX: qemu 7.2 (Debian 12) is the first TCG
    # with AVX/AVX2; with them advertised, .NET's JIT segfaulted in dom0 and the domU sometimes read different
    # bytes than the image held through blktap. Without AVX, on a busy host, guest processes still lost register
    # contents (48 zero bytes in a memcpy, one 128-byte AES-NI batch wrong, segfaults, ld.so assertions): the suspect
    # is the FPU/SSE state save and restore across context switches, so XSAVE/XSAVEOPT (Xen and Linux then use
    # FXSAVE) and FSGSBASE are masked too, and PCID/INVPCID. XENLAB_QEMU_CPU overrides.
    # KVM only where it can run a PV dom0; these machines' /dev/kvm cannot (issue 15), so TCG unless asked.
    # XENLAB_TCG_THREAD=single|multi: one host thread for every vCPU, or one each (MTTCG).
    [ "${XENLAB_TCG_THREAD:-multi}" = single ] && accel="tcg,thread=single"
    if [ "${XENLAB_ACCEL:-tcg}" = kvm ] && [ -w /dev/kvm ]; then accel=kvm; cpu=host; fi
    XL_ACCEL=${accel%%,*}
    echo "$accel" >"$XL_OUT/accel"
    local xen_args="console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=2"
    # Multiboot module arguments are split at commas by qemu's -initrd: none below.
    local dom0_args="console=hvc0 earlyprintk=xen loglevel=4 xenlab.out=$XL_OUT xenlab.repo=$XL_REPO"
    [ -n "${XENLAB_QEMU_SMP:-}" ] || XENLAB_QEMU_SMP=2
    local qemu=(qemu-system-x86_64 -machine q35 -accel $accel -cpu $cpu -smp "$XENLAB_QEMU_SMP" -m 3072
        -kernel "$XL_XEN" -append "$xen_args"
        -initrd "$XL_VMLINUX $dom0_args,$XL_DOM0_INITRD"
        -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
        -virtfs "local,path=$XL_TREE,mount_tag=xltree,security_model=none,readonly=on,multidevs=remap"
        -virtfs "local,path=$XL_OUT,mount_tag=xlout,security_model=none,multidevs=remap"
        -display none -no-reboot -net none)
    if [ "$shell" = 1 ]; then
        xl_log "booting Xen with the console on this terminal (--shell); scenarios: $XL_SCENARIOS"
        "${qemu[@]}" -serial mon:stdio 2>"$XL_OUT/qemu.stderr" | tee "$console"
        return 0
    fi
    printf '%q ' "${qemu[@]}" >"$XL_OUT/qemu.cmdline"
    : >"$console"
    "${qemu[@]}" -serial "file:$console" -monitor none 2>"$XL_OUT/qemu.stderr" &
    XL_QEMU_PID=$!
    xl_log "qemu (pid $XL_QEMU_PID, accel $accel) booting Xen $XL_XEN_VERSION, dom0 $XL_KVER; console: $console"
    local seen=0 deadline=$(( $(date +%s) + XL_TIMEOUT )) line n last="qemu started"
    while :; do
        n=$(grep -ac 'XENLAB-' "$console")
        if [ "$n" -gt "$seen" ]; then
            grep -a 'XENLAB-' "$console" | tail -n +$((seen + 1)) | head -n $((n - seen)) | tr -d '\r' | while IFS= read -r line; do xl_log "dom0: ${line#*XENLAB-}"; done
            last=$(grep -a 'XENLAB-' "$console" | sed -n "${n}p" | tr -d '\r')
            seen=$n
        fi
        grep -aq 'XENLAB-DONE' "$console" && break
        if grep -aq 'XENLAB-FATAL' "$console"; then XL_FATAL="dom0: $(grep -a 'XENLAB-FATAL' "$console" | head -1 | tr -d '\r')"; break; fi
        if grep -aqE 'Kernel panic|Hardware Dom0 crashed|Panic on CPU' "$console"; then
            XL_FATAL="crash: $(grep -aE 'Kernel panic|Hardware Dom0 crashed|Panic on CPU' "$console" | head -1 | tr -d '\r') (last marker: $last)"; break
        fi
        if ! kill -0 "$XL_QEMU_PID" 2>/dev/null; then
            XL_FATAL="qemu exited before dom0 finished (last marker: $last; see $console, $XL_OUT/qemu.stderr)"; break
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            XL_FATAL="global timeout ${XL_TIMEOUT}s (--timeout): still running or hung after '$last' (step: $(cat "$XL_OUT/current-step" 2>/dev/null); scenario step: $(cat "$XL_OUT"/scenarios/*/step 2>/dev/null | tail -1))"
            break
        fi
        sleep 1
    done
    # dom0 powers off after XENLAB-DONE; give it a moment to flush the share.
    local i=0
    while kill -0 "$XL_QEMU_PID" 2>/dev/null && [ $i -lt 30 ]; do sleep 1; i=$((i + 1)); done
    xl_qemu_stop
    [ -z "${XL_FATAL:-}" ] || { xl_log "FATAL: $XL_FATAL"; return 1; }
}
