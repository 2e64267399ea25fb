# teardown: xl destroy of a domU in the middle of I/O; the backend cleans up (xenstore, gntdev), stays up, serves the next domU
lab_serve img
pid=$(lab_serve_pid)
gnt_maps() { grep -c /dev/xen/gntdev "/proc/$pid/maps"; }
gnt_fds() { ls -l "/proc/$pid/fd" 2>/dev/null | grep -c /dev/xen/gntdev; }
fds() { ls "/proc/$pid/fd" 2>/dev/null | wc -l; }
maps0=$(gnt_maps) gfd0=$(gnt_fds) fds0=$(fds)
lab_log "before: gntdev maps=$maps0 gntdev fds=$gfd0 fds=$fds0"
img=$XL_IMAGES/teardown.raw
lab_image "$img" "$XL_IMAGE_MIB" >/dev/null
d=$(lab_domu teardown-1 mode=io seed=71 ops=100000) || exit 1
lab_attach "$d" "$img"
xl unpause "$d"
lab_wait_console teardown-1 "XENLAB-IO started" "$XL_DOMU_TIMEOUT" >/dev/null || lab_fail "the domU's I/O did not start"
# In the middle of the ops phase (past the initial whole-disk read).
lab_wait_console teardown-1 "phase=initial|XENLAB-VERIFY " "$XL_DOMU_TIMEOUT" >/dev/null || lab_fail "no I/O progress from the domU"
sleep 2
mid_maps=$(gnt_maps); lab_figure gntdev_maps_during_io "$mid_maps"
xenstore-ls -fp "/local/domain/0/backend/vbd3/$d" >"$XL_SDIR/xenstore-before-destroy.txt" 2>&1
lab_step "xl destroy $d during I/O"
t0=$(lab_now)
xl destroy "$d" || lab_fail "xl destroy $d failed"
lab_wait 60 "blktap to unmap its grants" bash -c "[ \$(grep -c /dev/xen/gntdev /proc/$pid/maps) -le $maps0 ]" \
    || lab_check "blktap still maps $(gnt_maps) gntdev regions 60 s after xl destroy (before the domU: $maps0)"
lab_figure cleanup_s "$(lab_secs "$t0" "$(lab_now)")"
kill -0 "$pid" 2>/dev/null || lab_fail "blktap xen serve died after xl destroy: $(tail -5 "$(lab_serve_log)" | tr '\n' ' ')"
lab_wait 30 "backend/vbd3/$d to be removed" bash -c "! xenstore-exists /local/domain/0/backend/vbd3/$d" \
    || { xenstore-ls -fp "/local/domain/0/backend/vbd3/$d" >"$XL_SDIR/xenstore-leftover.txt" 2>&1
         lab_check "backend/vbd3/$d is still in xenstore 30 s after xl destroy (see xenstore-leftover.txt)"; }
xenstore-exists "/local/domain/$d" && lab_check "/local/domain/$d is still in xenstore"
[ "$(gnt_fds)" -le "$gfd0" ] || lab_check "blktap holds $(gnt_fds) gntdev fds (before: $gfd0)"
lab_figure fds_before "$fds0"; lab_figure fds_after "$(fds)"
[ "$(fds)" -le "$fds0" ] || lab_check "blktap holds $(fds) fds after the teardown (before: $fds0): $(ls -l /proc/$pid/fd | tail -n +2 | awk '{print $NF}' | sort | uniq -c | sort -rn | head -5 | tr '\n' ' ')"
# The next domU is served.
img2=$XL_IMAGES/teardown-2.raw
init=$(lab_image "$img2" "$XL_IMAGE_MIB")
line=$(lab_run_domu teardown-2 "$img2" mode=run seed=72 ops="$XL_OPS" expect="$init") || exit 1
[ "$(lab_sha "$img2")" = "$(lab_field "$line" digest)" ] || lab_check "image of teardown-2 != its digest"
kill -0 "$pid" 2>/dev/null || lab_fail "blktap xen serve is gone"
