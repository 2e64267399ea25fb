# xenlab: fetch Debian 12's Xen, kernel and busybox into the cache (apt-get download + dpkg-deb -x).
# Sets XL_TREE (the unpacked packages: a dom0 root layer), XL_XEN (multiboot ELF), XL_VMLINUX (ELF kernel),
# XL_KVER (kernel release), XL_XEN_VERSION (package version).

xl_packages_base="xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common xenstore-utils
 libxenstore4 libxenevtchn1 libxengnttab1 libxenmisc4.17 libxentoollog1 libxentoolcore1 libxencall1
 libxenforeignmemory1 libxendevicemodel1 libxenhypfs1 libyajl2 busybox-static"

xl_ensure_host_tools() {
    local missing=""
    command -v qemu-system-x86_64 >/dev/null || missing="$missing qemu-system-x86"
    command -v python3 >/dev/null || missing="$missing python3"
    [ -n "$missing" ] || return 0
    xl_log "installing$missing with apt-get"
    apt-get update -q >"$XL_OUT/apt-get.log" 2>&1 || xl_die "apt-get update failed (see $XL_OUT/apt-get.log)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >>"$XL_OUT/apt-get.log" 2>&1 \
        || xl_die "apt-get install$missing failed (see $XL_OUT/apt-get.log)"
}

# The candidate version of a package; runs apt-get update once if apt knows nothing about it.
xl_candidate() {
    local v
    v=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -z "$v" ] || [ "$v" = "(none)" ]; then
        if [ -z "${XL_APT_UPDATED:-}" ]; then
            apt-get update -q >>"$XL_OUT/apt-get.log" 2>&1 || true
            XL_APT_UPDATED=1
            v=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
        fi
    fi
    [ -n "$v" ] && [ "$v" != "(none)" ] || xl_die "no Debian package $1 (is this Debian 12?)"
    echo "$v"
}

xl_fetch() {
    local debs="$XL_CACHE/debs" kimg pkgs p v f key missing=""
    mkdir -p "$debs"
    kimg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
    if [ -z "$kimg" ]; then
        apt-get update -q >>"$XL_OUT/apt-get.log" 2>&1; XL_APT_UPDATED=1
        kimg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
    fi
    [ -n "$kimg" ] || xl_die "cannot resolve linux-image-amd64"
    pkgs="$xl_packages_base $kimg"
    key=""
    # One apt-cache call for every candidate version.
    local policy; policy=$(apt-cache policy $pkgs 2>/dev/null | awk '/^[^ ]/ {sub(":$","",$1); p=$1} /Candidate:/ {print p "=" $2}')
    for p in $pkgs; do
        v=$(echo "$policy" | awk -F= -v p="$p" '$1==p {print $2}')
        [ -n "$v" ] && [ "$v" != "(none)" ] || v=$(xl_candidate "$p")
        ls "$debs/${p}_$(echo "$v" | sed 's/:/%3a/')_"*.deb >/dev/null 2>&1 || missing="$missing $p=$v"
        XL_DEB_FILES="${XL_DEB_FILES:-} $p=$v"
        key="$key $p=$v"
    done
    if [ -n "$missing" ]; then
        xl_log "downloading$missing"
        (cd "$debs" && apt-get download -q $missing) >>"$XL_OUT/apt-get.log" 2>&1 \
            || xl_die "apt-get download failed (see $XL_OUT/apt-get.log)"
    fi
    XL_KEY=$(echo "$key" | sha256sum | cut -c1-12)
    XL_TREE="$XL_CACHE/tree-$XL_KEY"
    if [ ! -e "$XL_TREE/.done" ]; then
        xl_log "unpacking packages into $XL_TREE"
        rm -rf "$XL_TREE"; mkdir -p "$XL_TREE"
        for p in $XL_DEB_FILES; do
            v=${p#*=}; p=${p%%=*}
            f=$(ls "$debs/${p}_$(echo "$v" | sed 's/:/%3a/')_"*.deb | head -1)
            dpkg-deb -x "$f" "$XL_TREE" || xl_die "dpkg-deb -x $f failed"
        done
        # Debian 12 is merged-/usr: a real /bin or /lib directory in the overlay's upper layer would hide the
        # host's /bin -> usr/bin symlink, so the packages' /bin, /sbin, /lib move under /usr.
        local d
        for d in bin sbin lib lib64; do
            if [ -d "$XL_TREE/$d" ] && [ ! -L "$XL_TREE/$d" ]; then
                mkdir -p "$XL_TREE/usr/$d"; cp -a "$XL_TREE/$d/." "$XL_TREE/usr/$d/"; rm -rf "${XL_TREE:?}/$d"
            fi
        done
        # Xen: a gzip of a multiboot ELF32 that qemu -kernel loads once uncompressed.
        local xgz; xgz=$(ls "$XL_TREE"/boot/xen-4.17-amd64.gz 2>/dev/null || ls "$XL_TREE"/boot/xen-*.gz | head -1)
        gzip -dc "$xgz" >"$XL_TREE/boot/xen.elf" || xl_die "cannot gunzip $xgz"
        # The kernel: Xen builds dom0 from the uncompressed vmlinux in 0.3 s instead of 6 s.
        local vmlinuz; vmlinuz=$(ls "$XL_TREE"/boot/vmlinuz-* | head -1)
        xl_extract_vmlinux "$vmlinuz" >"$XL_TREE/boot/vmlinux" || cp "$vmlinuz" "$XL_TREE/boot/vmlinux"
        echo "$key" >"$XL_TREE/.packages"
        touch "$XL_TREE/.done"
    fi
    XL_XEN="$XL_TREE/boot/xen.elf"
    XL_VMLINUX="$XL_TREE/boot/vmlinux"
    XL_KVER=$(ls "$XL_TREE/usr/lib/modules" | head -1)
    XL_BUSYBOX="$XL_TREE/usr/bin/busybox"
    XL_XEN_VERSION=$(echo "$key" | tr ' ' '\n' | awk -F= '$1=="xen-hypervisor-4.17-amd64" {print $2}')
}

# Finds the xz-compressed payload in a bzImage and prints the ELF (as the kernel's extract-vmlinux does).
xl_extract_vmlinux() {
    python3 - "$1" <<'PY'
import sys, lzma, zlib
data = open(sys.argv[1], 'rb').read()
out = sys.stdout.buffer
for magic, kind in ((b'\xfd7zXZ\x00', 'xz'), (b'\x1f\x8b\x08', 'gz')):
    pos = data.find(magic)
    while pos >= 0:
        try:
            if kind == 'xz':
                d = lzma.LZMADecompressor()
                elf = d.decompress(data[pos:])
            else:
                elf = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[pos:])
            if elf[:4] == b'\x7fELF':
                out.write(elf); sys.exit(0)
        except Exception:
            pass
        pos = data.find(magic, pos + 1)
sys.exit(1)
PY
}

# modules.dep is written by depmod at install time, not shipped in the .deb: busybox's depmod makes one.
xl_depmod() {
    [ -s "$XL_TREE/usr/lib/modules/$XL_KVER/modules.dep" ] && return 0
    "$XL_BUSYBOX" depmod -b "$XL_TREE/usr" "$XL_KVER" || xl_die "depmod failed"
}
