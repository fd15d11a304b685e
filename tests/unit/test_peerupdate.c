/* SPDX-License-Identifier: MIT */
/* What managers see of a standalone configuration, and the responder's name table. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "peerupdate.h"

static struct wg_allowedip ip4(const char *s, uint8_t cidr) {
        struct wg_allowedip a = { .family = AF_INET, .cidr = cidr };
        assert_int_equal(inet_pton(AF_INET, s, &a.ip4), 1);
        return a;
}

static struct wg_allowedip ip6(const char *s, uint8_t cidr) {
        struct wg_allowedip a = { .family = AF_INET6, .cidr = cidr };
        assert_int_equal(inet_pton(AF_INET6, s, &a.ip6), 1);
        return a;
}

static struct wg_allowedip ips_a[3], ips_b[1];
static char *names_a[] = { (char *) "dev.alice.me.coder", (char *) "alice.me.coder" };
static char *names_b[] = { (char *) "web.bob.me.coder" };
static struct config_peer peers[2];
static struct config cfg;

static int setup(void **state) {
        ips_a[0] = ip4("100.64.0.2", 32);
        ips_a[1] = ip4("10.0.0.0", 8);          /* a subnet: routed, not an address */
        ips_a[2] = ip6("fd7a:115c:a1e0::2", 128);
        ips_b[0] = ip4("100.64.0.3", 32);
        peers[0] = (struct config_peer) {
                .public_key = { 1 }, .allowed_ips = ips_a, .n_allowed_ips = 3, .names = names_a, .n_names = 2,
                .workspace = (char *) "alice", .agent = (char *) "dev",
                .workspace_id = (char *) "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        };
        peers[1] = (struct config_peer) {
                .public_key = { 2 }, .allowed_ips = ips_b, .n_allowed_ips = 1, .names = names_b, .n_names = 1,
                .workspace = (char *) "bob", .agent = (char *) "web",
        };
        cfg = (struct config) { .peers = peers, .n_peers = 2 };
        return 0;
}

static void test_upserts(void **state) {
        struct peerupdate_path paths[2] = {
                { .known = true, .direct = true, .derp_region = 1, .derp_latency_usec = 1500, .last_handshake_sec = 1700000000 },
                { .known = true, .direct = false, .derp_region = 900, .derp_latency_usec = 25000 },
        };
        Vpn__PeerUpdate u = VPN__PEER_UPDATE__INIT;

        assert_int_equal(peerupdate_build(&cfg, paths, NULL, &u), 0);
        assert_int_equal(u.n_upserted_workspaces, 2);
        assert_int_equal(u.n_upserted_agents, 2);
        assert_int_equal(u.n_deleted_agents, 0);
        static const uint8_t want_ws[16] = { 0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78,
                                             0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0 };
        assert_int_equal(u.upserted_workspaces[0]->id.len, 16);
        assert_memory_equal(u.upserted_workspaces[0]->id.data, want_ws, 16);
        assert_string_equal(u.upserted_workspaces[0]->name, "alice");
        assert_int_equal(u.upserted_workspaces[0]->status, VPN__WORKSPACE__STATUS__RUNNING);

        Vpn__Agent *a = u.upserted_agents[0];
        assert_string_equal(a->name, "dev");
        assert_memory_equal(a->workspace_id.data, want_ws, 16);
        assert_int_equal(a->n_fqdn, 2);
        assert_string_equal(a->fqdn[1], "alice.me.coder");
        assert_int_equal(a->n_ip_addrs, 2);
        assert_string_equal(a->ip_addrs[0], "100.64.0.2");
        assert_string_equal(a->ip_addrs[1], "fd7a:115c:a1e0::2");
        assert_int_equal(a->last_handshake->seconds, 1700000000);
        assert_true(a->last_ping->did_p2p);
        assert_null(a->last_ping->latency);            /* direct: not measured */
        assert_int_equal(a->last_ping->preferred_derp_latency->nanos, 1500000);

        Vpn__Agent *b = u.upserted_agents[1];
        assert_null(b->last_handshake);
        assert_false(b->last_ping->did_p2p);
        assert_string_equal(b->last_ping->preferred_derp, "900");
        assert_int_equal(b->last_ping->latency->nanos, 25000000);
        /* Without WorkspaceID/AgentID: stable derived IDs, different per peer. */
        Vpn__PeerUpdate again = VPN__PEER_UPDATE__INIT;
        assert_int_equal(peerupdate_build(&cfg, paths, NULL, &again), 0);
        assert_memory_equal(again.upserted_agents[1]->id.data, b->id.data, 16);
        assert_memory_not_equal(a->id.data, b->id.data, 16);
        peerupdate_free_contents(&again);
        peerupdate_free_contents(&u);
        assert_int_equal(u.n_upserted_agents, 0);
}

static void test_deletions(void **state) {
        struct config now = { .peers = peers, .n_peers = 1 };
        struct peerupdate_path paths[1] = {};
        Vpn__PeerUpdate u = VPN__PEER_UPDATE__INIT;

        assert_int_equal(peerupdate_build(&now, paths, &cfg, &u), 0);
        assert_int_equal(u.n_upserted_agents, 1);
        assert_null(u.upserted_agents[0]->last_ping);   /* nothing measured yet */
        assert_int_equal(u.n_deleted_agents, 1);
        assert_string_equal(u.deleted_agents[0]->name, "web");
        assert_int_equal(u.n_deleted_workspaces, 1);
        assert_string_equal(u.deleted_workspaces[0]->name, "bob");
        peerupdate_free_contents(&u);
}

static void test_names(void **state) {
        struct peerupdate_names n;

        assert_int_equal(peerupdate_names(&cfg, &n), 0);
        assert_int_equal(n.n_entries, 3);
        assert_string_equal(n.entries[0].fqdn, "dev.alice.me.coder");
        assert_int_equal(n.entries[0].n_addresses, 2);      /* the /8 is not an address */
        assert_int_equal(n.entries[1].n_addresses, 2);
        assert_int_equal(n.entries[2].n_addresses, 1);
        assert_int_equal(n.entries[2].addresses[0].family, AF_INET);
        char buf[INET6_ADDRSTRLEN];
        assert_non_null(inet_ntop(AF_INET, &n.entries[2].addresses[0].in, buf, sizeof(buf)));
        assert_string_equal(buf, "100.64.0.3");
        peerupdate_names_freep(&n);
        assert_null(n.entries);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_upserts, setup),
                cmocka_unit_test_setup(test_deletions, setup),
                cmocka_unit_test_setup(test_names, setup),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
