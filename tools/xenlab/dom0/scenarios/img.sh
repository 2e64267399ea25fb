# img: a raw image served by blktap xen serve --tap img; the image equals the domU's digest afterwards
lab_serve img
img=$XL_IMAGES/img.raw
init=$(lab_image "$img" "$XL_IMAGE_MIB")
t0=$(lab_now)
line=$(lab_run_domu img-1 "$img" mode=run seed=11 ops="$XL_OPS" expect="$init") || exit 1
lab_figure domu_s "$(lab_secs "$t0" "$(lab_now)")"
digest=$(lab_field "$line" digest)
after=$(lab_sha "$img")
[ "$after" = "$digest" ] || lab_fail "image sha256 $after != the domU's digest $digest"
lab_log "image digest matches the domU's: $digest"
