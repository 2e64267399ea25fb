# bench: 4 KiB random reads/writes and 1 MiB sequential reads from a domU, blktap xen serve --tap img vs blkback (ratios)
img=$XL_IMAGES/bench.raw
lab_image "$img" "$XL_IMAGE_MIB" >/dev/null
modes="randread4k+randwrite4k+seqread1m"
parse() {   # NAME PREFIX: figures from the domU's XENLAB-BENCH lines
    local f line m; f=$(lab_console "$1")
    for m in randread4k randwrite4k seqread1m; do
        line=$(grep -a "XENLAB-BENCH mode=$m " "$f" | tail -1 | tr -d '\r')
        [ -n "$line" ] || lab_fail "$1: no XENLAB-BENCH line for $m"
        lab_figure "${2}_${m}_iops" "$(lab_field "$line" iops)"
        lab_figure "${2}_${m}_mib_s" "$(lab_field "$line" mib_s)"
    done
}
lab_serve img
d=$(lab_domu bench-blktap mode=bench benchmodes=$modes seconds="$XL_BENCH_SECONDS") || exit 1
lab_attach "$d" "$img"
xl unpause "$d"
lab_wait_console bench-blktap "XENLAB-BENCH-DONE|FAIL" $(( XL_DOMU_TIMEOUT + 4 * XL_BENCH_SECONDS )) >/dev/null || lab_fail "bench under blktap did not finish"
lab_wait_gone bench-blktap 120
parse bench-blktap blktap
loop=$(losetup -f --show "$img") || lab_fail "losetup failed"
XL_DOMU_EXTRA_CFG="disk = [ 'phy:$loop,xvda,w' ]" d=$(lab_domu bench-blkback mode=bench benchmodes=$modes seconds="$XL_BENCH_SECONDS") || exit 1
xl unpause "$d"
lab_wait_console bench-blkback "XENLAB-BENCH-DONE|FAIL" $(( XL_DOMU_TIMEOUT + 4 * XL_BENCH_SECONDS )) >/dev/null || { losetup -d "$loop"; lab_fail "bench under blkback did not finish"; }
lab_wait_gone bench-blkback 120
lab_wait 30 "xl to release $loop" bash -c "! xenstore-ls /local/domain/0/backend/vbd 2>/dev/null | grep -q params" || true
losetup -d "$loop"
parse bench-blkback blkback
for m in randread4k randwrite4k seqread1m; do
    a=$(sed -n "s/^blktap_${m}_iops=//p" "$XL_SDIR/figures"); b=$(sed -n "s/^blkback_${m}_iops=//p" "$XL_SDIR/figures")
    lab_figure "ratio_${m}" "$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", (b > 0) ? a / b : 0}')"
done
