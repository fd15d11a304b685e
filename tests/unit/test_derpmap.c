/* SPDX-License-Identifier: MIT */
/* DERP map parsing (agent/derpmap, spec derp.md §4). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "derpmap.h"

/* The spec's example map. */
static const char example[] =
        "{\"Regions\":{\"900\":{\"RegionID\":900,\"RegionCode\":\"x\",\"RegionName\":\"X\",\"Nodes\":[{\"Name\":\"900a\","
        "\"RegionID\":900,\"HostName\":\"derp.example.com\",\"IPv4\":\"203.0.113.1\",\"IPv6\":\"\",\"DERPPort\":443,"
        "\"STUNPort\":3478,\"CanPort80\":true,\"InsecureForTests\":false,\"CertName\":\"\",\"STUNOnly\":false}]}},"
        "\"HomeParams\":{\"RegionScore\":{\"900\":0.9}},\"OmitDefaultRegions\":false}";

static int parse(const char *json, struct derp_map **m, char *err) {
        return derp_map_parse(json, strlen(json), m, err, DERP_MAP_ERROR_MAX);
}

static void test_example(void **state) {
        _cleanup_derp_map_ struct derp_map *m = NULL;
        char err[DERP_MAP_ERROR_MAX];

        assert_int_equal(parse(example, &m, err), 0);
        assert_string_equal(err, "");
        assert_int_equal(m->n_regions, 1);
        assert_false(m->omit_default_regions);
        const struct derp_region *g = derp_map_region(m, 900);
        assert_non_null(g);
        assert_null(derp_map_region(m, 901));
        assert_int_equal(g->region_id, 900);
        assert_string_equal(g->region_code, "x");
        assert_string_equal(g->region_name, "X");
        assert_false(g->embedded_relay);
        assert_int_equal(g->n_nodes, 1);

        const struct derp_node *n = &g->nodes[0];
        struct in_addr want;
        inet_pton(AF_INET, "203.0.113.1", &want);
        assert_string_equal(n->name, "900a");
        assert_int_equal(n->region_id, 900);
        assert_string_equal(n->host_name, "derp.example.com");
        assert_int_equal(n->ipv4_mode, DERP_ADDR_FIXED);
        assert_memory_equal(&n->ipv4, &want, sizeof(want));
        assert_int_equal(n->ipv6_mode, DERP_ADDR_DNS);
        assert_int_equal(n->derp_port, 443);
        assert_int_equal(n->stun_port, 3478);
        assert_true(n->can_port80);
        assert_false(n->insecure_for_tests);
        assert_string_equal(n->cert_name, "");
        assert_false(n->stun_only);
        assert_false(n->force_http);

        assert_int_equal(m->n_scores, 1);
        assert_int_equal(m->scores[0].region_id, 900);
        assert_true(m->scores[0].score > 0.89 && m->scores[0].score < 0.91);
}

static void test_defaults_and_coder_fields(void **state) {
        _cleanup_derp_map_ struct derp_map *m = NULL;
        char err[DERP_MAP_ERROR_MAX];
        const char *json =
                "{\"Regions\":{"
                "\"999\":{\"RegionID\":999,\"RegionCode\":\"coder\",\"EmbeddedRelay\":true,\"Nodes\":["
                "  {\"Name\":\"999a\",\"HostName\":\"coder.example.com\",\"IPv4\":\"none\",\"IPv6\":\"none\","
                "   \"DERPPort\":0,\"STUNPort\":-1,\"ForceHTTP\":true},"
                "  {\"Name\":\"999b\",\"RegionID\":999,\"IPv6\":\"2001:db8::1\",\"IPv4\":\"2001:db8::1\","
                "   \"STUNPort\":0,\"DERPPort\":8443,\"STUNOnly\":true,\"InsecureForTests\":true,"
                "   \"CertName\":\"cert.example\",\"Extra\":{\"x\":1}}]},"
                "\"1\":{\"RegionID\":1,\"Nodes\":null,\"RegionName\":null},"
                "\"10\":null},"
                "\"OmitDefaultRegions\":true,\"Unknown\":[1,2]}";

        assert_int_equal(parse(json, &m, err), 0);
        assert_true(m->omit_default_regions);
        assert_int_equal(m->n_regions, 2);                       /* the null region is skipped */
        assert_int_equal(m->regions[0].region_id, 1);            /* sorted by ID */
        assert_int_equal(m->regions[1].region_id, 999);
        assert_int_equal(m->regions[0].n_nodes, 0);
        assert_string_equal(m->regions[0].region_name, "");

        const struct derp_region *g = derp_map_region(m, 999);
        assert_non_null(g);
        assert_true(g->embedded_relay);
        assert_string_equal(g->region_code, "coder");
        assert_int_equal(g->n_nodes, 2);

        const struct derp_node *a = &g->nodes[0], *b = &g->nodes[1];
        assert_string_equal(a->name, "999a");                    /* order kept */
        assert_int_equal(a->region_id, 999);                     /* 0 -> the region's */
        assert_int_equal(a->ipv4_mode, DERP_ADDR_DISABLED);
        assert_int_equal(a->ipv6_mode, DERP_ADDR_DISABLED);
        assert_int_equal(a->derp_port, 443);
        assert_int_equal(a->stun_port, -1);
        assert_true(a->force_http);

        struct in6_addr want;
        inet_pton(AF_INET6, "2001:db8::1", &want);
        assert_string_equal(b->name, "999b");
        assert_int_equal(b->ipv4_mode, DERP_ADDR_DISABLED);      /* not an IPv4 address */
        assert_int_equal(b->ipv6_mode, DERP_ADDR_FIXED);
        assert_memory_equal(&b->ipv6, &want, sizeof(want));
        assert_int_equal(b->derp_port, 8443);
        assert_int_equal(b->stun_port, 3478);
        assert_true(b->stun_only);
        assert_true(b->insecure_for_tests);
        assert_string_equal(b->cert_name, "cert.example");
        assert_string_equal(b->host_name, "");
}

static void test_empty(void **state) {
        _cleanup_derp_map_ struct derp_map *m = NULL, *m2 = NULL;
        char err[DERP_MAP_ERROR_MAX];

        assert_int_equal(parse("{}", &m, err), 0);
        assert_int_equal(m->n_regions, 0);
        assert_null(derp_map_region(m, 1));
        assert_int_equal(parse(" {\"Regions\":{}} \n", &m2, err), 0);
        assert_int_equal(m2->n_regions, 0);
}

struct bad {
        const char *json;
        const char *msg;   /* a substring of the error */
};

static const struct bad bad_inputs[] = {
        { "", "truncated" },
        { "{\"Regions\":", "truncated" },
        { "[]", "expected an object" },
        { "{} x", "after the JSON" },
        { "{\"Regions\":[]}", "Regions: expected an object" },
        { "{\"Regions\":{\"abc\":{\"RegionID\":1}}}", "Regions[\"abc\"]: the key is not a region ID" },
        { "{\"Regions\":{\"01\":{\"RegionID\":1}}}", "the key is not a region ID" },
        { "{\"Regions\":{\"-1\":{\"RegionID\":-1}}}", "the key is not a region ID" },
        { "{\"Regions\":{\"99999999999\":{}}}", "the key is not a region ID" },
        { "{\"Regions\":{\"1\":5}}", "Regions[\"1\"]: expected an object" },
        { "{\"Regions\":{\"1\":{\"RegionID\":2}}}", "Regions[\"1\"].RegionID: 2 does not match" },
        { "{\"Regions\":{\"1\":{}}}", "Regions[\"1\"].RegionID: 0 does not match" },
        { "{\"Regions\":{\"1\":{\"RegionID\":\"1\"}}}", "Regions[\"1\"].RegionID: expected an integer" },
        { "{\"Regions\":{\"1\":{\"RegionID\":1,\"RegionCode\":7}}}", "Regions[\"1\"].RegionCode: expected a string" },
        { "{\"Regions\":{\"1\":{\"RegionID\":1,\"EmbeddedRelay\":1}}}", "Regions[\"1\"].EmbeddedRelay: expected true or false" },
        { "{\"Regions\":{\"1\":{\"RegionID\":1,\"Nodes\":{}}}}", "Regions[\"1\"].Nodes: expected an array" },
        { "{\"Regions\":{\"1\":{\"RegionID\":1,\"Nodes\":[{},7]}}}", "Regions[\"1\"].Nodes[1]: expected an object" },
        { "{\"Regions\":{\"1\":{\"RegionID\":1,\"Nodes\":[{\"DERPPort\":65536}]}}}", "Regions[\"1\"].Nodes[0].DERPPort: 65536 out of range" },
        { "{\"Regions\":{\"1\":{\"RegionID\":1,\"Nodes\":[{\"DERPPort\":-1}]}}}", "Nodes[0].DERPPort" },
        { "{\"Regions\":{\"1\":{\"RegionID\":1,\"Nodes\":[{\"DERPPort\":4.5}]}}}", "Nodes[0].DERPPort: expected an integer" },
        { "{\"Regions\":{\"1\":{\"RegionID\":1,\"Nodes\":[{\"STUNPort\":-2}]}}}", "Nodes[0].STUNPort" },
        { "{\"Regions\":{\"1\":{\"RegionID\":1,\"Nodes\":[{\"STUNPort\":\"3478\"}]}}}", "Nodes[0].STUNPort: expected an integer" },
        { "{\"Regions\":{\"1\":{\"RegionID\":1,\"Nodes\":[{\"RegionID\":2}]}}}", "Nodes[0].RegionID: 2 is not the region's ID 1" },
        { "{\"Regions\":{\"1\":{\"RegionID\":1,\"Nodes\":[{\"HostName\":[]}]}}}", "Nodes[0].HostName: expected a string" },
        { "{\"Regions\":{\"1\":{\"RegionID\":1,\"Nodes\":[{\"HostName\":\"a\\u0000b\"}]}}}", "Nodes[0].HostName: contains a NUL" },
        { "{\"Regions\":{\"1\":{\"RegionID\":1,\"Nodes\":[{\"IPv4\":1}]}}}", "Nodes[0].IPv4: expected a string" },
        { "{\"Regions\":{\"1\":{\"RegionID\":1,\"Nodes\":[{\"ForceHTTP\":\"true\"}]}}}", "Nodes[0].ForceHTTP: expected true or false" },
        { "{\"Regions\":{\"1\":{\"RegionID\":1,\"Nodes\":[{\"CanPort80\":null,\"STUNOnly\":0}]}}}", "Nodes[0].STUNOnly" },
        { "{\"HomeParams\":[]}", "HomeParams: expected an object" },
        { "{\"HomeParams\":{\"RegionScore\":[]}}", "HomeParams.RegionScore: expected an object" },
        { "{\"HomeParams\":{\"RegionScore\":{\"x\":1}}}", "HomeParams.RegionScore[\"x\"]: the key" },
        { "{\"HomeParams\":{\"RegionScore\":{\"1\":\"1\"}}}", "HomeParams.RegionScore[\"1\"]: expected a number" },
        { "{\"HomeParams\":{\"RegionScore\":{\"1\":-1}}}", "expected a non-negative number" },
        { "{\"OmitDefaultRegions\":\"no\"}", "OmitDefaultRegions: expected true or false" },
};

static void test_bad_inputs(void **state) {
        for (size_t i = 0; i < sizeof(bad_inputs) / sizeof(bad_inputs[0]); i++) {
                struct derp_map *m = NULL;
                char err[DERP_MAP_ERROR_MAX];
                int r = parse(bad_inputs[i].json, &m, err);
                if (r != -EINVAL || !strstr(err, bad_inputs[i].msg))
                        fail_msg("input %zu %s: r=%d err=\"%s\", want \"%s\"", i, bad_inputs[i].json, r,
                                 err, bad_inputs[i].msg);
                assert_null(m);
        }
        /* No error buffer is fine too. */
        struct derp_map *m = NULL;
        assert_int_equal(derp_map_parse("[", 1, &m, NULL, 0), -EINVAL);
        assert_null(m);
}

static void test_long_string(void **state) {
        size_t n = DERP_MAP_STRING_MAX + 1;
        char *json = malloc(n + 128);
        char err[DERP_MAP_ERROR_MAX];
        struct derp_map *m = NULL;
        int off;

        assert_non_null(json);
        off = sprintf(json, "{\"Regions\":{\"1\":{\"RegionID\":1,\"RegionName\":\"");
        memset(json + off, 'a', n);
        strcpy(json + off + n, "\"}}}");
        assert_int_equal(parse(json, &m, err), -EINVAL);
        assert_non_null(strstr(err, "Regions[\"1\"].RegionName: longer than"));

        /* One byte shorter is fine. */
        memset(json + off, 'a', n - 1);
        strcpy(json + off + n - 1, "\"}}}");
        assert_int_equal(parse(json, &m, err), 0);
        assert_int_equal(strlen(m->regions[0].region_name), DERP_MAP_STRING_MAX);
        derp_map_free(m);
        free(json);
}

static void test_too_many(void **state) {
        char err[DERP_MAP_ERROR_MAX];
        struct derp_map *m = NULL;
        size_t cap = 64 * 1024, off = 0;
        char *json = malloc(cap);

        assert_non_null(json);
        /* 65 nodes in one region. */
        off = (size_t) sprintf(json, "{\"Regions\":{\"1\":{\"RegionID\":1,\"Nodes\":[");
        for (int i = 0; i <= DERP_MAP_NODES_MAX; i++)
                off += (size_t) sprintf(json + off, "%s{}", i ? "," : "");
        strcpy(json + off, "]}}}");
        assert_int_equal(parse(json, &m, err), -EINVAL);
        assert_non_null(strstr(err, "Regions[\"1\"].Nodes: more than 64 nodes"));

        /* 1025 regions. */
        off = (size_t) sprintf(json, "{\"Regions\":{");
        for (int i = 1; i <= DERP_MAP_REGIONS_MAX + 1; i++)
                off += (size_t) sprintf(json + off, "%s\"%d\":{\"RegionID\":%d}", i > 1 ? "," : "", i, i);
        assert_true(off < cap - 8);
        strcpy(json + off, "}}");
        assert_int_equal(parse(json, &m, err), -EINVAL);
        assert_non_null(strstr(err, "Regions: more than 1024 regions"));

        /* Exactly 1024 is accepted, and lookups work for all. */
        off = (size_t) sprintf(json, "{\"Regions\":{");
        for (int i = DERP_MAP_REGIONS_MAX; i >= 1; i--)
                off += (size_t) sprintf(json + off, "%s\"%d\":{\"RegionID\":%d}",
                                        i < DERP_MAP_REGIONS_MAX ? "," : "", i, i);
        strcpy(json + off, "}}");
        assert_int_equal(parse(json, &m, err), 0);
        assert_int_equal(m->n_regions, DERP_MAP_REGIONS_MAX);
        for (int i = 1; i <= DERP_MAP_REGIONS_MAX; i++)
                assert_int_equal(derp_map_region(m, i)->region_id, i);
        assert_null(derp_map_region(m, 0));
        derp_map_free(m);
        free(json);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_example),
                cmocka_unit_test(test_defaults_and_coder_fields),
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_bad_inputs),
                cmocka_unit_test(test_long_string),
                cmocka_unit_test(test_too_many),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
