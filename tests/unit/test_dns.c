/* SPDX-License-Identifier: MIT */
/* agent/dnswire: query parsing and answers, with hand-built packets. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "dnswire.h"
#include "macro.h"
#include "unit-helpers.h"

static struct dns_names *names;
static struct dns_zones *zones;

static struct dns_address A4(const char *s) {
        struct dns_address a = { .family = AF_INET };
        assert_int_equal(inet_pton(AF_INET, s, &a.in), 1);
        return a;
}

static struct dns_address A6(const char *s) {
        struct dns_address a = { .family = AF_INET6 };
        assert_int_equal(inet_pton(AF_INET6, s, &a.in6), 1);
        return a;
}

static int setup(void **state) {
        struct dns_address main_addrs[] = { A6("fd60:627a:a42b::1"), A4("100.64.0.1") };
        struct dns_address v6only[] = { A6("fd60:627a:a42b::2") };
        struct dns_address many[100];
        for (size_t i = 0; i < ELEMENTSOF(many); i++) {
                many[i] = A6("fd60:627a:a42b::100");
                many[i].in6.s6_addr[15] = (uint8_t) i;
                many[i].in6.s6_addr[14] = 1;
        }
        struct dns_entry e[] = {
                { "main.dev.me.coder.", main_addrs, ELEMENTSOF(main_addrs) },
                { "Other.Dev.Me.Coder", v6only, ELEMENTSOF(v6only) },
                { "many.coder", many, ELEMENTSOF(many) },
        };
        const char *z[] = { "coder" };

        assert_int_equal(dns_names_new(e, ELEMENTSOF(e), &names), 0);
        assert_int_equal(dns_names_count(names), 3);
        assert_int_equal(dns_zones_new(z, 1, &zones), 0);
        return 0;
}

static int teardown(void **state) {
        dns_names_free(names);
        dns_zones_free(zones);
        return 0;
}

/* A query: header with @id/@flags/@qd, then @qname (wire, @qlen bytes), type, class. */
static size_t build(uint8_t *p, uint16_t id, uint16_t flags, uint16_t qd, const void *qname,
                    size_t qlen, uint16_t qtype, uint16_t qclass) {
        memset(p, 0, 12);
        p[0] = (uint8_t) (id >> 8), p[1] = (uint8_t) id;
        p[2] = (uint8_t) (flags >> 8), p[3] = (uint8_t) flags;
        p[4] = (uint8_t) (qd >> 8), p[5] = (uint8_t) qd;
        memcpy(p + 12, qname, qlen);
        size_t o = 12 + qlen;
        p[o++] = (uint8_t) (qtype >> 8), p[o++] = (uint8_t) qtype;
        p[o++] = (uint8_t) (qclass >> 8), p[o++] = (uint8_t) qclass;
        return o;
}

static size_t build_text(uint8_t *p, uint16_t id, uint16_t flags, const char *name, uint16_t qtype) {
        uint8_t w[DNS_NAME_MAX];
        int n;

        /* dns_name_from_text lower-cases; build the wire name by hand to keep case. */
        n = 0;
        for (const char *s = name; *s;) {
                const char *d = strchr(s, '.');
                size_t l = d ? (size_t) (d - s) : strlen(s);
                w[n++] = (uint8_t) l;
                memcpy(w + n, s, l);
                n += (int) l;
                if (!d)
                        break;
                s = d + 1;
        }
        w[n++] = 0;
        return build(p, id, flags, 1, w, (size_t) n, qtype, DNS_CLASS_IN);
}

static void add_opt(uint8_t *p, size_t *len, uint16_t udp, uint8_t version) {
        uint8_t opt[11] = { 0, 0, 41, (uint8_t) (udp >> 8), (uint8_t) udp, 0, version, 0, 0, 0, 0 };
        memcpy(p + *len, opt, 11);
        *len += 11;
        p[11]++; /* ARCOUNT */
}

static uint16_t g16(const uint8_t *p) {
        return (uint16_t) (p[0] << 8 | p[1]);
}

struct resp {
        uint8_t b[2048];
        size_t len;
};

static struct resp ask(const uint8_t *q, size_t qlen) {
        struct resp r;
        memset(r.b, 0xee, sizeof(r.b));
        r.len = dns_respond(names, zones, q, qlen, r.b, DNS_EDNS_UDP_MAX);
        assert_true(r.len <= DNS_EDNS_UDP_MAX);
        return r;
}

/* Header checks: id, flags word, counts. */
static void check_header(const struct resp *r, uint16_t id, uint16_t flags, uint16_t qd,
                         uint16_t an, uint16_t ns, uint16_t ar) {
        assert_true(r->len >= 12);
        assert_int_equal(g16(r->b), id);
        assert_int_equal(g16(r->b + 2), flags);
        assert_int_equal(g16(r->b + 4), qd);
        assert_int_equal(g16(r->b + 6), an);
        assert_int_equal(g16(r->b + 8), ns);
        assert_int_equal(g16(r->b + 10), ar);
}

#define QR DNS_FLAG_QR
#define AA DNS_FLAG_AA
#define RD DNS_FLAG_RD
#define TC DNS_FLAG_TC

static void test_name_from_text(void **state) {
        uint8_t w[DNS_NAME_MAX];
        char t[DNS_NAME_MAX + 1];
        char long_label[80], long_name[300];

        assert_int_equal(dns_name_from_text("Main.Coder.", w), 12);
        assert_memory_equal(w, "\4main\5coder\0", 12);
        dns_name_to_text(w, t);
        assert_string_equal(t, "main.coder.");
        assert_int_equal(dns_name_from_text("main.coder", w), 12);
        assert_int_equal(dns_name_from_text("", w), -EINVAL);
        assert_int_equal(dns_name_from_text(".", w), -EINVAL);
        assert_int_equal(dns_name_from_text("a..b", w), -EINVAL);
        assert_int_equal(dns_name_from_text(".a", w), -EINVAL);
        assert_int_equal(dns_name_from_text("a.b..", w), -EINVAL);
        memset(long_label, 'x', 63);
        long_label[63] = 0;
        assert_int_equal(dns_name_from_text(long_label, w), 65);
        long_label[63] = 'x', long_label[64] = 0;
        assert_int_equal(dns_name_from_text(long_label, w), -EINVAL);
        /* 4 labels of 63 = 256 wire bytes with root: too long; 3 of 63 + one of 61 = 255. */
        memset(long_name, 'y', sizeof(long_name));
        long_name[63] = long_name[127] = long_name[191] = '.';
        long_name[253] = 0;
        assert_int_equal(dns_name_from_text(long_name, w), 255);
        long_name[253] = 'y', long_name[254] = 0;
        assert_int_equal(dns_name_from_text(long_name, w), -EINVAL);
}

static void test_aaaa_hit(void **state) {
        uint8_t q[512];
        size_t n = build_text(q, 0x1234, RD, "main.dev.me.coder", DNS_TYPE_AAAA);
        struct resp r = ask(q, n);

        check_header(&r, 0x1234, QR | AA | RD, 1, 1, 0, 0);
        assert_memory_equal(r.b + 12, q + 12, n - 12); /* question echoed */
        const uint8_t *a = r.b + n;
        assert_int_equal(r.len, n + 28);
        assert_memory_equal(a, "\xc0\x0c\x00\x1c\x00\x01\x00\x00\x00\x05\x00\x10", 12);
        assert_memory_equal(a + 12, "\xfd\x60\x62\x7a\xa4\x2b\0\0\0\0\0\0\0\0\0\x01", 16);
}

static void test_a_hit_case_insensitive(void **state) {
        uint8_t q[512];
        size_t n = build_text(q, 0xbeef, 0, "MaIn.DEV.me.CODER", DNS_TYPE_A);
        struct resp r = ask(q, n);

        check_header(&r, 0xbeef, QR | AA, 1, 1, 0, 0);
        assert_memory_equal(r.b + 12, "\4MaIn\3DEV\2me\5CODER\0", 19); /* case kept */
        assert_int_equal(r.len, n + 16);
        assert_memory_equal(r.b + n, "\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04\x64\x40\x00\x01", 16);

        /* An entry given in mixed case without trailing dot matches too. */
        n = build_text(q, 7, RD, "other.dev.me.coder", DNS_TYPE_AAAA);
        r = ask(q, n);
        check_header(&r, 7, QR | AA | RD, 1, 1, 0, 0);
}

static void test_any(void **state) {
        uint8_t q[512];
        size_t n = build_text(q, 1, 0, "main.dev.me.coder", DNS_TYPE_ANY);
        struct resp r = ask(q, n);

        check_header(&r, 1, QR | AA, 1, 2, 0, 0);
        assert_int_equal(r.len, n + 16 + 28);
}

static void test_nodata(void **state) {
        uint8_t q[512];
        /* Name exists, no v4 address. */
        size_t n = build_text(q, 2, RD, "other.dev.me.coder", DNS_TYPE_A);
        struct resp r = ask(q, n);
        check_header(&r, 2, QR | AA | RD, 1, 0, 0, 0);
        assert_int_equal(r.len, n);

        /* Name exists, other type. */
        n = build_text(q, 3, RD, "main.dev.me.coder", 16 /* TXT */);
        r = ask(q, n);
        check_header(&r, 3, QR | AA | RD, 1, 0, 0, 0);

        /* Empty non-terminal and the zone apex exist. */
        n = build_text(q, 4, RD, "dev.me.coder", DNS_TYPE_A);
        r = ask(q, n);
        check_header(&r, 4, QR | AA | RD, 1, 0, 0, 0);
        n = build_text(q, 5, RD, "coder", DNS_TYPE_SOA);
        r = ask(q, n);
        check_header(&r, 5, QR | AA | RD, 1, 0, 0, 0);
}

static void test_nxdomain(void **state) {
        uint8_t q[512];
        size_t n = build_text(q, 0xffff, RD, "nope.dev.me.coder", DNS_TYPE_AAAA);
        struct resp r = ask(q, n);
        check_header(&r, 0xffff, QR | AA | RD | DNS_RCODE_NXDOMAIN, 1, 0, 0, 0);
        assert_int_equal(r.len, n);

        n = build_text(q, 9, 0, "x.main.dev.me.coder", DNS_TYPE_A);
        r = ask(q, n);
        check_header(&r, 9, QR | AA | DNS_RCODE_NXDOMAIN, 1, 0, 0, 0);
}

static void test_refused(void **state) {
        uint8_t q[512];
        size_t n = build_text(q, 10, RD, "example.com", DNS_TYPE_A);
        struct resp r = ask(q, n);
        check_header(&r, 10, QR | RD | DNS_RCODE_REFUSED, 1, 0, 0, 0);
        assert_memory_equal(r.b + 12, q + 12, n - 12);

        /* "xcoder" is not under "coder". */
        n = build_text(q, 11, RD, "xcoder", DNS_TYPE_A);
        r = ask(q, n);
        check_header(&r, 11, QR | RD | DNS_RCODE_REFUSED, 1, 0, 0, 0);
        n = build_text(q, 12, RD, "main.dev.me.coder.com", DNS_TYPE_A);
        r = ask(q, n);
        check_header(&r, 12, QR | RD | DNS_RCODE_REFUSED, 1, 0, 0, 0);

        /* Class CH. */
        n = build(q, 13, RD, 1, "\4main\3dev\2me\5coder", 19, DNS_TYPE_A, 3);
        r = ask(q, n);
        check_header(&r, 13, QR | RD | DNS_RCODE_REFUSED, 1, 0, 0, 0);

        /* No zones, no names: everything refused. */
        r.len = dns_respond(NULL, NULL, q, build_text(q, 14, 0, "main.dev.me.coder", 1), r.b, 512);
        check_header(&r, 14, QR | DNS_RCODE_REFUSED, 1, 0, 0, 0);
}

static void test_dropped(void **state) {
        uint8_t q[512];
        size_t n = build_text(q, 1, 0, "main.dev.me.coder", DNS_TYPE_A);
        uint8_t out[512];

        for (size_t i = 0; i < 12; i++)
                assert_int_equal(dns_respond(names, zones, q, i, out, sizeof(out)), 0);
        q[2] |= 0x80; /* QR: a response */
        assert_int_equal(dns_respond(names, zones, q, n, out, sizeof(out)), 0);
        assert_int_equal(dns_respond(names, zones, NULL, 0, out, sizeof(out)), 0);
}

static void expect_formerr(const uint8_t *q, size_t n, uint16_t id, uint16_t flags) {
        struct resp r = ask(q, n);
        check_header(&r, id, QR | flags | DNS_RCODE_FORMERR, 0, 0, 0, 0);
        assert_int_equal(r.len, 12);
}

static void test_formerr(void **state) {
        uint8_t q[1024];
        size_t n;

        /* Truncated question: every prefix of a good query past the header. */
        n = build_text(q, 0x4242, RD, "main.dev.me.coder", DNS_TYPE_A);
        for (size_t i = 12; i < n; i++)
                expect_formerr(q, i, 0x4242, RD);

        /* QDCOUNT 0 and 2. */
        n = build(q, 1, RD, 0, "\4main\0", 6, 1, 1);
        expect_formerr(q, n, 1, RD);
        n = build(q, 2, 0, 2, "\4main\0", 6, 1, 1);
        expect_formerr(q, n, 2, 0);
        /* ANCOUNT / NSCOUNT set. */
        n = build(q, 3, 0, 1, "\4main\0", 6, 1, 1);
        q[7] = 1;
        expect_formerr(q, n, 3, 0);
        q[7] = 0, q[9] = 1;
        expect_formerr(q, n, 3, 0);

        /* Label of 64 (0x40 is a reserved label type as well) and 0x80. */
        uint8_t w[300];
        w[0] = 64;
        memset(w + 1, 'a', 64);
        w[65] = 0;
        n = build(q, 4, 0, 1, w, 66, 1, 1);
        expect_formerr(q, n, 4, 0);
        w[0] = 0x80;
        expect_formerr(q, n, 4, 0);

        /* Name of 256 wire bytes: 4 x 63-byte labels + root. */
        for (int l = 0; l < 4; l++) {
                w[l * 64] = 63;
                memset(w + l * 64 + 1, 'b', 63);
        }
        w[256] = 0;
        n = build(q, 5, 0, 1, w, 257, 1, 1);
        expect_formerr(q, n, 5, 0);
        /* 255 is fine (not ours: refused). */
        w[192] = 61;
        w[254] = 0;
        n = build(q, 5, 0, 1, w, 255, 1, 1);
        struct resp r = ask(q, n);
        check_header(&r, 5, QR | DNS_RCODE_REFUSED, 1, 0, 0, 0);

        /* Compression pointers: to itself (a loop), to the header, after a label. */
        n = build(q, 6, 0, 1, "\xc0\x0c", 2, 1, 1);
        expect_formerr(q, n, 6, 0);
        n = build(q, 6, 0, 1, "\xc0\x00", 2, 1, 1);
        expect_formerr(q, n, 6, 0);
        n = build(q, 6, 0, 1, "\4main\xc0\x0c", 7, 1, 1);
        expect_formerr(q, n, 6, 0);

        /* Additional section: record runs past the end; a second OPT; OPT with a name. */
        n = build_text(q, 7, 0, "main.dev.me.coder", DNS_TYPE_A);
        q[11] = 1;
        expect_formerr(q, n, 7, 0);
        q[11] = 0;
        add_opt(q, &n, 1232, 0);
        add_opt(q, &n, 1232, 0);
        expect_formerr(q, n, 7, 0);
        n = build_text(q, 7, 0, "main.dev.me.coder", DNS_TYPE_A);
        memcpy(q + n, "\1x\0\0\x29\x04\xd0\0\0\0\0\0\0", 13);
        q[11] = 1;
        expect_formerr(q, n + 13, 7, 0);
        /* OPT rdlen beyond the packet. */
        n = build_text(q, 8, 0, "main.dev.me.coder", DNS_TYPE_A);
        add_opt(q, &n, 1232, 0);
        q[n - 1] = 4;
        expect_formerr(q, n, 8, 0);
        /* An additional record whose name loops through a pointer is just skipped. */
        n = build_text(q, 9, 0, "main.dev.me.coder", DNS_TYPE_A);
        size_t at = n;
        q[n++] = 0xc0, q[n++] = (uint8_t) at; /* points at itself */
        memcpy(q + n, "\0\1\0\1\0\0\0\0\0\0", 10);
        n += 10;
        q[11] = 1;
        r = ask(q, n);
        check_header(&r, 9, QR | AA, 1, 1, 0, 0);
}

static void test_notimp(void **state) {
        uint8_t q[512];
        for (uint16_t op = 1; op < 16; op++) {
                size_t n = build_text(q, op, (uint16_t) (op << 11 | RD), "main.dev.me.coder", 1);
                struct resp r = ask(q, n);
                check_header(&r, op, (uint16_t) (QR | op << 11 | RD | DNS_RCODE_NOTIMP), 0, 0, 0, 0);
                assert_int_equal(r.len, 12);
        }
}

static void test_flags_exact(void **state) {
        uint8_t q[512];
        /* Query with TC, RA, Z, AD, CD and rcode bits set: only RD and CD survive. */
        size_t n = build_text(q, 0xa5a5, 0x03ff, "main.dev.me.coder", DNS_TYPE_A);
        struct resp r = ask(q, n);
        check_header(&r, 0xa5a5, QR | AA | RD | DNS_FLAG_CD, 1, 1, 0, 0);
        n = build_text(q, 0x5a5a, 0, "main.dev.me.coder", DNS_TYPE_A);
        r = ask(q, n);
        check_header(&r, 0x5a5a, QR | AA, 1, 1, 0, 0);
}

static void test_edns(void **state) {
        uint8_t q[512];
        size_t n = build_text(q, 20, RD, "main.dev.me.coder", DNS_TYPE_AAAA);
        size_t qend = n;
        add_opt(q, &n, 4096, 0);
        struct resp r = ask(q, n);
        check_header(&r, 20, QR | AA | RD, 1, 1, 0, 1);
        assert_int_equal(r.len, qend + 28 + 11);
        assert_memory_equal(r.b + qend + 28, "\0\0\x29\x04\xd0\0\0\0\0\0\0", 11);

        /* Version 1: BADVERS (extended rcode 1 in OPT, 0 in header). */
        n = qend;
        q[11] = 0;
        add_opt(q, &n, 1232, 1);
        r = ask(q, n);
        check_header(&r, 20, QR | RD, 1, 0, 0, 1);
        assert_memory_equal(r.b + qend, "\0\0\x29\x04\xd0\x01\0\0\0\0\0", 11);
}

static void test_truncation(void **state) {
        uint8_t q[512];
        /* 100 AAAA of 28 bytes: 512 holds (512 - 12 - 16) / 28 = 17. */
        size_t n = build_text(q, 30, RD, "many.coder", DNS_TYPE_AAAA);
        struct resp r = ask(q, n);
        check_header(&r, 30, QR | AA | TC | RD, 1, 17, 0, 0);
        assert_int_equal(r.len, n + 17 * 28);
        assert_true(r.len <= 512);

        /* With EDNS 1232: (1232 - 28 - 11) / 28 = 42. */
        add_opt(q, &n, 1232, 0);
        r = ask(q, n);
        check_header(&r, 30, QR | AA | TC | RD, 1, 42, 0, 1);
        assert_true(r.len <= 1232);
        /* EDNS size below 512 means 512: (512 - 28 - 11) / 28 = 16. */
        n = build_text(q, 31, RD, "many.coder", DNS_TYPE_AAAA);
        add_opt(q, &n, 100, 0);
        r = ask(q, n);
        check_header(&r, 31, QR | AA | TC | RD, 1, 16, 0, 1);
        assert_true(r.len <= 512);

        /* A tiny output buffer is never overrun. */
        uint8_t small[40];
        memset(small, 0, sizeof(small));
        n = build_text(q, 32, RD, "main.dev.me.coder", DNS_TYPE_AAAA);
        assert_int_equal(dns_respond(names, zones, q, n, small, sizeof(small)), n);
        assert_int_equal(g16(small + 2), QR | AA | TC | RD);
        assert_int_equal(g16(small + 6), 0);
        assert_int_equal(dns_respond(names, zones, q, n, small, 30), 12);
        assert_int_equal(g16(small + 2), QR | TC | RD | DNS_RCODE_SERVFAIL);
        assert_int_equal(dns_respond(names, zones, q, n, small, 11), 0);
}

static void test_names_table(void **state) {
        struct dns_address a1[] = { A4("10.0.0.1"), A4("10.0.0.1"), A6("::1") };
        struct dns_address a2[] = { A4("10.0.0.2"), A4("10.0.0.1") };
        struct dns_address bad = { .family = AF_UNIX };
        struct dns_entry e[] = { { "x.coder", a1, 3 }, { "X.CODER.", a2, 2 } };
        struct dns_names *t;
        uint8_t q[512];
        struct resp r;

        assert_int_equal(dns_names_new(e, 2, &t), 0);
        assert_int_equal(dns_names_count(t), 1);
        size_t n = build_text(q, 1, 0, "x.coder", DNS_TYPE_A);
        r.len = dns_respond(t, zones, q, n, r.b, 512);
        check_header(&r, 1, QR | AA, 1, 2, 0, 0); /* merged, deduplicated */
        dns_names_free(t);

        struct dns_entry badname[] = { { "a..coder", a1, 1 } };
        assert_int_equal(dns_names_new(badname, 1, &t), -EINVAL);
        struct dns_entry badfam[] = { { "a.coder", &bad, 1 } };
        assert_int_equal(dns_names_new(badfam, 1, &t), -EINVAL);
        const char *z[] = { "ok", "" };
        struct dns_zones *zz;
        assert_int_equal(dns_zones_new(z, 2, &zz), -EINVAL);
        assert_int_equal(dns_names_new(NULL, 0, &t), 0);
        assert_int_equal(dns_names_count(t), 0);
        dns_names_free(t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_name_from_text),
                cmocka_unit_test(test_aaaa_hit),
                cmocka_unit_test(test_a_hit_case_insensitive),
                cmocka_unit_test(test_any),
                cmocka_unit_test(test_nodata),
                cmocka_unit_test(test_nxdomain),
                cmocka_unit_test(test_refused),
                cmocka_unit_test(test_dropped),
                cmocka_unit_test(test_formerr),
                cmocka_unit_test(test_notimp),
                cmocka_unit_test(test_flags_exact),
                cmocka_unit_test(test_edns),
                cmocka_unit_test(test_truncation),
                cmocka_unit_test(test_names_table),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
