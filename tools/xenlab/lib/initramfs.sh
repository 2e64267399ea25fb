# xenlab: the two initramfs images (busybox-static + a few modules + an init), built with busybox cpio.
# dom0's only mounts the host's root (9p) and the unpacked packages as an overlay and switches to it;
# the domU's runs the verifying workload on /dev/xvda.

# Prints the module files (relative to lib/modules/KVER) needed for the named modules, dependencies first.
xl_module_closure() {
    local dep="$XL_TREE/usr/lib/modules/$XL_KVER/modules.dep" m path
    declare -A seen
    _visit() {
        local p=$1 d
        [ -n "${seen[$p]:-}" ] && return; seen[$p]=1
        for d in $(awk -F: -v p="$p" '$1==p {print $2}' "$dep"); do _visit "$d"; done
        echo "$p"
    }
    for m in "$@"; do
        path=$(awk -F: -v m="/$m.ko" 'index($1, m) == length($1) - length(m) + 1 {print $1; exit}' "$dep")
        [ -n "$path" ] || xl_die "module $m not in $dep"
        _visit "$path"
    done
}

# xl_initramfs OUT.cpio.gz INIT MODULES... [-- EXTRA_SRC=DEST ...]
xl_initramfs() {
    local out=$1 init=$2; shift 2
    local mods=() extras=() a stage
    while [ $# -gt 0 ]; do
        [ "$1" = "--" ] && { shift; extras=("$@"); break; }
        mods+=("$1"); shift
    done
    stage=$(mktemp -d "$XL_OUT/initramfs.XXXXXX")
    mkdir -p "$stage"/{bin,dev,proc,sys,mnt,tmp,modules,etc}
    cp "$XL_BUSYBOX" "$stage/bin/busybox"
    cp "$init" "$stage/init"; chmod 755 "$stage/init"
    : >"$stage/modules/order"
    for a in $(xl_module_closure "${mods[@]}"); do
        cp "$XL_TREE/usr/lib/modules/$XL_KVER/$a" "$stage/modules/"
        basename "$a" >>"$stage/modules/order"
    done
    for a in "${extras[@]}"; do
        mkdir -p "$stage/$(dirname "${a#*=}")"
        cp "${a%%=*}" "$stage/${a#*=}"
    done
    (cd "$stage" && find . | "$XL_BUSYBOX" cpio -o -H newc 2>/dev/null | gzip -1 >"$out") || xl_die "cpio of $out failed"
    rm -rf "$stage"
}

xl_build_initramfs() {
    XL_DOM0_INITRD="$XL_OUT/dom0.cpio.gz"
    XL_DOMU_INITRD="$XL_OUT/domu.cpio.gz"
    xl_initramfs "$XL_DOM0_INITRD" "$XL_DIR/dom0/preinit" virtio_pci 9pnet_virtio 9p overlay
    local extra=()
    [ -n "${XL_VERIFY:-}" ] && extra=(-- "$XL_VERIFY=bin/verify")
    xl_initramfs "$XL_DOMU_INITRD" "$XL_DIR/domu/init" xen-blkfront "${extra[@]}"
}
