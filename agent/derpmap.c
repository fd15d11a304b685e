/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "derpmap.h"
#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct json_object *, json_object_put);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct json_tokener *, json_tokener_free);

struct ctx {
        char *err;
        size_t err_size;
};

#define PATH_MAX_LEN 96

__attribute__((format(printf, 2, 3)))
static int fail(const struct ctx *c, const char *fmt, ...) {
        va_list ap;

        if (c->err && c->err_size > 0) {
                va_start(ap, fmt);
                vsnprintf(c->err, c->err_size, fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

/* The member @name of @o, or NULL when absent or null. */
static struct json_object *member(struct json_object *o, const char *name) {
        struct json_object *v = NULL;

        if (!json_object_object_get_ex(o, name, &v))
                return NULL;
        return v;
}

static int get_string(const struct ctx *c, struct json_object *o, const char *path,
                      const char *name, char **ret) {
        struct json_object *v = member(o, name);
        const char *s = "";
        size_t len = 0;

        if (v) {
                if (!json_object_is_type(v, json_type_string))
                        return fail(c, "%s.%s: expected a string", path, name);
                s = json_object_get_string(v);
                len = (size_t) json_object_get_string_len(v);
                if (len > DERP_MAP_STRING_MAX)
                        return fail(c, "%s.%s: longer than %d bytes", path, name, DERP_MAP_STRING_MAX);
                if (strlen(s) != len)
                        return fail(c, "%s.%s: contains a NUL character", path, name);
        }
        *ret = strndup(s, len);
        return *ret ? 0 : -ENOMEM;
}

static int get_bool(const struct ctx *c, struct json_object *o, const char *path,
                    const char *name, bool *ret) {
        struct json_object *v = member(o, name);

        *ret = false;
        if (!v)
                return 0;
        if (!json_object_is_type(v, json_type_boolean))
                return fail(c, "%s.%s: expected true or false", path, name);
        *ret = json_object_get_boolean(v);
        return 0;
}

/* An integer in [@min, @max]; 0 when absent. */
static int get_int(const struct ctx *c, struct json_object *o, const char *path, const char *name,
                   int64_t min, int64_t max, int64_t *ret) {
        struct json_object *v = member(o, name);

        *ret = 0;
        if (!v)
                return 0;
        if (!json_object_is_type(v, json_type_int))
                return fail(c, "%s.%s: expected an integer", path, name);
        errno = 0;
        int64_t n = json_object_get_int64(v);
        if (errno != 0 || n < min || n > max)
                return fail(c, "%s.%s: %s out of range %lld..%lld", path, name,
                            json_object_get_string(v), (long long) min, (long long) max);
        *ret = n;
        return 0;
}

static int get_addr(const struct ctx *c, struct json_object *o, const char *path, const char *name,
                    int family, enum derp_addr_mode *mode, void *addr) {
        _cleanup_free_ char *s = NULL;
        int r = get_string(c, o, path, name, &s);

        if (r < 0)
                return r;
        if (s[0] == '\0')
                *mode = DERP_ADDR_DNS;
        else if (inet_pton(family, s, addr) == 1)
                *mode = DERP_ADDR_FIXED;
        else
                *mode = DERP_ADDR_DISABLED;
        return 0;
}

static void node_clear(struct derp_node *n) {
        free(n->name);
        free(n->host_name);
        free(n->cert_name);
        *n = (struct derp_node) {};
}

static void region_clear(struct derp_region *g) {
        for (size_t i = 0; i < g->n_nodes; i++)
                node_clear(&g->nodes[i]);
        free(g->nodes);
        free(g->region_code);
        free(g->region_name);
        *g = (struct derp_region) {};
}

static int parse_node_ports(const struct ctx *c, struct json_object *o, const char *path,
                            struct derp_node *n) {
        int64_t v;
        int r;

        if ((r = get_int(c, o, path, "DERPPort", 0, 65535, &v)) < 0)
                return r;
        n->derp_port = v ? (uint16_t) v : DERP_DEFAULT_DERP_PORT;
        if ((r = get_int(c, o, path, "STUNPort", -1, 65535, &v)) < 0)
                return r;
        n->stun_port = v == 0 ? DERP_DEFAULT_STUN_PORT : (int) v;
        return 0;
}

static int parse_node(const struct ctx *c, struct json_object *o, const char *path,
                      int region_id, struct derp_node *n) {
        int64_t id;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return fail(c, "%s: expected an object", path);
        if ((r = get_string(c, o, path, "Name", &n->name)) < 0 ||
            (r = get_string(c, o, path, "HostName", &n->host_name)) < 0 ||
            (r = get_string(c, o, path, "CertName", &n->cert_name)) < 0 ||
            (r = get_int(c, o, path, "RegionID", 0, INT_MAX, &id)) < 0 ||
            (r = get_addr(c, o, path, "IPv4", AF_INET, &n->ipv4_mode, &n->ipv4)) < 0 ||
            (r = get_addr(c, o, path, "IPv6", AF_INET6, &n->ipv6_mode, &n->ipv6)) < 0 ||
            (r = parse_node_ports(c, o, path, n)) < 0 ||
            (r = get_bool(c, o, path, "CanPort80", &n->can_port80)) < 0 ||
            (r = get_bool(c, o, path, "InsecureForTests", &n->insecure_for_tests)) < 0 ||
            (r = get_bool(c, o, path, "STUNOnly", &n->stun_only)) < 0 ||
            (r = get_bool(c, o, path, "ForceHTTP", &n->force_http)) < 0)
                return r;
        if (id != 0 && id != region_id)
                return fail(c, "%s.RegionID: %lld is not the region's ID %d", path, (long long) id,
                            region_id);
        n->region_id = region_id;
        return 0;
}

static int parse_nodes(const struct ctx *c, struct json_object *o, const char *path,
                       struct derp_region *g) {
        struct json_object *nodes = member(o, "Nodes");
        char npath[PATH_MAX_LEN + 16];
        int r;

        if (!nodes)
                return 0;
        if (!json_object_is_type(nodes, json_type_array))
                return fail(c, "%s.Nodes: expected an array", path);
        size_t n = json_object_array_length(nodes);
        if (n > DERP_MAP_NODES_MAX)
                return fail(c, "%s.Nodes: more than %d nodes", path, DERP_MAP_NODES_MAX);
        if (n == 0)
                return 0;
        g->nodes = calloc(n, sizeof(*g->nodes));
        if (!g->nodes)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                snprintf(npath, sizeof(npath), "%s.Nodes[%zu]", path, i);
                g->n_nodes++;
                r = parse_node(c, json_object_array_get_idx(nodes, i), npath, g->region_id,
                               &g->nodes[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A map key: a decimal integer in 1..INT_MAX, without sign, spaces or leading zeros. */
static int parse_region_key(const char *key, int *ret) {
        char *end;

        if (key[0] < '1' || key[0] > '9' || strlen(key) > 10)
                return -EINVAL;
        errno = 0;
        long v = strtol(key, &end, 10);
        if (errno != 0 || *end != '\0' || v > INT_MAX)
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

static int parse_region(const struct ctx *c, const char *key, struct json_object *o,
                        struct derp_region *g) {
        char path[PATH_MAX_LEN];
        int64_t id;
        int key_id, r;

        snprintf(path, sizeof(path), "Regions[\"%.32s\"]", key);
        if (parse_region_key(key, &key_id) < 0)
                return fail(c, "%s: the key is not a region ID", path);
        if (!json_object_is_type(o, json_type_object))
                return fail(c, "%s: expected an object", path);
        if ((r = get_int(c, o, path, "RegionID", 0, INT_MAX, &id)) < 0)
                return r;
        if (id != key_id)
                return fail(c, "%s.RegionID: %lld does not match the key", path, (long long) id);
        g->region_id = key_id;
        if ((r = get_string(c, o, path, "RegionCode", &g->region_code)) < 0 ||
            (r = get_string(c, o, path, "RegionName", &g->region_name)) < 0 ||
            (r = get_bool(c, o, path, "Avoid", &g->avoid)) < 0 ||
            (r = get_bool(c, o, path, "EmbeddedRelay", &g->embedded_relay)) < 0)
                return r;
        return parse_nodes(c, o, path, g);
}

static int cmp_region(const void *a, const void *b) {
        const struct derp_region *x = a, *y = b;
        return (x->region_id > y->region_id) - (x->region_id < y->region_id);
}

static int cmp_score(const void *a, const void *b) {
        const struct derp_region_score *x = a, *y = b;
        return (x->region_id > y->region_id) - (x->region_id < y->region_id);
}

static int parse_regions(const struct ctx *c, struct json_object *root, struct derp_map *m) {
        struct json_object *regions = member(root, "Regions");

        if (!regions)
                return 0;
        if (!json_object_is_type(regions, json_type_object))
                return fail(c, "Regions: expected an object");
        size_t n = (size_t) json_object_object_length(regions);
        if (n > DERP_MAP_REGIONS_MAX)
                return fail(c, "Regions: more than %d regions", DERP_MAP_REGIONS_MAX);
        if (n == 0)
                return 0;
        m->regions = calloc(n, sizeof(*m->regions));
        if (!m->regions)
                return -ENOMEM;
        json_object_object_foreach(regions, key, val) {
                if (!val)
                        continue;   /* a null region is skipped, as upstream does */
                int r = parse_region(c, key, val, &m->regions[m->n_regions++]);
                if (r < 0)
                        return r;
        }
        qsort(m->regions, m->n_regions, sizeof(*m->regions), cmp_region);
        for (size_t i = 1; i < m->n_regions; i++)
                if (m->regions[i].region_id == m->regions[i - 1].region_id)
                        return fail(c, "Regions: region %d appears twice", m->regions[i].region_id);
        return 0;
}

static int parse_scores(const struct ctx *c, struct json_object *root, struct derp_map *m) {
        struct json_object *home = member(root, "HomeParams"), *scores;
        char path[PATH_MAX_LEN];

        if (!home)
                return 0;
        if (!json_object_is_type(home, json_type_object))
                return fail(c, "HomeParams: expected an object");
        scores = member(home, "RegionScore");
        if (!scores)
                return 0;
        if (!json_object_is_type(scores, json_type_object))
                return fail(c, "HomeParams.RegionScore: expected an object");
        size_t n = (size_t) json_object_object_length(scores);
        if (n > DERP_MAP_REGIONS_MAX)
                return fail(c, "HomeParams.RegionScore: more than %d entries", DERP_MAP_REGIONS_MAX);
        if (n == 0)
                return 0;
        m->scores = calloc(n, sizeof(*m->scores));
        if (!m->scores)
                return -ENOMEM;
        json_object_object_foreach(scores, key, val) {
                struct derp_region_score *s = &m->scores[m->n_scores];
                snprintf(path, sizeof(path), "HomeParams.RegionScore[\"%.32s\"]", key);
                if (parse_region_key(key, &s->region_id) < 0)
                        return fail(c, "%s: the key is not a region ID", path);
                if (!val || !(json_object_is_type(val, json_type_double) ||
                              json_object_is_type(val, json_type_int)))
                        return fail(c, "%s: expected a number", path);
                s->score = json_object_get_double(val);
                if (!(s->score >= 0))
                        return fail(c, "%s: expected a non-negative number", path);
                m->n_scores++;
        }
        qsort(m->scores, m->n_scores, sizeof(*m->scores), cmp_score);
        return 0;
}

static int parse_root(const struct ctx *c, const char *json, size_t len,
                      struct json_object **ret) {
        _cleanup_(json_tokener_freep) struct json_tokener *tok = json_tokener_new();
        struct json_object *o;

        if (!tok)
                return -ENOMEM;
        if (len > INT32_MAX)
                return fail(c, "DERP map: too long");
        o = json_tokener_parse_ex(tok, json, (int) len);
        enum json_tokener_error e = json_tokener_get_error(tok);
        if (!o || e != json_tokener_success) {
                json_object_put(o);
                if (e == json_tokener_continue)
                        return fail(c, "DERP map: truncated JSON");
                return fail(c, "DERP map: invalid JSON: %s", json_tokener_error_desc(e));
        }
        for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
                if (json[i] != ' ' && json[i] != '\t' && json[i] != '\r' && json[i] != '\n') {
                        json_object_put(o);
                        return fail(c, "DERP map: data after the JSON value");
                }
        if (!json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return fail(c, "DERP map: expected an object");
        }
        *ret = o;
        return 0;
}

int derp_map_parse(const char *json, size_t len, struct derp_map **ret, char *err, size_t err_size) {
        _cleanup_(json_object_putp) struct json_object *root = NULL;
        _cleanup_derp_map_ struct derp_map *m = NULL;
        const struct ctx c = { err, err_size };
        int r;

        if (err && err_size > 0)
                err[0] = '\0';
        if ((r = parse_root(&c, json, len, &root)) < 0)
                return r;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        if ((r = parse_regions(&c, root, m)) < 0 || (r = parse_scores(&c, root, m)) < 0 ||
            (r = get_bool(&c, root, "DERPMap", "OmitDefaultRegions", &m->omit_default_regions)) < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

const struct derp_region *derp_map_region(const struct derp_map *m, int region_id) {
        struct derp_region key = { .region_id = region_id };

        if (!m || m->n_regions == 0)
                return NULL;
        return bsearch(&key, m->regions, m->n_regions, sizeof(*m->regions), cmp_region);
}

struct derp_map *derp_map_free(struct derp_map *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_regions; i++)
                region_clear(&m->regions[i]);
        free(m->regions);
        free(m->scores);
        free(m);
        return NULL;
}
