/*
 * Prints every size, offset and constant of Xen's blkif wire ABI as name=value lines, as the C
 * compiler lays them out for the target ABI (native x86_64, or i386 with -m32). The C# tests in
 * BlkTap.Abstractions.Tests.Abi compare each line with BlkifLayout, SharedRingLayout, the enums and constants.
 *
 * NOTE: ring.h (xen/include/public/io/ring.h) needs uint*_t and, for the legacy interface version
 * a guest gets by default (xen-compat.h), the mb()/rmb()/wmb() barriers; blkif.h pulls in
 * grant_table.h for grant_ref_t.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define mb()  __sync_synchronize()
#define rmb() __sync_synchronize()
#define wmb() __sync_synchronize()

#include <xen/io/ring.h>
#include <xen/io/blkif.h>

#define P(name, value) printf("%s=%lld\n", name, (long long)(value))
#define SZ(t) P("sizeof(" #t ")", sizeof(t))
#define SZS(tag) P("sizeof(" #tag ")", sizeof(struct tag))
#define SZU(tag) P("sizeof(" #tag ")", sizeof(union tag))
#define OFF(tag, f) P("offsetof(" #tag "," #f ")", offsetof(struct tag, f))

int main(void)
{
    P("BLKIF_OP_READ", BLKIF_OP_READ);
    P("BLKIF_OP_WRITE", BLKIF_OP_WRITE);
    P("BLKIF_OP_WRITE_BARRIER", BLKIF_OP_WRITE_BARRIER);
    P("BLKIF_OP_FLUSH_DISKCACHE", BLKIF_OP_FLUSH_DISKCACHE);
    P("BLKIF_OP_RESERVED_1", BLKIF_OP_RESERVED_1);
    P("BLKIF_OP_DISCARD", BLKIF_OP_DISCARD);
    P("BLKIF_OP_INDIRECT", BLKIF_OP_INDIRECT);
    P("BLKIF_RSP_OKAY", BLKIF_RSP_OKAY);
    P("BLKIF_RSP_ERROR", BLKIF_RSP_ERROR);
    P("BLKIF_RSP_EOPNOTSUPP", BLKIF_RSP_EOPNOTSUPP);
    P("BLKIF_MAX_SEGMENTS_PER_REQUEST", BLKIF_MAX_SEGMENTS_PER_REQUEST);
    P("BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST", BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
    P("BLKIF_DISCARD_SECURE", BLKIF_DISCARD_SECURE);
    P("VDISK_CDROM", VDISK_CDROM);
    P("VDISK_REMOVABLE", VDISK_REMOVABLE);
    P("VDISK_READONLY", VDISK_READONLY);
    P("segments_per_indirect_frame", 4096 / sizeof(struct blkif_request_segment));

    SZ(grant_ref_t);
    SZ(RING_IDX);

    SZS(blkif_request_segment);
    OFF(blkif_request_segment, gref);
    OFF(blkif_request_segment, first_sect);
    OFF(blkif_request_segment, last_sect);

    SZS(blkif_request);
    OFF(blkif_request, operation);
    OFF(blkif_request, nr_segments);
    OFF(blkif_request, handle);
    OFF(blkif_request, id);
    OFF(blkif_request, sector_number);
    OFF(blkif_request, seg);

    SZS(blkif_request_discard);
    OFF(blkif_request_discard, operation);
    OFF(blkif_request_discard, flag);
    OFF(blkif_request_discard, handle);
    OFF(blkif_request_discard, id);
    OFF(blkif_request_discard, sector_number);
    OFF(blkif_request_discard, nr_sectors);

    SZS(blkif_request_indirect);
    OFF(blkif_request_indirect, operation);
    OFF(blkif_request_indirect, indirect_op);
    OFF(blkif_request_indirect, nr_segments);
    OFF(blkif_request_indirect, id);
    OFF(blkif_request_indirect, sector_number);
    OFF(blkif_request_indirect, handle);
    OFF(blkif_request_indirect, indirect_grefs);

    SZS(blkif_response);
    OFF(blkif_response, id);
    OFF(blkif_response, operation);
    OFF(blkif_response, status);

    SZU(blkif_sring_entry);
    OFF(blkif_sring, req_prod);
    OFF(blkif_sring, req_event);
    OFF(blkif_sring, rsp_prod);
    OFF(blkif_sring, rsp_event);
    OFF(blkif_sring, ring);

    /* NOTE: ring.h __CONST_RING_SIZE and __RING_SIZE (the form FRONT_RING_INIT uses) for rings of
     * 2^order pages (blkif.h "ring-page-order"). */
    static union { struct blkif_sring s; unsigned char bytes[4096 << 3]; } mem;
    struct blkif_sring *sring = &mem.s;
    char name[64];
    for (int order = 0; order <= 3; order++) {
        snprintf(name, sizeof name, "__CONST_RING_SIZE(blkif,%d)", 4096 << order);
        P(name, __CONST_RING_SIZE(blkif, 4096 << order));
        snprintf(name, sizeof name, "__RING_SIZE(blkif,%d)", 4096 << order);
        P(name, __RING_SIZE(sring, 4096 << order));
    }
    return 0;
}
