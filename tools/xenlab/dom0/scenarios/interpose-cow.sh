# interpose-cow: cow -> vbd over the kernel's blkback; the writes stay in the overlay, the image blkback serves is untouched
img=$XL_IMAGES/interpose-cow.raw ov=$XL_IMAGES/interpose.cow
rm -f "$ov"
init=$(lab_image "$img" "$XL_IMAGE_MIB")
lab_lower_attach "$img"
lab_serve "cow:overlay=$ov" "vbd:dev=xvdb"
t0=$(lab_now)
line=$(lab_run_domu interpose-cow-1 "$img" mode=run seed=81 ops="$XL_OPS" expect="$init") || exit 1
lab_figure domu_s "$(lab_secs "$t0" "$(lab_now)")"
digest=$(lab_field "$line" digest)
lab_serve_stop
lab_lower_detach
[ "$(lab_sha "$img")" = "$init" ] || lab_check "the image under blkback changed under cow (sha256 $(lab_sha "$img"), was $init)"
n=$(grep -ac XENLAB-DATA "$ov"); lab_figure overlay_marker_sectors "$n"
[ "$n" -gt 0 ] || lab_check "the overlay holds no XENLAB-DATA sector"
merged=$XL_IMAGES/interpose-merged.raw
cp "$img" "$merged"
blktap cow commit "$ov" --base "$merged" >"$XL_SDIR/cow-commit.log" 2>&1 || lab_check "blktap cow commit failed: $(tail -2 "$XL_SDIR/cow-commit.log" | tr '\n' ' ')"
[ "$(lab_sha "$merged")" = "$digest" ] || lab_check "merged view (image + overlay) sha256 $(lab_sha "$merged") != the domU's digest $digest"
rm -f "$merged"
