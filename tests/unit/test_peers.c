/* SPDX-License-Identifier: MIT */
/* The peers table and JSON that codervpnctl prints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "peers.h"

#define NOW 1800000000

struct sample {
        Vpn__PeerUpdate u;
        Vpn__Workspace ws, *ws_ptrs[1];
        Vpn__Agent a[2], *a_ptrs[2];
        Google__Protobuf__Timestamp hs[2];
        Vpn__LastPing ping;
        Google__Protobuf__Duration latency;
        char *fqdn[2], *ips[1];
        uint8_t ws_id[16], agent_id[16];
};

static void make_sample(struct sample *s) {
        memset(s, 0, sizeof(*s));
        for (int i = 0; i < 16; i++) {
                s->ws_id[i] = (uint8_t) i;
                s->agent_id[i] = (uint8_t) (0xf0 + i);
        }
        vpn__peer_update__init(&s->u);
        vpn__workspace__init(&s->ws);
        s->ws.id = (ProtobufCBinaryData) { 16, s->ws_id };
        s->ws.name = (char *) "dev";
        s->ws.status = VPN__WORKSPACE__STATUS__RUNNING;
        s->ws_ptrs[0] = &s->ws;
        s->u.n_upserted_workspaces = 1;
        s->u.upserted_workspaces = s->ws_ptrs;

        for (int i = 0; i < 2; i++) {
                vpn__agent__init(&s->a[i]);
                google__protobuf__timestamp__init(&s->hs[i]);
                s->a[i].workspace_id = (ProtobufCBinaryData) { 16, s->ws_id };
                s->a[i].last_handshake = &s->hs[i];
                s->a_ptrs[i] = &s->a[i];
        }
        s->a[0].id = (ProtobufCBinaryData) { 16, s->agent_id };
        s->a[0].name = (char *) "main";
        s->fqdn[0] = (char *) "main.dev.me.coder.";
        s->fqdn[1] = (char *) "dev.coder.";
        s->a[0].n_fqdn = 2;
        s->a[0].fqdn = s->fqdn;
        s->ips[0] = (char *) "fd60:627a:a42b:1::2";
        s->a[0].n_ip_addrs = 1;
        s->a[0].ip_addrs = s->ips;
        s->hs[0].seconds = NOW - 30;
        vpn__last_ping__init(&s->ping);
        google__protobuf__duration__init(&s->latency);
        s->latency.nanos = 12500000;
        s->ping.latency = &s->latency;
        s->ping.did_p2p = false;
        s->ping.preferred_derp = (char *) "Frankfurt";
        s->a[0].last_ping = &s->ping;

        s->a[1].name = (char *) "gpu";
        s->hs[1].seconds = -62135596800LL;   /* Go's zero time: no handshake yet */
        s->u.n_upserted_agents = 2;
        s->u.upserted_agents = s->a_ptrs;
}

static char *table_of(const Vpn__PeerUpdate *u) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        assert_non_null(f);
        peers_print_table(f, u, NOW);
        fclose(f);
        return buf;
}

static void test_age(void **state) {
        Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
        char buf[32];

        peers_format_age(NULL, NOW, buf, sizeof(buf));
        assert_string_equal(buf, "never");
        ts.seconds = -62135596800LL;
        peers_format_age(&ts, NOW, buf, sizeof(buf));
        assert_string_equal(buf, "never");
        ts.seconds = NOW - 5;
        peers_format_age(&ts, NOW, buf, sizeof(buf));
        assert_string_equal(buf, "5s ago");
        ts.seconds = NOW - 600;
        peers_format_age(&ts, NOW, buf, sizeof(buf));
        assert_string_equal(buf, "10m ago");
        ts.seconds = NOW - 3 * 3600;
        peers_format_age(&ts, NOW, buf, sizeof(buf));
        assert_string_equal(buf, "3h ago");
}

static void test_table(void **state) {
        struct sample s;
        make_sample(&s);
        char *t = table_of(&s.u);

        char *line1 = strchr(t, '\n') + 1;
        assert_true(strncmp(t, "WORKSPACE", 9) == 0);
        /* One row per agent, then its names. */
        assert_non_null(strstr(line1, "dev"));
        assert_true(strncmp(line1, "dev ", 4) == 0);
        assert_non_null(strstr(line1, " main "));
        assert_non_null(strstr(line1, " healthy "));
        assert_non_null(strstr(line1, " fd60:627a:a42b:1::2 "));
        assert_non_null(strstr(line1, " 30s ago "));
        assert_non_null(strstr(line1, " 12.5ms "));
        assert_non_null(strstr(line1, "DERP Frankfurt\n"));
        assert_non_null(strstr(t, "\n    main.dev.me.coder.\n    dev.coder.\n"));
        char *gpu = strstr(t, " gpu ");
        assert_non_null(gpu);
        assert_non_null(strstr(gpu, " connecting "));
        assert_non_null(strstr(gpu, " never "));
        free(t);

        s.ping.did_p2p = true;
        s.hs[0].seconds = NOW - 301;
        t = table_of(&s.u);
        assert_non_null(strstr(t, " unhealthy "));
        assert_non_null(strstr(t, " direct\n"));
        free(t);

        Vpn__PeerUpdate empty = VPN__PEER_UPDATE__INIT;
        t = table_of(&empty);
        assert_string_equal(t, "No agents (0 workspaces).\n");
        free(t);
}

static void test_json(void **state) {
        struct sample s;
        make_sample(&s);
        json_object *o = peers_to_json(&s.u);
        const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

        assert_non_null(strstr(text, "\"workspaces\":[{\"id\":\"00010203-0405-0607-0809-0a0b0c0d0e0f\","
                                     "\"name\":\"dev\",\"status\":\"RUNNING\"}]"));
        assert_non_null(strstr(text, "\"id\":\"f0f1f2f3-f4f5-f6f7-f8f9-fafbfcfdfeff\",\"name\":\"main\""));
        assert_non_null(strstr(text, "\"fqdn\":[\"main.dev.me.coder.\",\"dev.coder.\"]"));
        assert_non_null(strstr(text, "\"last_handshake_unix\":1799999970"));
        assert_non_null(strstr(text, "\"last_ping\":{\"latency_ms\":12.5,\"did_p2p\":false,\"preferred_derp\":\"Frankfurt\"}"));
        /* No handshake yet is null, not Go's year-1 timestamp. */
        assert_non_null(strstr(text, "\"name\":\"gpu\""));
        assert_non_null(strstr(text, "\"last_handshake_unix\":null"));
        assert_null(strstr(text, "deleted_"));
        json_object_put(o);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_age),
                cmocka_unit_test(test_table),
                cmocka_unit_test(test_json),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
