# interpose: dump -> vbd (a frontend in dom0 to the kernel's blkback over a loop device); the data lands in the image blkback serves
img=$XL_IMAGES/interpose.raw dump=$XL_IMAGES/interpose-dump.log
rm -f "$dump"
init=$(lab_image "$img" "$XL_IMAGE_MIB")
lab_lower_attach "$img"
lab_serve "dump:file=$dump" "vbd:dev=xvdb"
[ "$(xenstore-read /local/domain/0/backend/vbd/0/51728/state 2>/dev/null)" = 4 ] \
    || lab_check "the kernel's blkback is not Connected to blktap's frontend (state $(xenstore-read /local/domain/0/backend/vbd/0/51728/state 2>&1))"
lab_figure lower_ring_order "$(xenstore-read /local/domain/0/device/vbd/51728/ring-page-order 2>/dev/null || echo 0)"
t0=$(lab_now)
line=$(lab_run_domu interpose-1 "$img" mode=run seed=71 ops="$XL_OPS" expect="$init") || exit 1
lab_figure domu_s "$(lab_secs "$t0" "$(lab_now)")"
digest=$(lab_field "$line" digest)
lab_serve_stop
lab_wait 30 "blktap's frontend to close dom0's xvdb" bash -c '[ "$(xenstore-read /local/domain/0/device/vbd/51728/state 2>/dev/null)" = 6 ]' \
    || lab_check "blktap left dom0's xvdb frontend in state $(xenstore-read /local/domain/0/device/vbd/51728/state 2>&1) after stopping"
lab_lower_detach
lab_figure dump_lines "$(wc -l <"$dump")"
cp "$dump" "$XL_SDIR/dump.log" 2>/dev/null
[ -s "$dump" ] || lab_check "the dump tap wrote nothing to $dump"
[ "$(lab_sha "$img")" = "$digest" ] || lab_check "the image blkback serves has sha256 $(lab_sha "$img"), not the domU's digest $digest: the writes did not all land through blkback"
