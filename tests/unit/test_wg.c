/* SPDX-License-Identifier: MIT */
/* netlink/wg.c: wg_diff, wg_sync over a mock backend, and the key/address parsers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>
#include <sodium.h>

#include "wg-backend.h"

/* ---- Building devices ---------------------------------------------------------------- */

static void key_of(uint8_t key[static WG_KEY_LEN], uint8_t seed) {
        memset(key, seed, WG_KEY_LEN);
}

static struct wg_allowedip ip(const char *s) {
        struct wg_allowedip a;
        assert_int_equal(wg_allowedip_parse(&a, s), 0);
        return a;
}

static union wg_endpoint ep(const char *s) {
        union wg_endpoint e;
        assert_int_equal(wg_endpoint_parse(&e, s), 0);
        return e;
}

#define MAX_PEERS 8
#define MAX_IPS 4

struct dev {
        struct wg_device d;
        struct wg_peer peers[MAX_PEERS];
        struct wg_allowedip ips[MAX_PEERS][MAX_IPS];
};

static void dev_init(struct dev *v) {
        memset(v, 0, sizeof(*v));
        v->d.peers = v->peers;
}

/* Adds a peer keyed by @seed with up to MAX_IPS allowed IPs (NULL-terminated). */
static struct wg_peer *dev_peer(struct dev *v, uint8_t seed, const char *endpoint, ...) {
        assert_true(v->d.n_peers < MAX_PEERS);
        size_t i = v->d.n_peers++;
        struct wg_peer *p = &v->peers[i];
        va_list ap;

        memset(p, 0, sizeof(*p));
        key_of(p->public_key, seed);
        if (endpoint)
                p->endpoint = ep(endpoint);
        p->allowedips = v->ips[i];
        va_start(ap, endpoint);
        for (const char *s; (s = va_arg(ap, const char *));) {
                assert_true(p->n_allowedips < MAX_IPS);
                p->allowedips[p->n_allowedips++] = ip(s);
        }
        va_end(ap);
        return p;
}

static const struct wg_peer *find(const struct wg_device *d, uint8_t seed, size_t nth) {
        uint8_t k[WG_KEY_LEN];
        key_of(k, seed);
        for (size_t i = 0; i < d->n_peers; i++)
                if (memcmp(d->peers[i].public_key, k, WG_KEY_LEN) == 0 && nth-- == 0)
                        return &d->peers[i];
        return NULL;
}

/* ---- wg_diff ------------------------------------------------------------------------- */

static void test_diff_add(void **state) {
        struct dev cur, want;
        struct wg_device out;

        dev_init(&cur);
        dev_init(&want);
        struct wg_peer *p = dev_peer(&want, 1, "192.0.2.1:51820", "10.0.0.0/24", "fd00::/64", NULL);
        p->flags = WG_PEER_HAS_KEEPALIVE | WG_PEER_HAS_PRESHARED_KEY;
        p->persistent_keepalive = 25;
        key_of(p->preshared_key, 0xaa);

        assert_int_equal(wg_diff(&cur.d, &want.d, &out), 0);
        assert_int_equal(out.flags, 0);
        assert_int_equal(out.n_peers, 1);
        const struct wg_peer *o = &out.peers[0];
        assert_memory_equal(o->public_key, p->public_key, WG_KEY_LEN);
        /* A new peer: no UPDATE_ONLY, its allowed IPs replace (none), keepalive and PSK set. */
        assert_int_equal(o->flags, WG_PEER_REPLACE_ALLOWEDIPS | WG_PEER_HAS_KEEPALIVE | WG_PEER_HAS_PRESHARED_KEY);
        assert_int_equal(o->n_allowedips, 2);
        assert_int_equal(o->persistent_keepalive, 25);
        assert_memory_equal(o->preshared_key, p->preshared_key, WG_KEY_LEN);
        assert_int_equal(o->endpoint.sa.sa_family, AF_INET);
        wg_device_free_shallow(&out);
}

static void test_diff_remove(void **state) {
        struct dev cur, want;
        struct wg_device out;

        dev_init(&cur);
        dev_init(&want);
        dev_peer(&cur, 1, NULL, "10.0.0.1/32", NULL);
        dev_peer(&cur, 2, NULL, "10.0.0.2/32", NULL);
        dev_peer(&want, 2, NULL, "10.0.0.2/32", NULL);

        assert_int_equal(wg_diff(&cur.d, &want.d, &out), 0);
        assert_int_equal(out.n_peers, 1);
        assert_non_null(find(&out, 1, 0));
        assert_int_equal(out.peers[0].flags, WG_PEER_REMOVE);
        assert_int_equal(out.peers[0].n_allowedips, 0);
        wg_device_free_shallow(&out);
}

static void test_diff_unchanged(void **state) {
        struct dev cur, want;
        struct wg_device out;

        dev_init(&cur);
        dev_init(&want);
        cur.d.flags = WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_HAS_FWMARK;
        key_of(cur.d.private_key, 9);
        cur.d.listen_port = 51820;
        cur.d.fwmark = 0;
        /* As read back: keepalive always reported, host bits masked, another order. */
        struct wg_peer *c = dev_peer(&cur, 3, "192.0.2.3:1", "10.1.0.0/16", "fd00::/64", NULL);
        c->flags = WG_PEER_HAS_KEEPALIVE;
        dev_peer(&cur, 1, "[2001:db8::1]:51820", NULL);
        cur.peers[1].flags = WG_PEER_HAS_KEEPALIVE;

        want.d.flags = WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT;
        key_of(want.d.private_key, 9);
        want.d.listen_port = 51820;
        dev_peer(&want, 1, "[2001:db8::1]:51820", NULL);
        dev_peer(&want, 3, "192.0.2.3:1", "fd00::1/64", "10.1.2.3/16", NULL);

        assert_int_equal(wg_diff(&cur.d, &want.d, &out), 0);
        assert_int_equal(out.flags, 0);
        assert_int_equal(out.n_peers, 0);
        wg_device_free_shallow(&out);

        /* A random listen port (0) in the desired state is no change either. */
        want.d.listen_port = 0;
        assert_int_equal(wg_diff(&cur.d, &want.d, &out), 0);
        assert_int_equal(out.flags, 0);
        assert_int_equal(out.n_peers, 0);
        wg_device_free_shallow(&out);
}

static void test_diff_update(void **state) {
        struct dev cur, want;
        struct wg_device out;

        dev_init(&cur);
        dev_init(&want);
        dev_peer(&cur, 1, "192.0.2.1:1", "10.0.0.1/32", NULL);
        dev_peer(&cur, 2, "192.0.2.2:1", "10.0.0.2/32", NULL);
        dev_peer(&cur, 3, "192.0.2.3:1", "10.0.0.3/32", NULL);
        dev_peer(&cur, 4, "192.0.2.4:1", "10.0.0.4/32", NULL);
        for (size_t i = 0; i < cur.d.n_peers; i++)
                cur.peers[i].flags = WG_PEER_HAS_KEEPALIVE;

        dev_peer(&want, 1, "192.0.2.1:1", "10.0.0.1/32", "10.9.0.0/16", NULL);   /* allowed IPs */
        dev_peer(&want, 2, "192.0.2.22:2", "10.0.0.2/32", NULL);                 /* endpoint */
        struct wg_peer *k = dev_peer(&want, 3, "192.0.2.3:1", "10.0.0.3/32", NULL); /* keepalive */
        k->flags = WG_PEER_HAS_KEEPALIVE;
        k->persistent_keepalive = 15;
        struct wg_peer *s = dev_peer(&want, 4, "192.0.2.4:1", "10.0.0.4/32", NULL); /* PSK */
        s->flags = WG_PEER_HAS_PRESHARED_KEY;
        key_of(s->preshared_key, 0x55);
        want.d.flags = WG_DEVICE_HAS_FWMARK | WG_DEVICE_HAS_PRIVATE_KEY;
        want.d.fwmark = 0x1bd00;
        key_of(want.d.private_key, 7);

        assert_int_equal(wg_diff(&cur.d, &want.d, &out), 0);
        assert_int_equal(out.flags, WG_DEVICE_HAS_FWMARK | WG_DEVICE_HAS_PRIVATE_KEY);
        assert_int_equal(out.fwmark, 0x1bd00);
        assert_memory_equal(out.private_key, want.d.private_key, WG_KEY_LEN);
        assert_int_equal(out.n_peers, 4);

        const struct wg_peer *o = find(&out, 1, 0);
        assert_non_null(o);
        assert_int_equal(o->flags, WG_PEER_UPDATE_ONLY | WG_PEER_REPLACE_ALLOWEDIPS);
        assert_int_equal(o->n_allowedips, 2);
        assert_int_equal(o->endpoint.sa.sa_family, 0);   /* unchanged: not sent */

        o = find(&out, 2, 0);
        assert_non_null(o);
        assert_int_equal(o->flags, WG_PEER_UPDATE_ONLY);
        assert_int_equal(o->endpoint.sa.sa_family, AF_INET);
        assert_int_equal(ntohs(o->endpoint.in.sin_port), 2);
        assert_int_equal(o->n_allowedips, 0);

        o = find(&out, 3, 0);
        assert_non_null(o);
        assert_int_equal(o->flags, WG_PEER_UPDATE_ONLY | WG_PEER_HAS_KEEPALIVE);
        assert_int_equal(o->persistent_keepalive, 15);

        o = find(&out, 4, 0);
        assert_non_null(o);
        assert_int_equal(o->flags, WG_PEER_UPDATE_ONLY | WG_PEER_HAS_PRESHARED_KEY);
        assert_memory_equal(o->preshared_key, s->preshared_key, WG_KEY_LEN);
        wg_device_free_shallow(&out);
}

static void test_diff_no_endpoint_keeps_the_learnt_one(void **state) {
        struct dev cur, want;
        struct wg_device out;

        dev_init(&cur);
        dev_init(&want);
        dev_peer(&cur, 1, "192.0.2.1:51820", "10.0.0.1/32", NULL);
        struct wg_peer *p = dev_peer(&want, 1, NULL, "10.0.0.1/32", NULL);
        p->flags = WG_PEER_HAS_KEEPALIVE;
        p->persistent_keepalive = 5;

        /* No desired endpoint keeps the learnt one: only the keepalive changes. */
        assert_int_equal(wg_diff(&cur.d, &want.d, &out), 0);
        assert_int_equal(out.n_peers, 1);
        assert_memory_equal(out.peers[0].public_key, p->public_key, WG_KEY_LEN);
        assert_int_equal(out.peers[0].flags, WG_PEER_UPDATE_ONLY | WG_PEER_HAS_KEEPALIVE);
        assert_int_equal(out.peers[0].endpoint.sa.sa_family, 0);
        assert_int_equal(out.peers[0].n_allowedips, 0);
        wg_device_free_shallow(&out);

        /* And without the keepalive change, nothing at all. */
        p->flags = 0;
        assert_int_equal(wg_diff(&cur.d, &want.d, &out), 0);
        assert_int_equal(out.n_peers, 0);
        wg_device_free_shallow(&out);
}

static void test_diff_many(void **state) {
        /* Interleaved adds, removes and keeps, in unsorted input order. */
        struct dev cur, want;
        struct wg_device out;

        dev_init(&cur);
        dev_init(&want);
        dev_peer(&cur, 5, NULL, NULL);
        dev_peer(&cur, 1, NULL, NULL);
        dev_peer(&cur, 3, NULL, NULL);
        dev_peer(&want, 4, NULL, NULL);
        dev_peer(&want, 3, NULL, NULL);
        dev_peer(&want, 2, NULL, NULL);

        assert_int_equal(wg_diff(&cur.d, &want.d, &out), 0);
        assert_int_equal(out.n_peers, 4);
        assert_int_equal(find(&out, 1, 0)->flags, WG_PEER_REMOVE);
        assert_int_equal(find(&out, 5, 0)->flags, WG_PEER_REMOVE);
        assert_int_equal(find(&out, 2, 0)->flags, WG_PEER_REPLACE_ALLOWEDIPS);
        assert_int_equal(find(&out, 4, 0)->flags, WG_PEER_REPLACE_ALLOWEDIPS);
        assert_null(find(&out, 3, 0));
        wg_device_free_shallow(&out);
}

/* ---- wg_sync over a mock backend ----------------------------------------------------- */

static struct {
        struct dev current;
        unsigned gets, sets;
        struct wg_device last_set;   /* shallow copy of the header */
        size_t last_set_peers;
} mock;

static int mock_get(struct wg *w, struct wg_device **ret) {
        struct wg_device *d = calloc(1, sizeof(*d));
        assert_non_null(d);
        *d = mock.current.d;
        d->peers = calloc(d->n_peers + 1, sizeof(*d->peers));
        assert_non_null(d->peers);
        for (size_t i = 0; i < d->n_peers; i++) {
                d->peers[i] = mock.current.peers[i];
                d->peers[i].allowedips = calloc(d->peers[i].n_allowedips + 1, sizeof(struct wg_allowedip));
                memcpy(d->peers[i].allowedips, mock.current.peers[i].allowedips,
                       d->peers[i].n_allowedips * sizeof(struct wg_allowedip));
        }
        mock.gets++;
        *ret = d;
        return 0;
}

static int mock_set(struct wg *w, const struct wg_device *dev, struct wg_stats *stats) {
        mock.sets++;
        mock.last_set = *dev;
        mock.last_set_peers = dev->n_peers;
        stats->messages = 1;
        stats->peers = dev->n_peers;
        return 0;
}

static const struct wg_backend mock_backend = { .get = mock_get, .set = mock_set };

static void test_sync(void **state) {
        struct wg w = { .ifname = "wgmock", .mode = WG_MODE_USERSPACE, .backend = &mock_backend };
        struct wg_stats stats = { 99, 99 };
        struct dev want;

        memset(&mock, 0, sizeof(mock));
        dev_init(&mock.current);
        dev_peer(&mock.current, 1, "192.0.2.1:1", "10.0.0.1/32", NULL);
        dev_peer(&mock.current, 2, "192.0.2.2:1", "10.0.0.2/32", NULL);
        dev_init(&want);
        dev_peer(&want, 1, "192.0.2.1:1", "10.0.0.1/32", NULL);
        dev_peer(&want, 2, "192.0.2.2:1", "10.0.0.2/32", NULL);

        /* Nothing differs: nothing is sent, and the stats say so. */
        assert_int_equal(wg_sync(&w, NULL, &want.d, &stats), 0);
        assert_int_equal(mock.gets, 1);
        assert_int_equal(mock.sets, 0);
        assert_int_equal(stats.messages, 0);
        assert_int_equal(stats.peers, 0);

        /* One peer's allowed IPs: one peer sent. */
        want.ips[1][0] = ip("10.0.0.22/32");
        assert_int_equal(wg_sync(&w, NULL, &want.d, &stats), 0);
        assert_int_equal(mock.gets, 2);
        assert_int_equal(mock.sets, 1);
        assert_int_equal(stats.messages, 1);
        assert_int_equal(stats.peers, 1);
        assert_int_equal(mock.last_set.flags, 0);

        /* With a known current state, no read. */
        assert_int_equal(wg_sync(&w, &mock.current.d, &want.d, &stats), 0);
        assert_int_equal(mock.gets, 2);
        assert_int_equal(mock.sets, 2);
}

/* ---- Keys ---------------------------------------------------------------------------- */

static void test_keys(void **state) {
        /* RFC 7748 section 6.1, Alice. */
        static const uint8_t priv[WG_KEY_LEN] = {
                0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d, 0x3c, 0x16, 0xc1, 0x72, 0x51, 0xb2, 0x66, 0x45,
                0xdf, 0x4c, 0x2f, 0x87, 0xeb, 0xc0, 0x99, 0x2a, 0xb1, 0x77, 0xfb, 0xa5, 0x1d, 0xb9, 0x2c, 0x2a,
        };
        static const uint8_t pub[WG_KEY_LEN] = {
                0x85, 0x20, 0xf0, 0x09, 0x89, 0x30, 0xa7, 0x54, 0x74, 0x8b, 0x7d, 0xdc, 0xb4, 0x3e, 0xf7, 0x5a,
                0x0d, 0xbf, 0x3a, 0x0d, 0x26, 0x38, 0x1a, 0xf4, 0xeb, 0xa4, 0xa9, 0x8e, 0xaa, 0x9b, 0x4e, 0x6a,
        };
        uint8_t k[WG_KEY_LEN], p[WG_KEY_LEN];
        char b64[45];

        wg_key_public_from_private(p, priv);
        assert_memory_equal(p, pub, WG_KEY_LEN);

        wg_key_to_base64(b64, pub);
        assert_string_equal(b64, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=");
        assert_int_equal(wg_key_from_base64(k, b64), 0);
        assert_memory_equal(k, pub, WG_KEY_LEN);

        assert_int_equal(wg_key_from_base64(k, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo"), -EINVAL);
        assert_int_equal(wg_key_from_base64(k, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTm=="), -EINVAL);
        assert_int_equal(wg_key_from_base64(k, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066Spjqqb*mo="), -EINVAL);
        assert_int_equal(wg_key_from_base64(k, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo= "), -EINVAL);
        assert_int_equal(wg_key_from_base64(k, ""), -EINVAL);
        assert_int_equal(wg_key_from_base64(k, NULL), -EINVAL);

        for (int i = 0; i < 32; i++) {
                wg_key_generate_private(k);
                assert_int_equal(k[0] & 7, 0);
                assert_int_equal(k[31] & 0xc0, 0x40);
                assert_false(wg_key_is_zero(k));
        }
        memset(k, 0, sizeof(k));
        assert_true(wg_key_is_zero(k));
}

/* ---- Allowed IPs and endpoints ------------------------------------------------------- */

static void assert_allowedip(const char *s, int family, const char *addr, unsigned cidr) {
        struct wg_allowedip a;
        char buf[INET6_ADDRSTRLEN];

        assert_int_equal(wg_allowedip_parse(&a, s), 0);
        assert_int_equal(a.family, family);
        assert_int_equal(a.cidr, cidr);
        assert_non_null(inet_ntop(family, &a.ip6, buf, sizeof(buf)));
        assert_string_equal(buf, addr);
}

static void test_allowedip_parse(void **state) {
        struct wg_allowedip a;

        assert_allowedip("10.0.0.0/8", AF_INET, "10.0.0.0", 8);
        assert_allowedip("0.0.0.0/0", AF_INET, "0.0.0.0", 0);
        assert_allowedip("1.2.3.4", AF_INET, "1.2.3.4", 32);
        assert_allowedip("fd00::/64", AF_INET6, "fd00::", 64);
        assert_allowedip("::/0", AF_INET6, "::", 0);
        assert_allowedip("::1", AF_INET6, "::1", 128);
        assert_allowedip("10.1.2.3/16", AF_INET, "10.1.2.3", 16);   /* host bits are kept */

        static const char *const bad[] = {
                "", "/8", "10.0.0.0/", "10.0.0.0/33", "fd00::/129", "10.0.0.0/x", "10.0.0.0/8x",
                "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0/8", "host/8", "10.0.0.0 /8", "fd00::/64/1",
                "10.0.0.0/99999999999999999999",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/64",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (wg_allowedip_parse(&a, bad[i]) != -EINVAL)
                        fail_msg("accepted \"%s\"", bad[i]);
        }
}

static void test_endpoint_parse(void **state) {
        union wg_endpoint e;
        char buf[INET6_ADDRSTRLEN];

        assert_int_equal(wg_endpoint_parse(&e, "192.0.2.1:51820"), 0);
        assert_int_equal(e.sa.sa_family, AF_INET);
        assert_int_equal(ntohs(e.in.sin_port), 51820);
        assert_string_equal(inet_ntop(AF_INET, &e.in.sin_addr, buf, sizeof(buf)), "192.0.2.1");

        assert_int_equal(wg_endpoint_parse(&e, "[2001:db8::1]:1"), 0);
        assert_int_equal(e.sa.sa_family, AF_INET6);
        assert_int_equal(ntohs(e.in6.sin6_port), 1);
        assert_string_equal(inet_ntop(AF_INET6, &e.in6.sin6_addr, buf, sizeof(buf)), "2001:db8::1");

        assert_int_equal(wg_endpoint_parse(&e, "1.2.3.4:65535"), 0);

        static const char *const bad[] = {
                "", "1.2.3.4", "1.2.3.4:", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:12x", "1.2.3.4:-1",
                "2001:db8::1:51820", "[2001:db8::1]51820", "[2001:db8::1]:", "[2001:db8::1", "host:1",
                "[]:1", ":1", "1.2.3:1", "[fe80::1%eth0]:1",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (wg_endpoint_parse(&e, bad[i]) != -EINVAL)
                        fail_msg("accepted \"%s\"", bad[i]);
        }
}

static void test_open(void **state) {
        struct wg *w = NULL;

        assert_int_equal(wg_open(&w, "", WG_MODE_USERSPACE), -EINVAL);
        assert_int_equal(wg_open(&w, "a/b", WG_MODE_USERSPACE), -EINVAL);
        assert_int_equal(wg_open(&w, "abcdefghijklmnop", WG_MODE_USERSPACE), -EINVAL);
        assert_int_equal(wg_open(&w, "wgunit0", WG_MODE_USERSPACE), 0);
        assert_int_equal(wg_get_mode(w), WG_MODE_USERSPACE);
        assert_string_equal(wg_ifname(w), "wgunit0");
        assert_string_equal(wg_mode_name(wg_get_mode(w)), "userspace");
        wg_free(w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_diff_add),
                cmocka_unit_test(test_diff_remove),
                cmocka_unit_test(test_diff_unchanged),
                cmocka_unit_test(test_diff_update),
                cmocka_unit_test(test_diff_no_endpoint_keeps_the_learnt_one),
                cmocka_unit_test(test_diff_many),
                cmocka_unit_test(test_sync),
                cmocka_unit_test(test_keys),
                cmocka_unit_test(test_allowedip_parse),
                cmocka_unit_test(test_endpoint_parse),
                cmocka_unit_test(test_open),
        };
        if (sodium_init() < 0)
                return 1;
        return cmocka_run_group_tests(tests, NULL, NULL);
}
