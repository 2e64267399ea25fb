# crypt: crypt -> img; the image holds no XENLAB-DATA plaintext and a second domU reads back the first one's data
img=$XL_IMAGES/crypt.raw key=$XL_IMAGES/crypt.key
head -c 64 /dev/urandom >"$key"
cp "$key" "$XL_SDIR/crypt.key"   # kept with the logs: a wrong read can be checked against the ciphertext
lab_image "$img" "$XL_IMAGE_MIB" >/dev/null
lab_serve "crypt:keyfile=$key" img
line=$(lab_run_domu crypt-1 "$img" mode=run seed=31 ops="$XL_OPS") || exit 1
d1=$(lab_field "$line" digest)
n=$(grep -ac XENLAB-DATA "$img"); lab_figure plaintext_sectors "$n"
[ "$n" -eq 0 ] || lab_fail "the encrypted image holds $n XENLAB-DATA plaintext lines"
line=$(lab_run_domu crypt-2 "$img" mode=run seed=32 ops="$XL_OPS" expect="$d1") || exit 1
n=$(grep -ac XENLAB-DATA "$img")
[ "$n" -eq 0 ] || lab_fail "after the second domU the image holds $n XENLAB-DATA plaintext lines"
