/*
 * sha256.c - SHA-256 as specified in FIPS 180-4, written for this project.
 *
 * The round constants K (first 32 bits of the fractional parts of the cube roots of the first 64
 * primes) and the initial hash H0 (same for the square roots of the first 8 primes) are not typed
 * in: they are derived once, exactly, with integer roots in 128-bit arithmetic, so a typo cannot
 * hide in a table. The tests compare every digest with coreutils' sha256sum.
 */
#include "sha256.h"

#include <string.h>

__extension__ typedef unsigned __int128 u128;

static uint32_t K[64];
static uint32_t H0[8];
static int constants_ready;

/* floor(n ** (1/k)) for k = 2 or 3 and n < 2^127, by binary search. */
static uint64_t iroot(u128 n, int k)
{
    uint64_t lo = 0, hi = (uint64_t)1 << 40;   /* roots here are below 2^40 */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        u128 p = (u128)mid * mid;
        if (k == 3) p *= mid;
        if (p <= n) lo = mid; else hi = mid - 1;
    }
    return lo;
}

static void derive_constants(void)
{
    int found = 0;
    for (uint32_t p = 2; found < 64; p++) {
        int prime = 1;
        for (uint32_t d = 2; d * d <= p; d++)
            if (p % d == 0) { prime = 0; break; }
        if (!prime) continue;
        /* frac(cbrt(p)) * 2^32 = cbrt(p * 2^96) mod 2^32; frac(sqrt(p)) * 2^32 = sqrt(p * 2^64) mod 2^32 */
        K[found] = (uint32_t)iroot((u128)p << 96, 3);
        if (found < 8) H0[found] = (uint32_t)iroot((u128)p << 64, 2);
        found++;
    }
    constants_ready = 1;
}

static inline uint32_t ror(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static void compress(uint32_t h[8], const uint8_t *b)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 | (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & bb) ^ (a & c) ^ (bb & c));
        hh = g; g = f; f = e; e = d + t1;
        d = c; c = bb; bb = a; a = t1 + t2;
    }
    h[0] += a; h[1] += bb; h[2] += c; h[3] += d;
    h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void sha256_init(sha256_ctx *c)
{
    if (!constants_ready) derive_constants();
    memcpy(c->h, H0, sizeof H0);
    c->length = 0;
    c->used = 0;
}

void sha256_update(sha256_ctx *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    c->length += len;
    if (c->used) {
        size_t take = 64 - c->used < len ? 64 - c->used : len;
        memcpy(c->block + c->used, p, take);
        c->used += take; p += take; len -= take;
        if (c->used < 64) return;
        compress(c->h, c->block);
        c->used = 0;
    }
    for (; len >= 64; p += 64, len -= 64) compress(c->h, p);
    memcpy(c->block, p, len);
    c->used = len;
}

void sha256_final(sha256_ctx *c, uint8_t out[32])
{
    uint64_t bits = c->length * 8;
    c->block[c->used++] = 0x80;
    if (c->used > 56) {
        memset(c->block + c->used, 0, 64 - c->used);
        compress(c->h, c->block);
        c->used = 0;
    }
    memset(c->block + c->used, 0, 56 - c->used);
    for (int i = 0; i < 8; i++) c->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    compress(c->h, c->block);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

void sha256_hex(const uint8_t digest[32], char out[65])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[64] = 0;
}
