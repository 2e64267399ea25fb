# reconnect: blktap xen detach then attach of a running domU's disk; its second workload run finds the first one's data
lab_serve img
img=$XL_IMAGES/reconnect.raw
init=$(lab_image "$img" "$XL_IMAGE_MIB")
d=$(lab_domu reconnect-1 mode=reconnect seed=51 ops="$XL_OPS" expect="$init") || exit 1
lab_attach "$d" "$img"
xl unpause "$d"
lab_verify reconnect-1 "$XL_DOMU_TIMEOUT" >/dev/null || exit 1
lab_wait_console reconnect-1 "XENLAB-PHASE 1 done" 60 >/dev/null || lab_fail "no phase-1 marker"
lab_step "blktap xen detach"
t0=$(lab_now)
blktap xen detach --domain "$d" --vdev xvda --timeout 60 >"$XL_SDIR/detach.log" 2>&1 || lab_fail "blktap xen detach failed: $(tail -3 "$XL_SDIR/detach.log" | tr '\n' ' ')"
lab_figure detach_s "$(lab_secs "$t0" "$(lab_now)")"
lab_wait_console reconnect-1 "XENLAB-PHASE detached" 120 >/dev/null || lab_fail "the domU still sees /dev/xvda after detach"
xenstore-ls -fp /local/domain/0/backend/vbd3 >"$XL_SDIR/xenstore-after-detach.txt" 2>&1
lab_step "blktap xen attach again"
lab_attach "$d" "$img"
lab_wait_console reconnect-1 "XENLAB-PHASE reattached" 120 >/dev/null || lab_fail "/dev/xvda did not come back after the second attach"
# The second run's result is the second XENLAB-VERIFY ok|FAIL line (or an XENLAB-VERIFY2 FAIL from the init).
f=$(lab_console reconnect-1)
lab_wait "$XL_DOMU_TIMEOUT" "the second workload result" bash -c "[ \$(grep -acE 'XENLAB-VERIFY2? (ok|FAIL)' '$f') -ge 2 ]" || lab_fail "no second workload result"
line=$(grep -aE 'XENLAB-VERIFY2? (ok|FAIL)' "$f" | sed -n 2p | tr -d '\r')
lab_log "second run: $line"
case "$line" in *"XENLAB-VERIFY ok"*|*"XENLAB-VERIFY2 ok"*) ;; *) lab_fail "second run: $line" ;; esac
lab_wait_gone reconnect-1 120 || lab_fail "reconnect-1 did not shut down"
digest=$(lab_field "$line" digest)
[ "$(lab_sha "$img")" = "$digest" ] || lab_check "image sha256 != the second run's digest $digest"
