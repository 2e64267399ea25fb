/*
 * The bench's reference NBD server: the least a single-threaded server must do per request, in C, so that the
 * NBD lines can say how much of a server's CPU per request is the kernel's work that every server pays (receive
 * the request, pwrite or pread the image, send the reply) and how much is the server's own.
 *
 * One connection at a time, one thread: epoll_wait for readability, read(2) until the socket is drained, every
 * complete request served at once (pwrite, pread, fdatasync), the replies of the batch sent with one write(2).
 * Newstyle fixed handshake, NBD_OPT_GO/INFO and NBD_OPT_EXPORT_NAME, simple replies only (proto.md).
 * Not a product: no structured replies, no TLS, no limits beyond the protocol's 32 MiB payload.
 *
 * usage: nbd-minimal-server SOCKET IMAGE   (prints "ready" on stdout once it listens)
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* proto.md constants */
#define NBDMAGIC 0x4e42444d41474943ULL
#define IHAVEOPT 0x49484156454F5054ULL
#define OPT_REPLY_MAGIC 0x3e889045565a9ULL
#define REQUEST_MAGIC 0x25609513u
#define SIMPLE_REPLY_MAGIC 0x67446698u
#define FLAG_FIXED_NEWSTYLE 1
#define FLAG_NO_ZEROES 2
#define OPT_EXPORT_NAME 1
#define OPT_ABORT 2
#define OPT_INFO 6
#define OPT_GO 7
#define REP_ACK 1
#define REP_INFO 3
#define REP_ERR_UNSUP 0x80000001u
#define INFO_EXPORT 0
#define TF_HAS_FLAGS 1
#define TF_SEND_FLUSH 4
#define CMD_READ 0
#define CMD_WRITE 1
#define CMD_DISC 2
#define CMD_FLUSH 3
#define MAX_PAYLOAD (32u << 20)
#define HEADER 28

static int image;
static uint64_t image_size;

static int read_full(int fd, void *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p = (char *)p + r;
        n -= (size_t)r;
    }
    return 0;
}

/* Writes everything, waiting for room when the (non-blocking) socket is full. */
static int write_full(int fd, const void *p, size_t n)
{
    while (n) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) {
            struct pollfd w = {.fd = fd, .events = POLLOUT};
            poll(&w, 1, -1);
            continue;
        }
        if (r <= 0) return -1;
        p = (const char *)p + r;
        n -= (size_t)r;
    }
    return 0;
}

static int option_reply(int fd, uint32_t option, uint32_t type, const void *data, uint32_t length)
{
    unsigned char h[20];
    uint64_t magic = htobe64(OPT_REPLY_MAGIC);
    uint32_t fields[3] = {htobe32(option), htobe32(type), htobe32(length)};
    memcpy(h, &magic, 8);
    memcpy(h + 8, fields, 12);
    if (write_full(fd, h, sizeof h)) return -1;
    return length ? write_full(fd, data, length) : 0;
}

/* 0: transmission starts; -1: the client left or broke the protocol. */
static int handshake(int fd)
{
    unsigned char hello[18];
    uint64_t a = htobe64(NBDMAGIC), b = htobe64(IHAVEOPT);
    uint16_t flags = htobe16(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
    uint32_t client_flags;
    memcpy(hello, &a, 8);
    memcpy(hello + 8, &b, 8);
    memcpy(hello + 16, &flags, 2);
    if (write_full(fd, hello, sizeof hello) || read_full(fd, &client_flags, 4)) return -1;
    int no_zeroes = (be32toh(client_flags) & FLAG_NO_ZEROES) != 0;
    uint16_t tflags = htobe16(TF_HAS_FLAGS | TF_SEND_FLUSH);
    uint64_t size = htobe64(image_size);
    for (;;) {
        unsigned char h[16];
        if (read_full(fd, h, sizeof h)) return -1;
        uint32_t option, length;
        memcpy(&option, h + 8, 4);
        memcpy(&length, h + 12, 4);
        option = be32toh(option);
        length = be32toh(length);
        if (length > 65536) return -1;
        unsigned char data[65536];
        if (length && read_full(fd, data, length)) return -1;
        if (option == OPT_EXPORT_NAME) {
            unsigned char info[10 + 124] = {0};
            memcpy(info, &size, 8);
            memcpy(info + 8, &tflags, 2);
            return write_full(fd, info, no_zeroes ? 10 : sizeof info);
        }
        if (option == OPT_GO || option == OPT_INFO) {
            unsigned char info[12];
            uint16_t type = htobe16(INFO_EXPORT);
            memcpy(info, &type, 2);
            memcpy(info + 2, &size, 8);
            memcpy(info + 10, &tflags, 2);
            if (option_reply(fd, option, REP_INFO, info, sizeof info) || option_reply(fd, option, REP_ACK, NULL, 0)) return -1;
            if (option == OPT_GO) return 0;
            continue;
        }
        if (option == OPT_ABORT) {
            option_reply(fd, option, REP_ACK, NULL, 0);
            return -1;
        }
        if (option_reply(fd, option, REP_ERR_UNSUP, NULL, 0)) return -1;
    }
}

static unsigned char *in;
static size_t in_cap, in_head, in_tail;
static unsigned char *out;
static size_t out_cap, out_len;

static void reserve_out(size_t more)
{
    if (out_len + more <= out_cap) return;
    while (out_len + more > out_cap) out_cap *= 2;
    out = realloc(out, out_cap);
    if (!out) { perror("realloc"); exit(1); }
}

/* Serves every complete request in the input buffer. 0: go on; 1: the client disconnected; -1: error. */
static int serve_buffered(void)
{
    for (;;) {
        size_t avail = in_tail - in_head;
        if (avail < HEADER) break;
        unsigned char *p = in + in_head;
        uint32_t magic, length;
        uint16_t type;
        uint64_t cookie, offset;
        memcpy(&magic, p, 4);
        memcpy(&type, p + 6, 2);
        memcpy(&cookie, p + 8, 8);
        memcpy(&offset, p + 16, 8);
        memcpy(&length, p + 24, 4);
        magic = be32toh(magic);
        type = be16toh(type);
        offset = be64toh(offset);
        length = be32toh(length);
        if (magic != REQUEST_MAGIC || length > MAX_PAYLOAD) return -1;
        if (type == CMD_DISC) return 1;
        size_t need = HEADER + (type == CMD_WRITE ? length : 0);
        if (avail < need) {
            if (in_head + need > in_cap) { /* make room for a large write's payload */
                memmove(in, p, avail);
                in_head = 0;
                in_tail = avail;
                if (need > in_cap) {
                    in_cap = need * 2;
                    in = realloc(in, in_cap);
                    if (!in) { perror("realloc"); exit(1); }
                }
            }
            break;
        }
        uint32_t error = 0;
        int in_range = offset <= image_size && length <= image_size - offset;
        reserve_out(16 + (type == CMD_READ ? length : 0));
        unsigned char *reply = out + out_len;
        out_len += 16;
        switch (type) {
        case CMD_WRITE:
            if (!in_range) error = 28; /* ENOSPC */
            else if (pwrite(image, p + HEADER, length, (off_t)offset) != (ssize_t)length) error = 5;
            break;
        case CMD_READ:
            if (!in_range) error = 22;
            else if (pread(image, out + out_len, length, (off_t)offset) != (ssize_t)length) error = 5;
            else out_len += length;
            break;
        case CMD_FLUSH:
            if (fdatasync(image)) error = 5;
            break;
        default:
            error = 22; /* EINVAL */
        }
        magic = htobe32(SIMPLE_REPLY_MAGIC);
        error = htobe32(error);
        memcpy(reply, &magic, 4);
        memcpy(reply + 4, &error, 4);
        memcpy(reply + 8, &cookie, 8);
        in_head += need;
    }
    if (in_head == in_tail) in_head = in_tail = 0;
    else if (in_head > in_cap / 2) {
        memmove(in, in + in_head, in_tail - in_head);
        in_tail -= in_head;
        in_head = 0;
    }
    return 0;
}

static void transmission(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    in_head = in_tail = out_len = 0;
    for (;;) {
        if (epoll_wait(ep, &ev, 1, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        int state = 0;
        for (;;) {
            size_t space = in_cap - in_tail;
            ssize_t n = read(fd, in + in_tail, space);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) break;
            if (n <= 0) { state = 1; break; }
            in_tail += (size_t)n;
            state = serve_buffered();
            if (state || (size_t)n < space) break;
        }
        if (out_len && write_full(fd, out, out_len)) state = -1;
        out_len = 0;
        if (state) break;
    }
    close(ep);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s SOCKET IMAGE\n", argv[0]);
        return 2;
    }
    image = open(argv[2], O_RDWR | O_CLOEXEC);
    struct stat st;
    if (image < 0 || fstat(image, &st)) { perror(argv[2]); return 1; }
    image_size = (uint64_t)st.st_size;
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof addr.sun_path) { fprintf(stderr, "%s: socket path too long\n", argv[1]); return 2; }
    strcpy(addr.sun_path, argv[1]);
    unlink(argv[1]);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 16)) { perror(argv[1]); return 1; }
    in_cap = 1 << 20;
    out_cap = 1 << 20;
    in = malloc(in_cap);
    out = malloc(out_cap);
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR) continue;
            perror("accept");
            return 1;
        }
        if (handshake(fd) == 0) transmission(fd);
        close(fd);
    }
}
