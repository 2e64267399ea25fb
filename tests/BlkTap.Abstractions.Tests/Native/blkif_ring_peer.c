/*
 * A blkif backend built only from Xen's own ring.h macros and blkif.h structs, used by the C# tests
 * in BlkTap.Abstractions.Tests.Abi to prove that what BlkifCodec/FrontRing put in a shared ring is what a C
 * backend sees, and that what a C backend answers is what FrontRing decodes.
 *
 *   blkif_ring_peer RINGFILE ORDER START
 *
 * RINGFILE holds a shared ring of (4096 << ORDER) bytes whose indices all started at START (the C#
 * side attached at START, so traffic may wrap 2^32). The program attaches a back ring at START
 * (BACK_RING_ATTACH), copies out every published request (RING_COPY_REQUEST), prints its fields as
 * one line per request, answers each (RING_GET_RESPONSE: id and operation echoed, status
 * -(id % 3), i.e. OKAY / ERROR / EOPNOTSUPP), pushes the responses
 * (RING_PUSH_RESPONSES_AND_CHECK_NOTIFY), runs RING_FINAL_CHECK_FOR_REQUESTS, prints both results
 * and writes the ring back to RINGFILE. Built natively for x86_64-abi and with -m32 for x86_32-abi.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define mb()  __sync_synchronize()
#define rmb() __sync_synchronize()
#define wmb() __sync_synchronize()

#include <xen/io/ring.h>
#include <xen/io/blkif.h>

static void print_request(const blkif_request_t *req)
{
    if (req->operation == BLKIF_OP_DISCARD) {
        /* NOTE: blkif.h: "Cast to this structure when blkif_request.operation == BLKIF_OP_DISCARD". */
        blkif_request_discard_t d;
        memcpy(&d, req, sizeof d);
        printf("discard id=%" PRIu64 " handle=%u flag=%u sector=%" PRIu64 " nr_sectors=%" PRIu64 "\n",
               (uint64_t)d.id, (unsigned)d.handle, (unsigned)d.flag, (uint64_t)d.sector_number,
               (uint64_t)d.nr_sectors);
    } else if (req->operation == BLKIF_OP_INDIRECT) {
        blkif_request_indirect_t in;
        memcpy(&in, req, sizeof in);
        printf("indirect id=%" PRIu64 " handle=%u indirect_op=%u nr_segments=%u sector=%" PRIu64 " grefs=",
               (uint64_t)in.id, (unsigned)in.handle, (unsigned)in.indirect_op, (unsigned)in.nr_segments,
               (uint64_t)in.sector_number);
        for (int i = 0; i < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; i++)
            printf("%s%u", i ? "," : "", (unsigned)in.indirect_grefs[i]);
        printf("\n");
    } else {
        unsigned n = req->nr_segments;
        if (n > BLKIF_MAX_SEGMENTS_PER_REQUEST) n = BLKIF_MAX_SEGMENTS_PER_REQUEST;
        printf("rw op=%u id=%" PRIu64 " handle=%u nr_segments=%u sector=%" PRIu64 " seg=",
               (unsigned)req->operation, (uint64_t)req->id, (unsigned)req->handle,
               (unsigned)req->nr_segments, (uint64_t)req->sector_number);
        for (unsigned i = 0; i < n; i++)
            printf("%s%u:%u-%u", i ? " " : "", (unsigned)req->seg[i].gref,
                   (unsigned)req->seg[i].first_sect, (unsigned)req->seg[i].last_sect);
        printf("\n");
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s RINGFILE ORDER START\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    int order = atoi(argv[2]);
    RING_IDX start = (RING_IDX)strtoul(argv[3], NULL, 0);
    if (order < 0 || order > 3) {
        fprintf(stderr, "order %d out of range 0..3\n", order);
        return 2;
    }
    size_t bytes = (size_t)4096 << order;
    void *page;
    if (posix_memalign(&page, 4096, bytes) != 0) return 3;
    FILE *f = fopen(path, "rb");
    if (!f || fread(page, 1, bytes, f) != bytes) {
        fprintf(stderr, "cannot read %zu bytes from %s\n", bytes, path);
        return 3;
    }
    fclose(f);

    blkif_sring_t *sring = page;
    blkif_back_ring_t back;
    BACK_RING_ATTACH(&back, sring, start, bytes);
    printf("size=%u\n", RING_SIZE(&back));
    printf("unconsumed=%u\n", (unsigned)RING_HAS_UNCONSUMED_REQUESTS(&back));

    RING_IDX prod = sring->req_prod;
    rmb(); /* NOTE: ring.h: read requests only after reading req_prod */
    if (RING_REQUEST_PROD_OVERFLOW(&back, prod)) {
        fprintf(stderr, "req_prod %u overflows the ring (rsp_prod_pvt %u)\n", prod, back.rsp_prod_pvt);
        return 4;
    }
    while (back.req_cons != prod) {
        blkif_request_t req;
        RING_COPY_REQUEST(&back, back.req_cons, &req);
        back.req_cons++;
        print_request(&req);

        blkif_response_t *rsp = RING_GET_RESPONSE(&back, back.rsp_prod_pvt);
        rsp->id = req.id;
        rsp->operation = req.operation;
        rsp->status = (int16_t)-(int)(req.id % 3);
        back.rsp_prod_pvt++;
    }
    int notify, more;
    RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&back, notify);
    RING_FINAL_CHECK_FOR_REQUESTS(&back, more);
    printf("notify=%d\n", notify);
    printf("more=%d\n", more);

    f = fopen(path, "wb");
    if (!f || fwrite(page, 1, bytes, f) != bytes || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        return 3;
    }
    free(page);
    return 0;
}
