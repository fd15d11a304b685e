/* SPDX-License-Identifier: MIT */
/*
 * agent/derpclient without a network: choosing the home region, maps without a usable
 * region, sends before anything is connected, replacing the map. The event loop never
 * runs, so nothing connects.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "derpclient.h"
#include "log.h"

#define NODE(r, extra)                                                                      \
        "{\"Name\":\"" #r "a\",\"RegionID\":" #r ",\"HostName\":\"localhost\","              \
        "\"IPv4\":\"127.0.0.1\",\"DERPPort\":1,\"ForceHTTP\":true" extra "}"
#define REGION(r, nodes) "\"" #r "\":{\"RegionID\":" #r ",\"Nodes\":[" nodes "]}"

static int home_of(const char *json, int configured, int *home) {
        struct derp_map *m = NULL;
        struct derp_client *c = NULL;
        sd_event *e = NULL;
        char err[DERP_MAP_ERROR_MAX];
        struct derp_client_config cfg = { .home_region = configured };
        int r;

        memset(cfg.priv, 0x11, sizeof(cfg.priv));
        assert_int_equal(derp_map_parse(json, strlen(json), &m, err, sizeof(err)), 0);
        assert_int_equal(sd_event_new(&e), 0);
        r = derp_client_new(e, &cfg, m, NULL, NULL, &c);
        derp_map_free(m);
        if (r == 0) {
                *home = derp_client_home_region(c);
                derp_client_free(c);
        }
        sd_event_unref(e);
        return r;
}

static void test_home_choice(void **state) {
        int home;

        /* No scores: the lowest RegionID. */
        assert_int_equal(home_of("{\"Regions\":{" REGION(5, NODE(5, "")) "," REGION(3, NODE(3, ""))
                                 "}}", 0, &home), 0);
        assert_int_equal(home, 3);
        /* The lowest score wins (it scales latency); absent counts as 1.0. */
        assert_int_equal(home_of("{\"Regions\":{" REGION(5, NODE(5, "")) "," REGION(3, NODE(3, ""))
                                 "},\"HomeParams\":{\"RegionScore\":{\"5\":0.5}}}", 0, &home), 0);
        assert_int_equal(home, 5);
        assert_int_equal(home_of("{\"Regions\":{" REGION(5, NODE(5, "")) "," REGION(3, NODE(3, ""))
                                 "},\"HomeParams\":{\"RegionScore\":{\"5\":1.5}}}", 0, &home), 0);
        assert_int_equal(home, 3);
        /* The configured region, when the map has it. */
        assert_int_equal(home_of("{\"Regions\":{" REGION(5, NODE(5, "")) "," REGION(3, NODE(3, ""))
                                 "}}", 5, &home), 0);
        assert_int_equal(home, 5);
        assert_int_equal(home_of("{\"Regions\":{" REGION(5, NODE(5, "")) "," REGION(3, NODE(3, ""))
                                 "}}", 9, &home), 0);
        assert_int_equal(home, 3);
        /* Avoid: only when there is nothing else. */
        assert_int_equal(home_of("{\"Regions\":{\"3\":{\"RegionID\":3,\"Avoid\":true,\"Nodes\":["
                                 NODE(3, "") "]}," REGION(5, NODE(5, "")) "}}", 0, &home), 0);
        assert_int_equal(home, 5);
        /* A region without a usable node is not a candidate. */
        assert_int_equal(home_of("{\"Regions\":{" REGION(3, NODE(3, ",\"STUNOnly\":true")) ","
                                 REGION(5, NODE(5, "")) "}}", 0, &home), 0);
        assert_int_equal(home, 5);
}

static void test_no_usable_region(void **state) {
        int home;
        assert_int_equal(home_of("{\"Regions\":{}}", 0, &home), -EINVAL);
        assert_int_equal(home_of("{\"Regions\":{" REGION(3, NODE(3, ",\"STUNOnly\":true")) "}}", 0,
                                 &home), -EINVAL);
        /* Both address families disabled. */
        assert_int_equal(home_of("{\"Regions\":{\"3\":{\"RegionID\":3,\"Nodes\":[{\"Name\":\"x\","
                                 "\"HostName\":\"h\",\"IPv4\":\"none\",\"IPv6\":\"none\"}]}}}", 0,
                                 &home), -EINVAL);
}

static void test_send_and_set_map(void **state) {
        static const char one[] = "{\"Regions\":{" REGION(3, NODE(3, "")) "," REGION(5, NODE(5, "")) "}}";
        static const char two[] = "{\"Regions\":{" REGION(5, NODE(5, "")) "," REGION(7, NODE(7, "")) "}}";
        struct derp_map *m = NULL, *m2 = NULL;
        struct derp_client *c = NULL;
        sd_event *e = NULL;
        char err[DERP_MAP_ERROR_MAX];
        struct derp_client_config cfg = {};
        uint8_t dst[DERP_KEY_LEN] = { 1 }, big[DERP_MAX_PACKET_SIZE + 1] = { 0 };
        uint64_t lat = 99;

        memset(cfg.priv, 0x22, sizeof(cfg.priv));
        assert_int_equal(derp_map_parse(one, strlen(one), &m, err, sizeof(err)), 0);
        assert_int_equal(derp_map_parse(two, strlen(two), &m2, err, sizeof(err)), 0);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(derp_client_new(e, &cfg, m, NULL, NULL, &c), 0);
        assert_int_equal(derp_client_home_region(c), 3);
        assert_int_equal(derp_client_send(c, 0, dst, "x", 1), -EAGAIN);
        assert_int_equal(derp_client_send(c, 5, dst, "x", 1), -EAGAIN);
        assert_int_equal(derp_client_send(c, 4, dst, "x", 1), -ENOENT);
        assert_int_equal(derp_client_send(c, 3, dst, big, sizeof(big)), -EMSGSIZE);
        assert_false(derp_client_region_ready(c, 3, &lat));
        assert_int_equal(lat, 0);
        /* Region 3 goes away: the home moves to 5, which is kept. */
        assert_int_equal(derp_client_set_map(c, m2), 0);
        assert_int_equal(derp_client_home_region(c), 5);
        assert_int_equal(derp_client_send(c, 3, dst, "x", 1), -ENOENT);
        assert_int_equal(derp_client_send(c, 7, dst, "x", 1), -EAGAIN);
        derp_client_free(c);
        derp_map_free(m);
        derp_map_free(m2);
        sd_event_unref(e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_home_choice),
                cmocka_unit_test(test_no_usable_region),
                cmocka_unit_test(test_send_and_set_map),
        };
        log_open(LOG_TARGET_STDERR, LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
