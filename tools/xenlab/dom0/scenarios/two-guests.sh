# two-guests: two domUs served at once by one blktap xen serve --tap img; each image equals its domU's digest
lab_serve img
a=$XL_IMAGES/two-a.raw b=$XL_IMAGES/two-b.raw
ia=$(lab_image "$a" "$XL_IMAGE_MIB"); ib=$(lab_image "$b" "$XL_IMAGE_MIB")
da=$(lab_domu two-a mode=run seed=41 ops="$XL_OPS" expect="$ia") || exit 1
db=$(lab_domu two-b mode=run seed=42 ops="$XL_OPS" expect="$ib") || exit 1
lab_attach "$da" "$a"; lab_attach "$db" "$b"
xl unpause "$da"; xl unpause "$db"
la=$(lab_verify two-a "$XL_DOMU_TIMEOUT") || exit 1
lb=$(lab_verify two-b "$XL_DOMU_TIMEOUT") || exit 1
lab_wait_gone two-a 120 && lab_wait_gone two-b 120 || lab_fail "a domU did not shut down"
[ "$(lab_sha "$a")" = "$(lab_field "$la" digest)" ] || lab_check "image a != domU two-a's digest"
[ "$(lab_sha "$b")" = "$(lab_field "$lb" digest)" ] || lab_check "image b != domU two-b's digest"
