/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * The DERP map (spec derp.md §4, tailcfg.DERPMap as coderd serves it), parsed with json-c
 * into plain structs. Regions are sorted by ID; nodes keep their order (priority order).
 *
 * Defaults applied: DERPPort 0 -> 443; STUNPort 0 -> 3478, -1 -> none (stun_port = -1);
 * a node's RegionID 0 -> its region's. IPv4/IPv6: "" = look HostName up in DNS, an
 * address of the family = use it, anything else (conventionally "none") = that family is
 * disabled, as upstream does.
 *
 * Checked: every known field's JSON type (null counts as absent), integer ranges, region
 * keys equal to their RegionID, no duplicate regions, strings without NUL and at most
 * DERP_MAP_STRING_MAX bytes, at most DERP_MAP_REGIONS_MAX regions and
 * DERP_MAP_NODES_MAX nodes per region. Unknown fields are ignored. Errors are -EINVAL
 * with a message naming the field, e.g. `Regions["900"].Nodes[0].DERPPort: ...`.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#define DERP_MAP_REGIONS_MAX 1024
#define DERP_MAP_NODES_MAX 64
#define DERP_MAP_STRING_MAX 1024
#define DERP_MAP_ERROR_MAX 256
#define DERP_DEFAULT_DERP_PORT 443
#define DERP_DEFAULT_STUN_PORT 3478
#define DERP_EMBEDDED_REGION_ID 999   /* Coder's embedded relay default, code "coder" */

enum derp_addr_mode {
        DERP_ADDR_DNS,        /* "" (or absent): resolve HostName */
        DERP_ADDR_FIXED,      /* an address of the family */
        DERP_ADDR_DISABLED,   /* "none" or anything that is not such an address */
};

struct derp_node {
        char *name;
        int region_id;
        char *host_name;
        enum derp_addr_mode ipv4_mode;
        struct in_addr ipv4;
        enum derp_addr_mode ipv6_mode;
        struct in6_addr ipv6;
        uint16_t derp_port;
        int stun_port;        /* -1 = no STUN */
        bool can_port80;
        bool insecure_for_tests;
        char *cert_name;      /* "" = HostName */
        bool stun_only;
        bool force_http;      /* Coder */
};

struct derp_region {
        int region_id;
        char *region_code;
        char *region_name;
        bool avoid;
        bool embedded_relay;  /* Coder */
        struct derp_node *nodes;
        size_t n_nodes;
};

struct derp_region_score {
        int region_id;
        double score;
};

struct derp_map {
        struct derp_region *regions;   /* sorted by region_id */
        size_t n_regions;
        struct derp_region_score *scores;   /* HomeParams.RegionScore, sorted by region_id */
        size_t n_scores;
        bool omit_default_regions;
};

/*
 * Parses @len bytes of @json. On -EINVAL, @err (if not NULL, @err_size bytes) gets a
 * message naming the bad field; -ENOMEM on allocation failure.
 */
int derp_map_parse(const char *json, size_t len, struct derp_map **ret, char *err, size_t err_size);

/* The region with @region_id, or NULL. */
const struct derp_region *derp_map_region(const struct derp_map *m, int region_id);

struct derp_map *derp_map_free(struct derp_map *m);

static inline void derp_map_freep(struct derp_map **m) {
        derp_map_free(*m);
}
#define _cleanup_derp_map_ __attribute__((cleanup(derp_map_freep)))
