/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * DERP across regions (spec derp.md §4): at most one derp_conn per region of the DERP
 * map, on the caller's sd-event loop.
 *
 * - The home region's connection is always kept up; other regions are connected on the
 *   first send to them and closed after DERP_CLIENT_IDLE_USEC without traffic.
 * - Home region: the configured one, else the region with the best (lowest: it scales
 *   latency) HomeParams score, absent = 1.0, regions marked Avoid last, else the lowest
 *   RegionID (no STUN here; documented in README).
 * - A region's nodes are tried in priority order (STUN-only nodes and nodes with both
 *   families disabled skipped); after a node fails the next is tried at once, after the
 *   last one the backoff applies. URL: http:// for ForceHTTP nodes, https:// otherwise
 *   (CertName, InsecureForTests honoured), HostName as the URL's host (so TLS checks the
 *   name); the TCP connection goes to the fixed IPv4 (then IPv6) address when the map has
 *   one, else to what HostName resolves to.
 * - Reconnects after a close with exponential backoff (DERP_CLIENT_BACKOFF_MIN_USEC
 *   doubling to DERP_CLIENT_BACKOFF_MAX_USEC, +-25 % jitter, reset once a connection
 *   has been ready for DERP_CLIENT_BACKOFF_RESET_USEC); a Restarting frame's
 *   reconnect_in replaces the first delay.
 * - A 4xx answer to `Upgrade: DERP` switches that region to the WebSocket variant for
 *   the rest of the client's life; force_websocket uses it from the start.
 * - Pings each ready connection every DERP_CLIENT_PING_USEC; the RTT is the region's
 *   latency.
 * - Sockets carry @fwmark (SO_MARK) so DERP never loops through the tunnel.
 * - Packets sent while a region is not ready are dropped (-EAGAIN), as UDP would be:
 *   WireGuard retransmits.
 */
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "derp.h"
#include "derpmap.h"

#define DERP_CLIENT_IDLE_USEC (60ULL * 1000000ULL)
#define DERP_CLIENT_BACKOFF_MIN_USEC (250ULL * 1000ULL)
#define DERP_CLIENT_BACKOFF_MAX_USEC (30ULL * 1000000ULL)
#define DERP_CLIENT_BACKOFF_RESET_USEC (10ULL * 1000000ULL)
#define DERP_CLIENT_PING_USEC (5ULL * 1000000ULL)

struct derp_client;

struct derp_client_config {
        uint8_t priv[DERP_KEY_LEN];  /* our node key (= the WireGuard private key) */
        uint32_t fwmark;             /* 0: none */
        bool force_websocket;
        const char *ca_file;         /* NULL: libcurl's default CA store */
        int home_region;             /* 0: choose (see above) */
        /* For tests (shortened timers); 0: the DERP_CLIENT_* default. */
        uint64_t idle_usec;
        uint64_t backoff_min_usec;
        uint64_t backoff_max_usec;
        uint64_t backoff_reset_usec;
        uint64_t ping_usec;
};

struct derp_client_callbacks {
        void (*recv)(struct derp_client *c, int region_id, const uint8_t src[DERP_KEY_LEN],
                     const uint8_t *pkt, size_t len, void *userdata);
        /* Optional. */
        void (*peer_gone)(struct derp_client *c, int region_id, const uint8_t key[DERP_KEY_LEN],
                          uint8_t reason, void *userdata);
        /* Optional: a region's connection became ready (true) or went away (false). */
        void (*region_changed)(struct derp_client *c, int region_id, bool ready, void *userdata);
};

/*
 * @map is copied. -EINVAL if it has no usable region. Callbacks must not free the client
 * (they run from inside it).
 */
int derp_client_new(sd_event *event, const struct derp_client_config *config,
                    const struct derp_map *map, const struct derp_client_callbacks *cb,
                    void *userdata, struct derp_client **ret);
struct derp_client *derp_client_free(struct derp_client *c);
static inline void derp_client_freep(struct derp_client **c) {
        if (*c)
                derp_client_free(*c);
}

/* Replaces the map (copied); connections to regions no longer in it are closed. */
int derp_client_set_map(struct derp_client *c, const struct derp_map *map);

int derp_client_home_region(const struct derp_client *c);

/*
 * Sends @pkt to @dst via @region_id (0: home). -ENOENT unknown region, -EAGAIN not
 * ready (the connection is being made), -EMSGSIZE, -ENOBUFS as derp_conn_send.
 */
int derp_client_send(struct derp_client *c, int region_id, const uint8_t dst[DERP_KEY_LEN],
                     const void *pkt, size_t len);

/* Whether @region_id's connection is ready; its last ping RTT in *@latency_usec (0: none yet). */
bool derp_client_region_ready(const struct derp_client *c, int region_id, uint64_t *latency_usec);
