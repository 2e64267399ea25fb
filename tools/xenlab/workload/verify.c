/*
 * verify.c - the xenlab verifying workload: a seeded random read/write/flush/discard mix on a block
 * device (or a regular file), every read checked against an in-memory model, and a SHA-256 digest
 * of the whole device before and after. Written for BlkTapSim; C11 + Linux, libc only, built static
 * by build.sh so it runs in a busybox domU. See README.md next to this file for the full contract.
 *
 *   verify run    --dev PATH --seed S --ops N [--expect-initial HEX] [--region BYTES] [--no-direct] [--qd 1]
 *   verify bench  --dev PATH --mode randread4k|randwrite4k|seqread1m --seconds S [--region BYTES]
 *                 [--seed S] [--no-direct]
 *   verify digest --dev PATH [--no-direct]
 *
 * run:
 *   1. Reads the whole device (size from BLKGETSIZE64, or fstat for a regular file) and hashes it
 *      (SHA-256 = "initial"); the first --region bytes (default: all) are kept as the model, the
 *      rest only as a 64-bit hash per MiB. With --expect-initial, a different initial digest fails.
 *   2. N ops from a splitmix64 stream seeded with S, inside the region: 42% reads (each known byte
 *      compared with the model; sectors of unknown content are adopted), 42% writes, 8% flushes
 *      (fdatasync), 8% discards (BLKDISCARD; a regular file gets fallocate PUNCH_HOLE|KEEP_SIZE).
 *      Read/write sizes: 4 KiB-aligned 4..64 KiB (50%), 512 B..4 KiB at any sector (30%), 512 B..64 KiB
 *      at any sector (20%, multi-page and unaligned to 4 KiB). Discards: 4..128 KiB, 4 KiB-aligned
 *      (3 in 4) or at any sector. A discard failing with EOPNOTSUPP/ENOTSUP/EINVAL counts as
 *      discard_unsupported and leaves the model alone; a successful one makes its sectors UNKNOWN.
 *      Written data: every 512-byte sector starts with the 64-byte ASCII header
 *        "XENLAB-DATA s=<seed:16 hex> n=<sector:12 hex> g=<write op index:8 hex>" + spaces + "\n"
 *      followed by 448 pseudo-random bytes (splitmix64 of seed, sector, generation).
 *   3. fdatasync, then the whole device is read again: every known byte of the region must match
 *      the model, every MiB outside the region must hash as before; SHA-256 of it = "digest".
 *   4. One result line on stdout and exit 0:
 *        XENLAB-VERIFY ok seed=S ops=N reads=R writes=W flushes=F discards=D discard_unsupported=U
 *          bytes=<device size> initial=<hex> digest=<hex>          (one line)
 *      or "XENLAB-VERIFY FAIL <reason>" and exit 1. A few "XENLAB-VERIFY progress ..." lines come first.
 * bench: qd 1 synchronous I/O for S seconds (CLOCK_MONOTONIC), then
 *        XENLAB-BENCH mode=M ops=N bytes=B seconds=T iops=X mib_s=Y
 * digest: XENLAB-DIGEST <hex> bytes=B   (SHA-256 of the whole device or file)
 * Bad usage or input (unknown option, missing file, O_DIRECT refused): "verify: <problem>" on stderr, exit 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sha256.h"

#define SECTOR 512u
#define CHUNK (1u << 20)         /* whole-device passes read 1 MiB at a time */
#define MAX_IO (64u << 10)       /* largest read/write op */
#define HEADER 64u               /* ASCII header at the start of every written sector */

static const char *fail_prefix = "XENLAB-VERIFY";

/* ---- exits ---- */

static void usage_error(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("verify: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (verify --help for usage)\n", stderr);
    va_end(ap);
    exit(2);
}

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s FAIL ", fail_prefix);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    va_end(ap);
    exit(1);
}

static void usage(void)
{
    fputs("usage:\n"
          "  verify run    --dev PATH --seed S --ops N [--expect-initial HEX] [--region BYTES] [--no-direct] [--qd 1]\n"
          "  verify bench  --dev PATH --mode randread4k|randwrite4k|seqread1m --seconds S [--region BYTES] [--seed S] [--no-direct]\n"
          "  verify digest --dev PATH [--no-direct]\n"
          "BYTES takes a K, M or G suffix (powers of 1024). Exit: 0 ok, 1 FAIL, 2 bad usage or input.\n",
          stdout);
}

/* ---- small helpers ---- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t below(uint64_t *state, uint64_t n) { return n ? splitmix(state) % n : 0; }

static void *aligned_alloc_or_die(uint64_t bytes, const char *what)
{
    void *p = NULL;
    if (bytes > SIZE_MAX || posix_memalign(&p, 4096, bytes ? (size_t)bytes : 4096) != 0)
        usage_error("cannot allocate %" PRIu64 " bytes for the %s; pass a smaller --region", bytes, what);
    return p;
}

static void put_hex(char *out, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--, v >>= 4) out[i] = hex[v & 15];
}

/* The marker sector: 64-byte ASCII header, then 448 pseudo-random bytes. */
static void fill_sector(uint8_t *p, uint64_t seed, uint64_t sector, uint64_t gen)
{
    memcpy(p, "XENLAB-DATA s=", 14);
    put_hex((char *)p + 14, seed, 16);
    memcpy(p + 30, " n=", 3);
    put_hex((char *)p + 33, sector, 12);
    memcpy(p + 45, " g=", 3);
    put_hex((char *)p + 48, gen, 8);
    memset(p + 56, ' ', 7);
    p[63] = '\n';
    uint64_t st = seed ^ (sector * 0xd1342543de82ef95ull) ^ (gen * 0xaf251af3b0f025b5ull);
    for (unsigned i = HEADER; i < SECTOR; i += 8) {
        uint64_t r = splitmix(&st);
        memcpy(p + i, &r, 8);
    }
}

static void fill(uint8_t *buf, uint64_t off, uint64_t len, uint64_t seed, uint64_t gen)
{
    for (uint64_t i = 0; i < len; i += SECTOR) fill_sector(buf + i, seed, (off + i) / SECTOR, gen);
}

/* 64-bit hash of 8-byte words (lengths here are multiples of 512): detects changes outside --region. */
static uint64_t word_hash(const uint8_t *p, size_t len)
{
    uint64_t h = 0x6a09e667f3bcc909ull ^ len;
    for (size_t i = 0; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x9fb21c651e98df25ull;
        h ^= h >> 29;
    }
    return h;
}

/* ---- the device ---- */

typedef struct {
    int fd;
    const char *path;
    uint64_t size;
    unsigned lbs;      /* logical block size: alignment of every op */
    int is_blk;
    int direct;
} device;

static void dev_open(device *d, const char *path, int writable, int direct)
{
    d->path = path;
    d->direct = direct;
    struct stat st;
    if (stat(path, &st) != 0) usage_error("cannot open %s: %s", path, strerror(errno));
    if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) usage_error("%s is neither a block device nor a regular file", path);
    d->fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | (direct ? O_DIRECT : 0));
    if (d->fd < 0 && direct && errno == EINVAL)
        usage_error("cannot open %s with O_DIRECT (EINVAL): its filesystem has no direct I/O; pass --no-direct", path);
    if (d->fd < 0) usage_error("cannot open %s: %s", path, strerror(errno));
    if (fstat(d->fd, &st) != 0) usage_error("cannot stat %s: %s", path, strerror(errno));
    d->lbs = SECTOR;
    if (S_ISBLK(st.st_mode)) {
        d->is_blk = 1;
        if (ioctl(d->fd, BLKGETSIZE64, &d->size) != 0) usage_error("BLKGETSIZE64 on %s: %s", path, strerror(errno));
        int lbs = 0;
        if (ioctl(d->fd, BLKSSZGET, &lbs) == 0 && lbs > (int)SECTOR && lbs <= 65536) d->lbs = (unsigned)lbs;
    } else if (S_ISREG(st.st_mode)) {
        d->is_blk = 0;
        d->size = (uint64_t)st.st_size;
    } else {
        usage_error("%s is neither a block device nor a regular file", path);
    }
}

/* Reads len bytes at off; returns the bytes read (short only at end of file) or fails. */
static uint64_t read_at(const device *d, void *buf, uint64_t len, uint64_t off, const char *what)
{
    uint64_t done = 0;
    while (done < len) {
        ssize_t n = pread(d->fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("%s: read of %" PRIu64 " bytes at byte offset %" PRIu64 " failed: %s", what, len - done, off + done, strerror(errno));
        if (n == 0) break;
        done += (uint64_t)n;
    }
    return done;
}

static void write_at(const device *d, const void *buf, uint64_t len, uint64_t off, const char *what)
{
    uint64_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(d->fd, (const uint8_t *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("%s: write of %" PRIu64 " bytes at byte offset %" PRIu64 " failed: %s", what, len - done, off + done, strerror(errno));
        if (n == 0) fail("%s: write at byte offset %" PRIu64 " wrote nothing", what, off + done);
        done += (uint64_t)n;
    }
}

static void flush(const device *d, const char *what)
{
    while (fdatasync(d->fd) != 0) {
        if (errno == EINTR) continue;
        fail("%s: fdatasync failed: %s", what, strerror(errno));
    }
}

/* 0 = discarded, 1 = the device does not support it; other errors fail. */
static int discard(const device *d, uint64_t off, uint64_t len)
{
    int rc;
    if (d->is_blk) {
        uint64_t range[2] = { off, len };
        rc = ioctl(d->fd, BLKDISCARD, range);
    } else {
        rc = fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
    }
    if (rc == 0) return 0;
    if (errno == EOPNOTSUPP || errno == ENOTSUP || errno == EINVAL) return 1;
    fail("discard of %" PRIu64 " bytes at byte offset %" PRIu64 " failed: %s", len, off, strerror(errno));
}

/* ---- SHA-256 of the whole device, shared by run's passes and digest ---- */

typedef void (*chunk_fn)(void *ctx, const uint8_t *data, uint64_t off, uint64_t len);

/* Reads [0, size) in chunks that never straddle split (run's region end) and hashes it. */
static void whole_pass(const device *d, uint64_t split, uint8_t *buf, chunk_fn fn, void *ctx, uint8_t digest[32], const char *what)
{
    sha256_ctx sha;
    sha256_init(&sha);
    for (uint64_t off = 0; off < d->size;) {
        uint64_t end = off < split ? split : d->size;
        uint64_t len = end - off < CHUNK ? end - off : CHUNK;
        uint64_t ask = (len + SECTOR - 1) / SECTOR * SECTOR;   /* O_DIRECT needs whole sectors; a file may end mid-sector */
        uint64_t got = read_at(d, buf, ask, off, what);
        if (got < len) fail("%s: the device ended at byte %" PRIu64 ", expected %" PRIu64 " bytes", what, off + got, d->size);
        sha256_update(&sha, buf, (size_t)len);
        if (fn) fn(ctx, buf, off, len);
        off += len;
    }
    sha256_final(&sha, digest);
}

/* ---- run ---- */

typedef struct {
    uint64_t region;          /* bytes under the model */
    uint8_t *model;
    uint8_t *known;           /* bit per sector of the region: 1 = model holds the content */
    uint64_t *outside;        /* word_hash of each CHUNK after the region */
    uint64_t *stored;         /* word_hash of each known model sector when it was stored: tells a model that
                                 changed in this process's memory from a device that answered wrongly */
    const device *dev;        /* for the diagnostic re-read of a mismatching sector */
    uint8_t *scratch;         /* one aligned sector for that re-read */
    uint64_t reads, writes, flushes, discards, unsupported, read_bytes, written_bytes;
} state;

static int is_known(const state *s, uint64_t sector) { return s->known[sector >> 3] >> (sector & 7) & 1; }
static void store_hashes(state *s, uint64_t off, uint64_t len)
{
    for (uint64_t i = 0; i < len; i += SECTOR) s->stored[(off + i) / SECTOR] = word_hash(s->model + off + i, SECTOR);
}
static void set_known(state *s, uint64_t sector, int v)
{
    if (v) s->known[sector >> 3] |= (uint8_t)(1u << (sector & 7));
    else s->known[sector >> 3] &= (uint8_t)~(1u << (sector & 7));
}

static void printable_header(char out[57], const uint8_t *p)
{
    for (int i = 0; i < 56; i++) out[i] = p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' ? (char)p[i] : '.';
    out[56] = 0;
}

/* Compares data read at [off, off+len) with the model; unknown sectors are adopted. */
static void check(state *s, const uint8_t *data, uint64_t off, uint64_t len, const char *what)
{
    for (uint64_t i = 0; i < len; i += SECTOR) {
        uint64_t sector = (off + i) / SECTOR;
        uint8_t *m = s->model + off + i;
        if (!is_known(s, sector)) {
            memcpy(m, data + i, SECTOR);
            store_hashes(s, off + i, SECTOR);
            set_known(s, sector, 1);
            continue;
        }
        if (memcmp(m, data + i, SECTOR) == 0) continue;
        unsigned b = 0;
        while (m[b] == data[i + b]) b++;
        char exp[57], got[57];
        printable_header(exp, m);
        printable_header(got, data + i);
        /* Which side is wrong: a model that no longer hashes as stored was changed in this process's memory (no
         * device answer can do that); a re-read that differs from this read means the device answers inconsistently. */
        const char *model_state = word_hash(m, SECTOR) == s->stored[sector]
            ? "the model is intact (it hashes as when stored)"
            : "the MODEL CHANGED in this domU's memory since it was stored (guest memory corruption, not a device answer)";
        const char *reread = "no re-read";
        if (s->dev && read_at(s->dev, s->scratch, SECTOR, sector * SECTOR, "diagnostic re-read") == SECTOR)
            reread = memcmp(s->scratch, data + i, SECTOR) == 0 ? "a re-read returns the same bytes as this read"
                   : memcmp(s->scratch, m, SECTOR) == 0 ? "a re-read returns the model's bytes"
                   : "a re-read returns a third content";
        /* The differing run inside the sector: where it ends, and 16 bytes of each side from its start. */
        unsigned e = SECTOR;
        while (e > b && m[e - 1] == data[i + e - 1]) e--;
        char hexexp[33], hexgot[33];
        for (unsigned k = 0; k < 16; k++) {
            unsigned at = b + k < SECTOR ? b + k : SECTOR - 1;
            snprintf(hexexp + 2 * k, 3, "%02x", m[at]);
            snprintf(hexgot + 2 * k, 3, "%02x", data[i + at]);
        }
        fail("%s: mismatch at byte offset %" PRIu64 " (sector %" PRIu64 "): expected 0x%02x got 0x%02x; bytes %u..%u of the sector differ"
             " (from there expected %s got %s); sector starts expected \"%s\" got \"%s\"; %s; %s",
             what, off + i + b, sector, m[b], data[i + b], b, e - 1, hexexp, hexgot, exp, got, model_state, reread);
    }
}

struct pass_ctx { state *s; int final; const char *what; };

static void initial_chunk(void *ctx, const uint8_t *data, uint64_t off, uint64_t len)
{
    state *s = ((struct pass_ctx *)ctx)->s;
    if (off < s->region) { memcpy(s->model + off, data, (size_t)len); store_hashes(s, off, len); }
    else s->outside[(off - s->region) / CHUNK] = word_hash(data, (size_t)len);
}

static void final_chunk(void *ctx, const uint8_t *data, uint64_t off, uint64_t len)
{
    struct pass_ctx *c = ctx;
    state *s = c->s;
    if (off < s->region) check(s, data, off, len, c->what);
    else if (s->outside[(off - s->region) / CHUNK] != word_hash(data, (size_t)len))
        fail("%s: bytes [%" PRIu64 ", %" PRIu64 ") outside --region changed", c->what, off, off + len);
}

/* An op's length and offset inside the region, both multiples of the alignment. */
static void pick_io(uint64_t *rng, const state *s, unsigned lbs, uint64_t *off, uint64_t *len)
{
    uint64_t k = below(rng, 10), align;
    if (k < 5) { *len = (1 + below(rng, 16)) * 4096; align = 4096; }
    else if (k < 8) { *len = (1 + below(rng, 8)) * SECTOR; align = SECTOR; }
    else { *len = (1 + below(rng, MAX_IO / SECTOR)) * SECTOR; align = SECTOR; }
    if (align < lbs) align = lbs;
    *len = (*len + lbs - 1) / lbs * lbs;
    if (*len > s->region) *len = s->region / align * align;
    *off = below(rng, (s->region - *len) / align + 1) * align;
}

static void run_progress(const state *s, uint64_t done, uint64_t ops, double t0)
{
    printf("XENLAB-VERIFY progress phase=ops done=%" PRIu64 "/%" PRIu64 " reads=%" PRIu64 " writes=%" PRIu64
           " flushes=%" PRIu64 " discards=%" PRIu64 " seconds=%.1f\n",
           done, ops, s->reads, s->writes, s->flushes, s->discards, now() - t0);
}

typedef struct {
    const char *dev, *mode, *expect;
    uint64_t seed, ops, region;
    double seconds;
    int have_seed, have_ops, have_region, have_seconds, direct;
} options;

static int cmd_run(const options *o)
{
    device d;
    dev_open(&d, o->dev, 1, o->direct);
    if (d.size == 0 || d.size % SECTOR) usage_error("%s is %" PRIu64 " bytes: not a positive multiple of 512", d.path, d.size);
    /* As root, every page this process maps is populated by the kernel at mmap time and stays resident, so the
     * model never takes a page fault on first touch: under a loaded TCG host the lab saw a PV domU lose stores to
     * freshly faulted pages (tools/xenlab/README.md, "Known problems"). Without privilege this is skipped. */
    if (geteuid() == 0) (void)mlockall(MCL_CURRENT | MCL_FUTURE);
    state s = { 0 };
    s.region = o->have_region ? o->region : d.size;
    if (s.region > d.size) usage_error("--region %" PRIu64 " is larger than %s (%" PRIu64 " bytes)", s.region, d.path, d.size);
    if (s.region < 4096 || s.region % d.lbs) usage_error("--region %" PRIu64 " must be at least 4096 and a multiple of %u", s.region, d.lbs);
    s.model = aligned_alloc_or_die(s.region, "model");
    s.known = calloc((size_t)(s.region / SECTOR + 7) / 8, 1);
    s.outside = calloc((size_t)((d.size - s.region) / CHUNK + 1), sizeof(uint64_t));
    s.stored = calloc((size_t)(s.region / SECTOR), sizeof(uint64_t));
    s.dev = &d;
    s.scratch = aligned_alloc_or_die(4096, "re-read buffer");
    uint8_t *buf = aligned_alloc_or_die(CHUNK, "I/O buffer");
    if (!s.known || !s.outside || !s.stored) usage_error("cannot allocate the model's bitmaps");
    /* Every page of the model and the buffer is touched once here, before any I/O. */
    memset(s.model, 0, (size_t)s.region);
    memset(buf, 0, CHUNK);
    double t0 = now();
    printf("XENLAB-VERIFY progress phase=start dev=%s bytes=%" PRIu64 " region=%" PRIu64 " direct=%d lbs=%u seed=%" PRIu64 " ops=%" PRIu64 "\n",
           d.path, d.size, s.region, d.direct, d.lbs, o->seed, o->ops);

    uint8_t digest[32];
    char initial[65], final[65];
    struct pass_ctx ctx = { &s, 0, "initial read" };
    whole_pass(&d, s.region, buf, initial_chunk, &ctx, digest, "initial read");
    sha256_hex(digest, initial);
    memset(s.known, 0xff, (size_t)(s.region / SECTOR + 7) / 8);
    /* Test hook (VerifyWorkloadTests): flips one model byte after the initial pass, as memory corruption would. */
    const char *corrupt = getenv("XENLAB_VERIFY_TEST_CORRUPT_MODEL_BYTE");
    if (corrupt && strtoull(corrupt, NULL, 10) < s.region) s.model[strtoull(corrupt, NULL, 10)] ^= 0xff;
    printf("XENLAB-VERIFY progress phase=initial bytes=%" PRIu64 " sha256=%s seconds=%.1f\n", d.size, initial, now() - t0);
    if (o->expect && strcasecmp(o->expect, initial) != 0)
        fail("initial digest %s differs from --expect-initial %s: the data did not survive", initial, o->expect);

    uint64_t rng = o->seed;
    char what[96];
    for (uint64_t i = 1; i <= o->ops; i++) {
        uint64_t kind = below(&rng, 100), off, len;
        if (kind < 42) {
            pick_io(&rng, &s, d.lbs, &off, &len);
            snprintf(what, sizeof what, "op %" PRIu64 " read of %" PRIu64 " bytes at %" PRIu64, i, len, off);
            if (read_at(&d, buf, len, off, what) != len) fail("%s: short read (end of device)", what);
            check(&s, buf, off, len, what);
            s.reads++;
            s.read_bytes += len;
        } else if (kind < 84) {
            pick_io(&rng, &s, d.lbs, &off, &len);
            snprintf(what, sizeof what, "op %" PRIu64 " write of %" PRIu64 " bytes at %" PRIu64, i, len, off);
            fill(buf, off, len, o->seed, i);
            write_at(&d, buf, len, off, what);
            memcpy(s.model + off, buf, (size_t)len);
            store_hashes(&s, off, len);
            for (uint64_t b = 0; b < len; b += SECTOR) set_known(&s, (off + b) / SECTOR, 1);
            s.writes++;
            s.written_bytes += len;
        } else if (kind < 92) {
            snprintf(what, sizeof what, "op %" PRIu64 " flush", i);
            flush(&d, what);
            s.flushes++;
        } else {
            uint64_t align = below(&rng, 4) ? 4096 : SECTOR;
            if (align < d.lbs) align = d.lbs;
            len = (1 + below(&rng, 32)) * 4096;
            if (len > s.region) len = s.region / align * align;
            off = below(&rng, (s.region - len) / align + 1) * align;
            if (discard(&d, off, len)) {
                s.unsupported++;
            } else {
                for (uint64_t b = 0; b < len; b += SECTOR) set_known(&s, (off + b) / SECTOR, 0);
                s.discards++;
            }
        }
        if (o->ops >= 4 && i < o->ops && (i == o->ops / 4 || i == o->ops / 2 || i == o->ops / 4 * 3)) run_progress(&s, i, o->ops, t0);
    }
    run_progress(&s, o->ops, o->ops, t0);

    flush(&d, "final flush");
    ctx = (struct pass_ctx){ &s, 1, "final read" };
    whole_pass(&d, s.region, buf, final_chunk, &ctx, digest, "final read");
    sha256_hex(digest, final);
    printf("XENLAB-VERIFY progress phase=final read_bytes=%" PRIu64 " written_bytes=%" PRIu64 " seconds=%.1f\n",
           s.read_bytes, s.written_bytes, now() - t0);
    printf("XENLAB-VERIFY ok seed=%" PRIu64 " ops=%" PRIu64 " reads=%" PRIu64 " writes=%" PRIu64 " flushes=%" PRIu64
           " discards=%" PRIu64 " discard_unsupported=%" PRIu64 " bytes=%" PRIu64 " initial=%s digest=%s\n",
           o->seed, o->ops, s.reads, s.writes, s.flushes, s.discards, s.unsupported, d.size, initial, final);
    close(d.fd);
    return 0;
}

/* ---- bench ---- */

static int cmd_bench(const options *o)
{
    int kind = !strcmp(o->mode, "randread4k") ? 0 : !strcmp(o->mode, "randwrite4k") ? 1 : !strcmp(o->mode, "seqread1m") ? 2 : -1;
    if (kind < 0) usage_error("--mode %s: expected randread4k, randwrite4k or seqread1m", o->mode);
    device d;
    dev_open(&d, o->dev, kind == 1, o->direct);
    uint64_t bs = kind == 2 ? CHUNK : 4096;
    uint64_t region = o->have_region ? o->region : d.size;
    if (region > d.size) usage_error("--region %" PRIu64 " is larger than %s (%" PRIu64 " bytes)", region, d.path, d.size);
    if (region < bs) usage_error("%s needs at least %" PRIu64 " bytes of --region or device, has %" PRIu64, o->mode, bs, region);
    if (bs % d.lbs) usage_error("%s: the device's logical block size %u does not divide %" PRIu64, o->mode, d.lbs, bs);
    uint8_t *buf = aligned_alloc_or_die(bs, "I/O buffer");
    uint64_t rng = o->seed, ops = 0, off = 0, blocks = region / bs;
    double t0 = now(), elapsed;
    do {
        if (kind == 2) {
            if (off + bs > region) off = 0;
        } else {
            off = below(&rng, blocks) * bs;
        }
        if (kind == 1) {
            fill(buf, off, bs, o->seed, ops + 1);
            write_at(&d, buf, bs, off, "bench write");
        } else if (read_at(&d, buf, bs, off, "bench read") != bs) {
            fail("bench read at %" PRIu64 ": short read (end of device)", off);
        }
        if (kind == 2) off += bs;
        ops++;
        elapsed = now() - t0;
    } while (elapsed < o->seconds);
    if (kind == 1) {
        flush(&d, "bench flush");
        elapsed = now() - t0;
    }
    double bytes = (double)ops * (double)bs;
    printf("XENLAB-BENCH mode=%s ops=%" PRIu64 " bytes=%" PRIu64 " seconds=%.3f iops=%.1f mib_s=%.2f\n",
           o->mode, ops, ops * bs, elapsed, (double)ops / elapsed, bytes / 1048576.0 / elapsed);
    close(d.fd);
    return 0;
}

/* ---- digest ---- */

static int cmd_digest(const options *o)
{
    device d;
    dev_open(&d, o->dev, 0, o->direct);
    uint8_t *buf = aligned_alloc_or_die(CHUNK, "I/O buffer");
    uint8_t digest[32];
    char hex[65];
    whole_pass(&d, d.size, buf, NULL, NULL, digest, "digest read");
    sha256_hex(digest, hex);
    printf("XENLAB-DIGEST %s bytes=%" PRIu64 "\n", hex, d.size);
    close(d.fd);
    return 0;
}

/* ---- arguments ---- */

static uint64_t parse_u64(const char *opt, const char *v, int suffixes)
{
    char *end;
    errno = 0;
    if (!*v || *v == '-') usage_error("%s %s: expected a non-negative integer", opt, v);
    unsigned long long n = strtoull(v, &end, 0);
    uint64_t mul = 1;
    if (suffixes && *end && !end[1]) {
        switch (*end) {
        case 'k': case 'K': mul = 1ull << 10; end++; break;
        case 'm': case 'M': mul = 1ull << 20; end++; break;
        case 'g': case 'G': mul = 1ull << 30; end++; break;
        default: break;
        }
    }
    if (errno || *end || (mul > 1 && n > UINT64_MAX / mul)) usage_error("%s %s: expected a non-negative integer%s", opt, v, suffixes ? " (K, M, G suffixes allowed)" : "");
    return (uint64_t)n * mul;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) usage_error("missing command: run, bench or digest");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) { usage(); return 0; }
    int run = !strcmp(cmd, "run"), bench = !strcmp(cmd, "bench"), dig = !strcmp(cmd, "digest");
    if (!run && !bench && !dig) usage_error("unknown command '%s': expected run, bench or digest", cmd);
    fail_prefix = run ? "XENLAB-VERIFY" : bench ? "XENLAB-BENCH" : "XENLAB-DIGEST";

    options o = { 0 };
    o.direct = 1;
    o.seed = 1;
    for (int i = 2; i < argc; i++) {
        char *a = argv[i], *v = NULL;
        char name[32];
        if (strncmp(a, "--", 2) != 0) usage_error("unexpected argument '%s'", a);
        char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        if (n >= sizeof name) usage_error("unknown option '%s'", a);
        memcpy(name, a, n);
        name[n] = 0;
        if (!strcmp(name, "--help")) { usage(); return 0; }
        if (!strcmp(name, "--no-direct")) {
            if (eq) usage_error("--no-direct takes no value");
            o.direct = 0;
            continue;
        }
        /* every other option takes a value */
        static const char *const known_opts[] = { "--dev", "--seed", "--ops", "--expect-initial", "--region", "--qd", "--mode", "--seconds" };
        int k = -1;
        for (int j = 0; j < 8; j++) if (!strcmp(name, known_opts[j])) k = j;
        if (k < 0) usage_error("unknown option '%s'", name);
        if (eq) v = eq + 1;
        else if (i + 1 < argc) v = argv[++i];
        else usage_error("%s needs a value", name);
        int allowed = k == 0 || (run && k <= 5) || (bench && (k == 1 || k == 4 || k == 5 || k == 6 || k == 7));
        if (!allowed) usage_error("%s is not an option of '%s'", name, cmd);
        switch (k) {
        case 0: o.dev = v; break;
        case 1: o.seed = parse_u64(name, v, 0); o.have_seed = 1; break;
        case 2: o.ops = parse_u64(name, v, 0); o.have_ops = 1; break;
        case 3:
            if (strlen(v) != 64 || strspn(v, "0123456789abcdefABCDEF") != 64) usage_error("--expect-initial %s: expected 64 hex digits", v);
            o.expect = v;
            break;
        case 4: o.region = parse_u64(name, v, 1); o.have_region = 1; break;
        case 5: if (parse_u64(name, v, 0) != 1) usage_error("--qd %s: only --qd 1 (synchronous I/O) is supported", v); break;
        case 6: o.mode = v; break;
        case 7: {
            char *end;
            errno = 0;
            o.seconds = strtod(v, &end);
            if (errno || *end || !(o.seconds > 0) || o.seconds > 86400) usage_error("--seconds %s: expected a number of seconds above 0", v);
            o.have_seconds = 1;
            break;
        }
        default: break;
        }
    }
    if (!o.dev) usage_error("missing --dev PATH");
    if (run) {
        if (!o.have_seed) usage_error("missing --seed S");
        if (!o.have_ops) usage_error("missing --ops N");
        return cmd_run(&o);
    }
    if (bench) {
        if (!o.mode) usage_error("missing --mode randread4k|randwrite4k|seqread1m");
        if (!o.have_seconds) usage_error("missing --seconds S");
        return cmd_bench(&o);
    }
    return cmd_digest(&o);
}
