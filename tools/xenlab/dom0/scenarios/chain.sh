# chain: dump -> cow -> img; the overlay holds the writes (its merged view equals the domU's digest), the base is untouched
base=$XL_IMAGES/chain-base.raw ov=$XL_IMAGES/chain.cow dump=$XL_IMAGES/chain-dump.log
rm -f "$ov" "$dump"
init=$(lab_image "$base" "$XL_IMAGE_MIB")
lab_serve "dump:file=$dump" "cow:overlay=$ov" img
t0=$(lab_now)
line=$(lab_run_domu chain-1 "$base" mode=run seed=21 ops="$XL_OPS" expect="$init") || exit 1
lab_figure domu_s "$(lab_secs "$t0" "$(lab_now)")"
digest=$(lab_field "$line" digest)
# The overlay is locked while a session holds it: stop the server before reading it.
lab_serve_stop
lab_figure dump_lines "$(wc -l <"$dump")"
cp "$dump" "$XL_SDIR/dump.log" 2>/dev/null
[ -s "$dump" ] || lab_check "the dump tap wrote nothing to $dump"
[ "$(lab_sha "$base")" = "$init" ] || lab_check "the base image changed under cow (sha256 $(lab_sha "$base"), was $init)"
n=$(grep -ac XENLAB-DATA "$ov"); lab_figure overlay_marker_sectors "$n"
[ "$n" -gt 0 ] || lab_check "the overlay holds no XENLAB-DATA sector"
merged=$XL_IMAGES/chain-merged.raw
cp "$base" "$merged"
blktap cow commit "$ov" --base "$merged" >"$XL_SDIR/cow-commit.log" 2>&1 || lab_check "blktap cow commit failed: $(tail -2 "$XL_SDIR/cow-commit.log" | tr '\n' ' ')"
[ "$(lab_sha "$merged")" = "$digest" ] || lab_check "merged view (base + overlay) sha256 $(lab_sha "$merged") != the domU's digest $digest"
rm -f "$merged"
