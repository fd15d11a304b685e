/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * Per-peer path selection between a direct UDP endpoint and a DERP relay, for one
 * WireGuard interface (kernel or wireguard-go; spec derp.md §5).
 *
 * The caller (the engine) owns the peer set in WireGuard and configures peers without
 * endpoints (wg_sync keeps endpoints it is not given); this module owns every managed
 * peer's endpoint:
 * - direct: the peer's direct endpoint;
 * - DERP: 127.0.0.1:<port> of a loopback UDP socket of this module (one per peer).
 *   Datagrams WireGuard sends there go out through the caller's derp_send; packets the
 *   caller hands to pathmgr_derp_recv are written from that socket to WireGuard's listen
 *   port, so WireGuard sees them coming from the endpoint it has.
 *
 * Decisions, once per PATHMGR_TICK_USEC from the interface's peer list (wg_get):
 * - A peer with a direct endpoint starts direct; one without starts on DERP.
 * - "Something came back" counts only direct bytes: WireGuard's rx bytes minus what the
 *   relay socket wrote to it (pathsel.h).
 * - Direct fails when WireGuard keeps sending but nothing comes back for
 *   PATHMGR_DIRECT_SILENCE_USEC, or no handshake ever completes within that time of the
 *   first packet sent: the peer moves to DERP (target: traffic via DERP <= 5 s after the
 *   direct path is lost). Every tick of that silence sends a check: an empty UDP datagram
 *   through the tunnel to the peer's own address (its first /32 or /128 allowed IP), port
 *   9, which the peer's kernel answers with ICMP port unreachable. So a flow that only
 *   goes one way keeps a live direct path; a peer that answers nothing is judged as
 *   before.
 * - On DERP, a direct path is probed by pointing the endpoint at it for one tick:
 *   PATHMGR_PROBE_USEC after falling back (with jitter), the wait doubling with every
 *   failed probe up to PATHSEL_PROBE_MAX_USEC. A tick of our packets down it with nothing
 *   direct back ends the probe, so a dead path costs at most a tick of traffic per probe.
 *   WireGuard itself roams to the source of authenticated packets: when it roams a DERP
 *   peer to a non-loopback address, or direct bytes arrive, the direct path has just been
 *   proven and the peer is direct. A probe that gets through does the same on the peer's
 *   side, so both ends come back together.
 * - Relayed packets that arrive while a peer is direct are still delivered (the session
 *   never breaks); the resulting roam to loopback is undone on the next tick.
 * Sessions are never reset: only the endpoint changes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "wg.h"

#define PATHMGR_TICK_USEC (1000ULL * 1000ULL)
#define PATHMGR_DIRECT_SILENCE_USEC (3ULL * 1000000ULL)
#define PATHMGR_PROBE_USEC (10ULL * 1000000ULL)

enum path_kind {
        PATH_DIRECT,
        PATH_DERP,
};

struct path_info {
        enum path_kind kind;
        int derp_region;                 /* the peer's region (0: our home) */
        union wg_endpoint endpoint;      /* the direct endpoint, if known */
        int64_t last_handshake_sec;      /* 0: never */
        uint64_t rx_bytes, tx_bytes;
        uint64_t relayed_in, relayed_out;   /* packets through DERP */
};

struct pathmgr;

struct pathmgr_callbacks {
        /* A datagram WireGuard sent to @key's relay socket; return -errno to count a drop. */
        int (*derp_send)(struct pathmgr *pm, int region_id, const uint8_t key[WG_KEY_LEN],
                         const void *pkt, size_t len, void *userdata);
        /* Optional: @key's path changed. */
        void (*path_changed)(struct pathmgr *pm, const uint8_t key[WG_KEY_LEN],
                             const struct path_info *info, void *userdata);
};

/* @wg must outlive the manager and already exist as an interface. */
int pathmgr_new(sd_event *event, struct wg *wg, const struct pathmgr_callbacks *cb, void *userdata,
                struct pathmgr **ret);
struct pathmgr *pathmgr_free(struct pathmgr *pm);
static inline void pathmgr_freep(struct pathmgr **pm) {
        if (*pm)
                pathmgr_free(*pm);
}

/*
 * Starts managing @key (which must be a peer of the interface), or updates it. @direct
 * NULL or sa_family 0: no direct endpoint. Sets the peer's endpoint at once.
 */
int pathmgr_set_peer(struct pathmgr *pm, const uint8_t key[WG_KEY_LEN], const union wg_endpoint *direct,
                     int derp_region);
/* Stops managing @key and closes its relay socket; -ENOENT if unknown. */
int pathmgr_remove_peer(struct pathmgr *pm, const uint8_t key[WG_KEY_LEN]);

/* A packet DERP brought from @src (via @region_id). -ENOENT: not a managed peer (dropped). */
int pathmgr_derp_recv(struct pathmgr *pm, int region_id, const uint8_t src[WG_KEY_LEN], const void *pkt,
                      size_t len);

/*
 * Re-reads every managed peer's counters and handshake time from WireGuard, for
 * pathmgr_peer_info between ticks (a manager asking right after traffic). Decides
 * nothing: path decisions stay on the tick, whose samples are a tick apart.
 */
int pathmgr_refresh(struct pathmgr *pm);

/* -ENOENT if @key is not managed. */
int pathmgr_peer_info(const struct pathmgr *pm, const uint8_t key[WG_KEY_LEN], struct path_info *ret);
