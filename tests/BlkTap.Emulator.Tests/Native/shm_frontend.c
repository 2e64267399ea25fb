/*
 * An shmring frontend (docs/shmring.md) built only from Xen's own ring.h macros and blkif.h structs,
 * used by BlkTap.Emulator.Tests.Shmring and BlkTap.Cli.Tests.Shmring to drive `blktap shm serve` the way a C guest driver would.
 * Built natively it speaks x86_64-abi; built with -m32 the same source speaks x86_32-abi.
 *
 *   shm_frontend DIR MODE [OPS SEED [MODELOUT]]
 *
 * It connects to DIR/evtchn, prints `connecting`, sends `blkif PROTOCOL N` (N = 32 slots x 11
 * segments), reads `connected SECTORS SECTOR_SIZE INFO` with the shared memory's descriptor attached
 * (SCM_RIGHTS), maps its (1 + N) pages and runs FRONT_RING_INIT on page 0 (the tap ran
 * SHARED_RING_INIT), then per MODE:
 *
 *   workload  reads the whole disk into a model, runs OPS random reads / writes / flushes (up to 32
 *             in flight, 1..11 segments each with random first_sect/last_sect, so the ring wraps
 *             many times), checks every status, id, operation, byte read and byte outside each
 *             segment, reads the whole disk back against the model, and writes the model to
 *             MODELOUT if given.
 *   pause     the workload in two halves (OPS each); between them it prints `paused` and waits
 *             for a line on stdin while its session stays connected and idle.
 *   truncate  the workload in two halves; between them it tries to shrink the shared memory
 *             (ftruncate, and open(O_TRUNC) of /proc/self/fd/N) and expects EPERM from both (the
 *             tap sealed its size), printing `truncate refused: EPERM`.
 *   bogusprod publishes req_prod = 1000 on a 32-slot ring and expects the tap to close the
 *             connection without a response.
 *   rewrite   pushes one WRITE, waits until the tap has consumed it (req_event moves), rewrites the
 *             slot into a READ of other sectors with another id, prints `rewritten`, and expects the response and the
 *             disk to follow the original request (the test's tap holds the request meanwhile).
 *   badgref   sends requests naming references 0, N + 1 and 0xffffffff (alone and next to a valid
 *             one) and expects ERROR for each with the valid pages and the disk untouched.
 *
 * Every byte written to the socket is one notification, sent only when
 * RING_PUSH_REQUESTS_AND_CHECK_NOTIFY says so; when no response is ready the program blocks in read()
 * after RING_FINAL_CHECK_FOR_RESPONSES. Exits 0 when every check passed, 1 with a message otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define mb()  __sync_synchronize()
#define rmb() __sync_synchronize()
#define wmb() __sync_synchronize()

#include <xen/io/ring.h>
#include <xen/io/blkif.h>

#define PAGE 4096
#define SLOTS 32
#define SEGS BLKIF_MAX_SEGMENTS_PER_REQUEST
#define NPAGES (SLOTS * SEGS)
/* Every wait on the tap has this deadline: generous, so a busy machine slows a run but never fails it. */
#define EVENT_TIMEOUT_S 60
#define EVENT_TIMEOUT_MS (EVENT_TIMEOUT_S * 1000)

static blkif_front_ring_t front;
static uint8_t *mem;
static int sock = -1;
static int mem_fd = -1;
static uint64_t disk_sectors;
static uint8_t *model;
static uint64_t rng_state = 88172645463325252ull;
static long notifications_sent, wakeups;

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "shm_frontend: FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static uint8_t *page(unsigned gref) { return mem + (size_t)gref * PAGE; }

static const char *abi_name(void) { return sizeof(long) == 4 ? "x86_32-abi" : "x86_64-abi"; }

/* ---------------------------------------------------------------- connection */

/* Reads the tap's answer line; the descriptor of the shared memory rides on its first byte (SCM_RIGHTS). */
static int read_answer(char *line, size_t size)
{
    int fd = -1;
    size_t n = 0;
    for (;;) {
        char c;
        union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int))]; } control;
        struct iovec iov = { .iov_base = &c, .iov_len = 1 };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf };
        ssize_t r = recvmsg(sock, &msg, 0);
        if (r != 1) fail("the tap closed the connection during the handshake (%zu bytes: '%.*s')", n, (int)n, line);
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) memcpy(&fd, CMSG_DATA(cm), sizeof fd);
        if (c == '\n') break;
        if (n + 1 >= size) fail("handshake answer too long");
        line[n++] = c;
    }
    line[n] = 0;
    return fd;
}

static void setup(const char *dir)
{
    /* NOTE: docs/shmring.md: the tap creates the shared memory (a memfd sealed against shrinking and
     * growing, ring initialised with SHARED_RING_INIT) and sends its descriptor with the answer line;
     * the frontend maps it and runs FRONT_RING_INIT. Nothing is set up before connecting. */
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s/evtchn", dir);
    sock = socket(AF_UNIX, SOCK_STREAM, 0);
    int tries = 0;
    while (connect(sock, (struct sockaddr *)&addr, sizeof addr) != 0) {
        if (++tries > EVENT_TIMEOUT_S * 100) fail("connect %s: %s", addr.sun_path, strerror(errno));
        usleep(10000);
    }
    printf("connecting %s\n", addr.sun_path);
    char hello[64];
    int len = snprintf(hello, sizeof hello, "blkif %s %u\n", abi_name(), NPAGES);
    if (write(sock, hello, len) != len) fail("write handshake: %s", strerror(errno));

    char line[128];
    int fd = read_answer(line, sizeof line);
    unsigned long long sectors;
    unsigned sector_size, info;
    char extra;
    if (sscanf(line, "connected %llu %u %u%c", &sectors, &sector_size, &info, &extra) != 3)
        fail("bad handshake answer '%s'", line);
    if (fd < 0) fail("the answer carried no memory descriptor");
    if (sector_size != 512) fail("sector size %u", sector_size);
    if (info != 0) fail("info %u: expected a writable disk (0)", info);
    mem_fd = fd;
    mem = mmap(NULL, (size_t)(1 + NPAGES) * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) fail("mmap: %s", strerror(errno));
    blkif_sring_t *sring = (blkif_sring_t *)mem;
    FRONT_RING_INIT(&front, sring, PAGE);
    if (RING_SIZE(&front) != SLOTS) fail("RING_SIZE is %u, expected %u", (unsigned)RING_SIZE(&front), SLOTS);
    disk_sectors = sectors;
    printf("connected %s sectors=%llu sector_size=%u info=%u\n", abi_name(), sectors, sector_size, info);
}

static void push(void)
{
    int notify;
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&front, notify);
    if (notify) {
        if (write(sock, "!", 1) != 1) fail("notify: %s", strerror(errno));
        notifications_sent++;
    }
}

/* Blocks until the tap notifies; reads and discards every byte available (coalescing). */
static void wait_event(int timeout_ms)
{
    struct pollfd p = { .fd = sock, .events = POLLIN };
    int r = poll(&p, 1, timeout_ms);
    if (r == 0)
        fail("no event from the tap within %d ms (req_prod %u req_event %u rsp_prod %u rsp_event %u rsp_cons %u req_prod_pvt %u)",
             timeout_ms, front.sring->req_prod, front.sring->req_event, front.sring->rsp_prod, front.sring->rsp_event,
             front.rsp_cons, front.req_prod_pvt);
    char buf[256];
    ssize_t n = read(sock, buf, sizeof buf);
    if (n == 0) fail("the tap closed the event channel");
    if (n < 0) fail("read event channel: %s", strerror(errno));
    wakeups++;
}

/* ---------------------------------------------------------------- requests */

struct slot {
    int busy;
    uint64_t id;
    uint8_t op;
    uint64_t sector;
    unsigned nseg;
    unsigned total;
    uint8_t first[SEGS], last[SEGS];
    int check;          /* compare a read with the model */
    uint8_t *sink;      /* or copy it here */
};

static struct slot slots[SLOTS];
static int in_flight;
static uint64_t next_id = 0x5a00000000000001ull;
static long responses;

static unsigned gref_of(int slot, unsigned seg) { return 1 + (unsigned)slot * SEGS + seg; }

static int free_slot(void)
{
    for (int i = 0; i < SLOTS; i++)
        if (!slots[i].busy) return i;
    return -1;
}

static int overlaps(uint64_t sector, unsigned count)
{
    for (int i = 0; i < SLOTS; i++) {
        struct slot *s = &slots[i];
        if (!s->busy || s->op == BLKIF_OP_FLUSH_DISKCACHE) continue;
        if (sector < s->sector + s->total && s->sector < sector + count) return 1;
    }
    return 0;
}

static uint8_t canary(unsigned gref, unsigned off) { return (uint8_t)(0xC3 ^ gref ^ (off * 7)); }

/* Fills slot i's pages: segment bytes with data (write) or poison (read), the rest with a canary. */
static void prepare_pages(int i, int is_write)
{
    struct slot *s = &slots[i];
    uint64_t at = s->sector;
    for (unsigned g = 0; g < s->nseg; g++) {
        uint8_t *p = page(gref_of(i, g));
        unsigned lo = s->first[g] * 512u, hi = (s->last[g] + 1u) * 512u;
        for (unsigned off = 0; off < PAGE; off++) {
            if (off < lo || off >= hi) p[off] = canary(gref_of(i, g), off);
            else if (is_write) p[off] = (uint8_t)rnd();
            else p[off] = 0xEE;
        }
        if (is_write) memcpy(model + at * 512, p + lo, hi - lo);
        at += s->last[g] - s->first[g] + 1u;
    }
}

static void submit(int i, uint8_t op, uint64_t sector, unsigned nseg, const uint8_t *first, const uint8_t *last)
{
    struct slot *s = &slots[i];
    memset(s, 0, sizeof *s);
    s->busy = 1;
    s->id = next_id++;
    s->op = op;
    s->sector = sector;
    s->nseg = nseg;
    for (unsigned g = 0; g < nseg; g++) {
        s->first[g] = first[g];
        s->last[g] = last[g];
        s->total += last[g] - first[g] + 1u;
    }
    if (op == BLKIF_OP_WRITE) prepare_pages(i, 1);
    else if (op == BLKIF_OP_READ) prepare_pages(i, 0);

    blkif_request_t *req = RING_GET_REQUEST(&front, front.req_prod_pvt);
    memset(req, 0, sizeof *req);
    req->operation = op;
    req->nr_segments = (uint8_t)nseg;
    req->handle = 0;
    req->id = s->id;
    req->sector_number = sector;
    for (unsigned g = 0; g < nseg; g++) {
        req->seg[g].gref = gref_of(i, g);
        req->seg[g].first_sect = first[g];
        req->seg[g].last_sect = last[g];
    }
    front.req_prod_pvt++;
    in_flight++;
}

static void complete(const blkif_response_t *rsp)
{
    int i;
    for (i = 0; i < SLOTS; i++)
        if (slots[i].busy && slots[i].id == rsp->id) break;
    if (i == SLOTS) fail("response with id %#" PRIx64 " answers no outstanding request", (uint64_t)rsp->id);
    struct slot *s = &slots[i];
    if (rsp->operation != s->op) fail("response %#" PRIx64 ": operation %u, request was %u", (uint64_t)rsp->id, rsp->operation, s->op);
    if (rsp->status != BLKIF_RSP_OKAY) fail("response %#" PRIx64 " (op %u, sector %" PRIu64 ", %u segments): status %d", (uint64_t)rsp->id, s->op, s->sector, s->nseg, rsp->status);
    uint64_t at = s->sector;
    for (unsigned g = 0; g < s->nseg; g++) {
        unsigned gref = gref_of(i, g);
        uint8_t *p = page(gref);
        unsigned lo = s->first[g] * 512u, hi = (s->last[g] + 1u) * 512u;
        for (unsigned off = 0; off < PAGE; off++)
            if ((off < lo || off >= hi) && p[off] != canary(gref, off))
                fail("request %#" PRIx64 ": byte %u of page %u outside segment [%u,%u) was changed", (uint64_t)s->id, off, gref, lo, hi);
        if (s->op == BLKIF_OP_READ) {
            if (s->sink) memcpy(s->sink + (at - s->sector) * 512, p + lo, hi - lo);
            else if (memcmp(p + lo, model + at * 512, hi - lo) != 0) {
                unsigned k = 0;
                while (p[lo + k] == model[at * 512 + k]) k++;
                fail("read %#" PRIx64 " sector %" PRIu64 " segment %u (first_sect %u): byte %u is %#x, the model has %#x",
                     (uint64_t)s->id, s->sector, g, s->first[g], k, p[lo + k], model[at * 512 + k]);
            }
        }
        at += s->last[g] - s->first[g] + 1u;
    }
    s->busy = 0;
    in_flight--;
    responses++;
}

/* Consumes every published response; returns how many. */
static int harvest(void)
{
    int got = 0, more;
    do {
        RING_IDX rp = front.sring->rsp_prod;
        rmb();
        if (rp - front.rsp_cons > RING_SIZE(&front)) fail("rsp_prod %u is beyond the ring (rsp_cons %u)", rp, front.rsp_cons);
        for (RING_IDX c = front.rsp_cons; c != rp; c++) {
            blkif_response_t rsp = *RING_GET_RESPONSE(&front, c);
            complete(&rsp);
            got++;
        }
        front.rsp_cons = rp;
        RING_FINAL_CHECK_FOR_RESPONSES(&front, more);
    } while (more);
    return got;
}

static void wait_one(void)
{
    while (harvest() == 0) wait_event(EVENT_TIMEOUT_MS);
}

static void drain(void)
{
    while (in_flight > 0) wait_one();
}

/* Reads [0, disk) into dst (or checks it against the model when dst is NULL) with full-page segments. */
static void read_disk(uint8_t *dst)
{
    uint8_t first[SEGS], last[SEGS];
    for (unsigned g = 0; g < SEGS; g++) { first[g] = 0; last[g] = 7; }
    uint64_t sector = 0;
    while (sector < disk_sectors) {
        uint64_t left = disk_sectors - sector;
        unsigned nseg = left >= SEGS * 8 ? SEGS : (unsigned)((left + 7) / 8);
        uint8_t l2[SEGS];
        memcpy(l2, last, sizeof l2);
        if (left < (uint64_t)nseg * 8) l2[nseg - 1] = (uint8_t)((left - (nseg - 1) * 8) - 1);
        int i;
        while ((i = free_slot()) < 0 || RING_FULL(&front)) { push(); wait_one(); }
        submit(i, BLKIF_OP_READ, sector, nseg, first, l2);
        slots[i].sink = dst;
        if (dst) slots[i].sink = dst + sector * 512;
        push();
        sector += (uint64_t)nseg * 8 - (last[nseg - 1] - l2[nseg - 1]);
    }
    drain();
}

/* ---------------------------------------------------------------- modes */

static long n_reads, n_writes, n_flushes, n_multiseg, n_offset_segs;

/* OPS random reads / writes / flushes against the model, up to 32 in flight; returns with all answered. */
static void run_ops(long ops)
{
    for (long n = 0; n < ops;) {
        int i = free_slot();
        if (i < 0 || RING_FULL(&front)) { push(); wait_one(); continue; }
        unsigned r = (unsigned)(rnd() % 100);
        if (r < 4) {
            submit(i, BLKIF_OP_FLUSH_DISKCACHE, 0, 0, NULL, NULL);
            n_flushes++;
        } else {
            uint8_t first[SEGS], last[SEGS];
            unsigned nseg = 1 + (unsigned)(rnd() % SEGS), total = 0, offsets = 0;
            for (unsigned g = 0; g < nseg; g++) {
                first[g] = (uint8_t)(rnd() % 8);
                last[g] = (uint8_t)(first[g] + rnd() % (8 - first[g]));
                total += last[g] - first[g] + 1u;
                if (first[g] != 0) offsets++;
            }
            if (total > disk_sectors) continue;
            uint64_t sector = rnd() % (disk_sectors - total + 1);
            if (overlaps(sector, total)) { if (in_flight) { push(); wait_one(); } continue; }
            int write = r < 52;
            submit(i, write ? BLKIF_OP_WRITE : BLKIF_OP_READ, sector, nseg, first, last);
            if (write) n_writes++; else n_reads++;
            if (nseg > 1) n_multiseg++;
            n_offset_segs += offsets;
        }
        n++;
        /* Push in small random batches so notification suppression is exercised both ways. */
        if (rnd() % 4 == 0) push();
        /* A full ring may hold requests not pushed yet: publish them before waiting for their answers. */
        if (harvest() == 0 && RING_FULL(&front)) { push(); wait_one(); }
    }
    push();
    drain();
}

static void print_counts(const char *what, long ops)
{
    printf("ok%s ops=%ld reads=%ld writes=%ld flushes=%ld multiseg=%ld offset_segments=%ld responses=%ld ring_laps=%u notifications=%ld wakeups=%ld\n",
           what, ops, n_reads, n_writes, n_flushes, n_multiseg, n_offset_segs, responses, (unsigned)(front.req_prod_pvt / RING_SIZE(&front)), notifications_sent, wakeups);
}

static int workload(long ops, const char *modelout)
{
    model = malloc(disk_sectors * 512);
    if (!model) fail("no memory for a %" PRIu64 "-sector model", disk_sectors);
    read_disk(model);
    run_ops(ops);
    read_disk(NULL);
    if (modelout) {
        FILE *f = fopen(modelout, "wb");
        if (!f || fwrite(model, 512, disk_sectors, f) != disk_sectors || fclose(f) != 0) fail("write %s", modelout);
    }
    print_counts("", ops);
    return 0;
}

/* The workload in two halves with a pause between them: prints "paused" and waits for a line on
 * stdin, so a test can do something (start another frontend) while this session is connected and idle. */
static int pause_workload(long ops)
{
    model = malloc(disk_sectors * 512);
    if (!model) fail("no memory for a %" PRIu64 "-sector model", disk_sectors);
    read_disk(model);
    run_ops(ops);
    printf("paused\n");
    char line[16];
    if (!fgets(line, sizeof line, stdin)) fail("stdin closed while paused");
    run_ops(ops);
    read_disk(NULL);
    print_counts(" pause", 2 * ops);
    return 0;
}

/* A frontend that tries to shrink the shared memory under the tap (what made a tap that mapped a
 * frontend's file fault with SIGBUS): ftruncate on its descriptor and open(O_TRUNC) through /proc must
 * both fail with EPERM (the tap sealed the size), and the workload goes on, checked, afterwards. */
static int truncate_workload(long ops)
{
    model = malloc(disk_sectors * 512);
    if (!model) fail("no memory for a %" PRIu64 "-sector model", disk_sectors);
    read_disk(model);
    run_ops(ops);
    if (ftruncate(mem_fd, PAGE) == 0) fail("ftruncate of the shared memory to one page succeeded: its size is not sealed");
    if (errno != EPERM) fail("ftruncate: %s, expected EPERM (sealed)", strerror(errno));
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", mem_fd);
    int again = open(proc, O_RDWR | O_TRUNC);
    if (again >= 0) fail("open(%s, O_TRUNC) succeeded: the size is not sealed", proc);
    if (errno != EPERM) fail("open(%s, O_TRUNC): %s, expected EPERM (sealed)", proc, strerror(errno));
    printf("truncate refused: EPERM\n");
    run_ops(ops);
    read_disk(NULL);
    print_counts(" truncate", 2 * ops);
    return 0;
}

static int bogus_prod(void)
{
    /* NOTE: ring.h: req_prod - rsp_prod may never exceed RING_SIZE; 1000 claims 1000 requests in 32 slots. */
    front.sring->req_prod = 1000;
    wmb();
    if (write(sock, "!", 1) != 1) fail("notify: %s", strerror(errno));
    struct pollfd p = { .fd = sock, .events = POLLIN };
    for (;;) {
        if (poll(&p, 1, EVENT_TIMEOUT_MS) == 0) fail("the tap did not close the session within %d s", EVENT_TIMEOUT_S);
        char buf[64];
        ssize_t n = read(sock, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) break;
        if (n < 0) fail("read: %s", strerror(errno));
    }
    if (front.sring->rsp_prod != 0) fail("the tap published %u responses to a broken ring", front.sring->rsp_prod);
    printf("ok closed\n");
    return 0;
}

static void simple(int i, uint8_t op, uint64_t sector, unsigned nseg)
{
    uint8_t first[SEGS], last[SEGS];
    for (unsigned g = 0; g < nseg; g++) { first[g] = 0; last[g] = 7; }
    submit(i, op, sector, nseg, first, last);
}

static int rewrite(void)
{
    model = calloc(disk_sectors, 512);
    simple(0, BLKIF_OP_WRITE, 8, 1);
    uint64_t id = slots[0].id;
    uint8_t expected[PAGE];
    memcpy(expected, page(1), PAGE);
    push();
    /* RING_FINAL_CHECK_FOR_REQUESTS in the tap moves req_event past the request once it is copied. */
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (front.sring->req_event != 2) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > EVENT_TIMEOUT_S) fail("the tap never consumed the request (req_event %u)", front.sring->req_event);
        sched_yield();
    }
    if (front.sring->rsp_prod != 0) fail("the request was answered before it could be rewritten; the test's tap must hold it");
    blkif_request_t *req = RING_GET_REQUEST(&front, 0);
    req->operation = BLKIF_OP_READ;
    req->id = id ^ 0xffff;
    req->sector_number = 64;
    req->seg[0].gref = 2;
    wmb();
    printf("rewritten\n");
    blkif_response_t rsp;
    for (;;) {
        RING_IDX rp = front.sring->rsp_prod;
        rmb();
        if (rp == 1) { rsp = *RING_GET_RESPONSE(&front, 0); front.rsp_cons = 1; break; }
        int more;
        RING_FINAL_CHECK_FOR_RESPONSES(&front, more);
        if (!more) wait_event(EVENT_TIMEOUT_MS);
    }
    if (rsp.id != id || rsp.operation != BLKIF_OP_WRITE || rsp.status != BLKIF_RSP_OKAY)
        fail("response id %#" PRIx64 " op %u status %d: expected the original write's id %#" PRIx64 ", op 1, status 0",
             (uint64_t)rsp.id, rsp.operation, rsp.status, (uint64_t)id);
    slots[0].busy = 0;
    in_flight = 0;
    /* The disk must hold the original write at sector 8, and sector 64 must be untouched (zero). */
    uint8_t *disk = calloc(disk_sectors, 512);
    read_disk(disk);
    if (memcmp(disk + 8 * 512, expected, PAGE) != 0) fail("sector 8 does not hold the original write");
    for (unsigned k = 0; k < PAGE; k++)
        if (disk[64 * 512 + k] != 0) fail("sector 64 was written: the tap used the rewritten request");
    printf("ok rewrite id=%#" PRIx64 "\n", (uint64_t)id);
    return 0;
}

static int bad_gref(void)
{
    model = calloc(disk_sectors, 512);
    const uint32_t bad[] = { 0, NPAGES + 1, 0xffffffffu };
    uint32_t named[SLOTS];
    int n = 0;
    for (unsigned b = 0; b < 3; b++) {
        for (int two = 0; two < 2; two++) {
            for (int w = 0; w < 2; w++) {
                int i = free_slot();
                unsigned nseg = two ? 2 : 1;
                simple(i, w ? BLKIF_OP_WRITE : BLKIF_OP_READ, 16 * (uint64_t)i, nseg);
                /* Keep the model unchanged: a refused write must not reach the disk. */
                if (w) memset(model + 16 * (uint64_t)i * 512, 0, nseg * PAGE);
                blkif_request_t *req = RING_GET_REQUEST(&front, front.req_prod_pvt - 1);
                req->seg[nseg - 1].gref = bad[b];
                named[i] = bad[b];
                n++;
            }
        }
    }
    push();
    int answered = 0;
    while (answered < n) {
        RING_IDX rp = front.sring->rsp_prod;
        rmb();
        for (RING_IDX c = front.rsp_cons; c != rp; c++) {
            blkif_response_t rsp = *RING_GET_RESPONSE(&front, c);
            int i;
            for (i = 0; i < SLOTS; i++)
                if (slots[i].busy && slots[i].id == rsp.id) break;
            if (i == SLOTS) fail("unknown response id %#" PRIx64, (uint64_t)rsp.id);
            if (rsp.status != BLKIF_RSP_ERROR) fail("request %#" PRIx64 " naming gref %u: status %d, expected ERROR (-1)", (uint64_t)rsp.id, named[i], rsp.status);
            /* The valid page of a two-segment read stays as the frontend left it. */
            if (slots[i].op == BLKIF_OP_READ)
                for (unsigned off = 0; off < PAGE; off++)
                    if (page(gref_of(i, 0))[off] != 0xEE) fail("a refused read changed byte %u of its valid page", off);
            slots[i].busy = 0;
            in_flight--;
            answered++;
        }
        front.rsp_cons = rp;
        int more;
        RING_FINAL_CHECK_FOR_RESPONSES(&front, more);
        if (!more && answered < n) wait_event(EVENT_TIMEOUT_MS);
    }
    /* Nothing reached the disk: it reads back as zeros everywhere. */
    read_disk(NULL);
    printf("ok badgref errors=%d\n", n);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3) { fprintf(stderr, "usage: shm_frontend DIR workload|pause|truncate|bogusprod|rewrite|badgref [OPS SEED [MODELOUT]]\n"); return 2; }
    long ops = argc > 3 ? atol(argv[3]) : 2000;
    if (argc > 4) rng_state ^= (uint64_t)strtoull(argv[4], NULL, 10) * 0x9E3779B97F4A7C15ull;
    setup(argv[1]);
    const char *mode = argv[2];
    if (!strcmp(mode, "workload")) return workload(ops, argc > 5 ? argv[5] : NULL);
    if (!strcmp(mode, "pause")) return pause_workload(ops);
    if (!strcmp(mode, "truncate")) return truncate_workload(ops);
    if (!strcmp(mode, "bogusprod")) return bogus_prod();
    if (!strcmp(mode, "rewrite")) return rewrite();
    if (!strcmp(mode, "badgref")) return bad_gref();
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
