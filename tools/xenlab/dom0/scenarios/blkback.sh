# blkback: the same workload on the kernel's xen-blkback (xl disk phy:/dev/loopN) as the reference
img=$XL_IMAGES/blkback.raw
init=$(lab_image "$img" "$XL_IMAGE_MIB")
loop=$(losetup -f --show "$img") || lab_fail "losetup failed"
t0=$(lab_now)
XL_DOMU_EXTRA_CFG="disk = [ 'phy:$loop,xvda,w' ]" d=$(lab_domu blkback-1 mode=run seed=61 ops="$XL_OPS" expect="$init") || { losetup -d "$loop"; exit 1; }
xl unpause "$d"
line=$(lab_verify blkback-1 "$XL_DOMU_TIMEOUT") || { losetup -d "$loop"; exit 1; }
lab_wait_gone blkback-1 120 || lab_check "blkback-1 did not shut down"
lab_figure domu_s "$(lab_secs "$t0" "$(lab_now)")"
lab_wait 30 "xl to release $loop" bash -c "! xenstore-ls /local/domain/0/backend/vbd 2>/dev/null | grep -q params" || true
losetup -d "$loop"
[ "$(lab_sha "$img")" = "$(lab_field "$line" digest)" ] || lab_check "image sha256 != the domU's digest"
