# queues: a 2-vCPU domU's xen-blkfront negotiates two queues and persistent grants with blktap (img); the image equals the domU's digest
lab_serve img
img=$XL_IMAGES/queues.raw
init=$(lab_image "$img" "$XL_IMAGE_MIB")
t0=$(lab_now)
d=$(XL_DOMU_VCPUS=2 lab_domu queues-1 mode=run seed=29 ops="$XL_OPS" expect="$init") || exit 1
lab_attach "$d" "$img"
fe=/local/domain/$d/device/vbd/51712
be=$(xenstore-read "$fe/backend" 2>/dev/null) || lab_fail "no $fe/backend after blktap xen attach"
xl unpause "$d"
# Read the negotiated keys while the domU runs its workload (they go with the domain).
lab_wait 300 "the domU's blkfront and blktap to connect ($be/state 4)" \
    bash -c "[ \"\$(xenstore-read $be/state 2>/dev/null)\" = 4 ]" \
    || lab_fail "blktap's backend did not reach Connected: $(xenstore-ls -f "$be" 2>&1 | head -20 | tr '\n' ' ')"
offered=$(xenstore-read "$be/multi-queue-max-queues" 2>/dev/null || echo none)
queues=$(xenstore-read "$fe/multi-queue-num-queues" 2>/dev/null || echo 1)
fe_persistent=$(xenstore-read "$fe/feature-persistent" 2>/dev/null || echo 0)
be_persistent=$(xenstore-read "$be/feature-persistent" 2>/dev/null || echo 0)
q0=$(xenstore-read "$fe/queue-0/event-channel" 2>/dev/null || echo none)
q1=$(xenstore-read "$fe/queue-1/event-channel" 2>/dev/null || echo none)
lab_figure offered_queues "$offered"; lab_figure queues "$queues"
lab_figure persistent "$fe_persistent/$be_persistent"
line=$(lab_verify queues-1 "$XL_DOMU_TIMEOUT") || exit 1
lab_wait_gone queues-1 120 || lab_fail "queues-1 did not shut down after its workload"
lab_figure domu_s "$(lab_secs "$t0" "$(lab_now)")"
digest=$(lab_field "$line" digest)
[ "$offered" != none ] && [ "$offered" -ge 2 ] || lab_check "blktap offered multi-queue-max-queues=$offered, not at least 2 (dom0 has 2 vCPUs)"
[ "$queues" = 2 ] || lab_check "the 2-vCPU domU's blkfront wrote multi-queue-num-queues=$queues, not 2"
[ "$q0" != none ] && [ "$q1" != none ] || lab_check "queue-0/queue-1 event channels missing ($q0, $q1)"
[ "$fe_persistent" = 1 ] && [ "$be_persistent" = 1 ] || lab_check "persistent grants not negotiated (frontend $fe_persistent, backend $be_persistent)"
after=$(lab_sha "$img")
[ "$after" = "$digest" ] || lab_check "image sha256 $after != the domU's digest $digest"
p=$(lab_serve_pid)
if [ -n "$p" ]; then
    # The backend unmaps when it sees the frontend gone (a xenstore watch): wait for that, with a deadline.
    lab_wait 120 "blktap to unmap the gone domU's grants" bash -c "! grep -q gntdev /proc/$p/maps"
    left=$(grep -c gntdev "/proc/$p/maps" 2>/dev/null); left=${left:-0}
    lab_figure gntdev_maps_after_close "$left"
    [ "$left" = 0 ] || lab_check "blktap still maps $left gntdev regions after the domU is gone (persistent grants not released)"
fi
