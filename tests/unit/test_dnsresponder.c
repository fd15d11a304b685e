/* SPDX-License-Identifier: MIT */
/* agent/dnsresponder: sockets on an sd-event loop, table swaps, bounded batches. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "dnsresponder.h"
#include "macro.h"
#include "unit-helpers.h"

static size_t mkquery(uint8_t *p, uint16_t id, const char *wire, size_t wl, uint16_t qtype) {
        memset(p, 0, 12);
        p[0] = (uint8_t) (id >> 8), p[1] = (uint8_t) id;
        p[2] = 0x01; /* RD */
        p[5] = 1;
        memcpy(p + 12, wire, wl);
        p[12 + wl] = 0, p[13 + wl] = (uint8_t) qtype, p[14 + wl] = 0, p[15 + wl] = 1;
        return 16 + wl;
}

/* Runs the loop until @fd is readable (or 2 s pass). */
static ssize_t pump_recv(sd_event *e, int fd, uint8_t *buf, size_t size) {
        for (int i = 0; i < 200; i++) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, 0) == 1)
                        return recv(fd, buf, size, 0);
                assert_true(sd_event_run(e, 10 * 1000) >= 0);
        }
        return -1;
}

static void test_serve_and_swap(void **state) {
        sd_event *e = NULL;
        struct dns_responder *r = NULL;
        struct sockaddr_storage addrs[2] = {};
        struct sockaddr_in *in = (struct sockaddr_in *) &addrs[0];
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &addrs[1];
        struct sockaddr_storage bound;
        struct dns_address a = { .family = AF_INET };
        const char *zones[] = { "coder" };
        uint8_t q[512], resp[2048];
        _cleanup_close_ int c = -1;

        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_loopback;
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(dns_responder_new(e, addrs, 2, &r), 0);
        assert_int_equal(dns_responder_n_sockets(r), 2);
        assert_int_equal(dns_responder_local_address(r, 0, &bound), 0);
        assert_int_equal(dns_responder_local_address(r, 2, &bound), -ENOENT);
        assert_int_equal(dns_responder_local_address(r, 0, &bound), 0);
        assert_int_not_equal(((struct sockaddr_in *) &bound)->sin_port, 0);

        c = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(c >= 0);
        assert_int_equal(connect(c, (struct sockaddr *) &bound, sizeof(struct sockaddr_in)), 0);

        /* Empty table, no zones: REFUSED. */
        size_t n = mkquery(q, 1, "\1x\5coder", 9, DNS_TYPE_A);
        assert_int_equal(send(c, q, n, 0), (ssize_t) n);
        assert_int_equal(pump_recv(e, c, resp, sizeof(resp)), (ssize_t) n);
        assert_int_equal(resp[3] & 0xf, DNS_RCODE_REFUSED);

        /* Zones: NXDOMAIN; then names: an answer. */
        assert_int_equal(dns_responder_set_zones(r, zones, 1), 0);
        assert_int_equal(send(c, q, n, 0), (ssize_t) n);
        assert_int_equal(pump_recv(e, c, resp, sizeof(resp)), (ssize_t) n);
        assert_int_equal(resp[3] & 0xf, DNS_RCODE_NXDOMAIN);

        inet_pton(AF_INET, "100.64.0.7", &a.in);
        struct dns_entry ent = { "X.coder.", &a, 1 };
        assert_int_equal(dns_responder_set_names(r, &ent, 1), 0);
        assert_int_equal(send(c, q, n, 0), (ssize_t) n);
        assert_int_equal(pump_recv(e, c, resp, sizeof(resp)), (ssize_t) n + 16);
        assert_memory_equal(resp + n + 12, "\x64\x40\x00\x07", 4);

        /* A bad table is refused and the old one stays. */
        struct dns_entry bad = { "a..coder", &a, 1 };
        assert_int_equal(dns_responder_set_names(r, &bad, 1), -EINVAL);
        const char *badz[] = { "" };
        assert_int_equal(dns_responder_set_zones(r, badz, 1), -EINVAL);
        assert_int_equal(send(c, q, n, 0), (ssize_t) n);
        assert_int_equal(pump_recv(e, c, resp, sizeof(resp)), (ssize_t) n + 16);

        /* Garbage and responses are dropped; 150 queries in a burst all get answers, in
         * batches of DNS_RESPONDER_BATCH per wake-up. */
        assert_int_equal(send(c, "\1\2\3", 3, 0), 3);
        q[2] |= 0x80;
        assert_int_equal(send(c, q, n, 0), (ssize_t) n);
        q[2] &= 0x7f;
        for (int i = 0; i < 150; i++) {
                q[0] = (uint8_t) i;
                assert_int_equal(send(c, q, n, 0), (ssize_t) n);
        }
        assert_true(sd_event_run(e, 100 * 1000) > 0);
        struct dns_responder_stats st;
        dns_responder_get_stats(r, &st);
        assert_int_equal(st.received, 4 + DNS_RESPONDER_BATCH); /* one batch per wake-up */
        for (int i = 0; i < 150; i++) {
                assert_int_equal(pump_recv(e, c, resp, sizeof(resp)), (ssize_t) n + 16);
                assert_int_equal(resp[0], i);
        }
        dns_responder_get_stats(r, &st);
        assert_int_equal(st.received, 4 + 2 + 150);
        assert_int_equal(st.dropped, 2);
        assert_int_equal(st.answered, 4 + 150);

        dns_responder_free(r);
        sd_event_unref(e);
}

static void test_bind_errors(void **state) {
        sd_event *e = NULL;
        struct dns_responder *r = NULL;
        struct sockaddr_storage a = {};

        assert_int_equal(sd_event_new(&e), 0);
        a.ss_family = AF_UNIX;
        assert_int_equal(dns_responder_new(e, &a, 1, &r), -EAFNOSUPPORT);
        assert_null(r);
        /* FREEBIND: an address that is on no link binds anyway. */
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &a;
        memset(&a, 0, sizeof(a));
        in6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, "fd60:627a:a42b::53", &in6->sin6_addr);
        assert_int_equal(dns_responder_new(e, &a, 1, &r), 0);
        r = dns_responder_free(r);
        sd_event_unref(e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_serve_and_swap),
                cmocka_unit_test(test_bind_errors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
