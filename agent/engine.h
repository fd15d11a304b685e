/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * The engine: owns the desired state of the tunnel (our key, listen port, addresses,
 * DNS, DERP map, peers) and makes the system match it.
 *
 * - WireGuard: the interface (tunnelnet.h) with our key, port and exactly the configured
 *   peers, synced as a diff (one changed peer = that peer's messages only); endpoints are
 *   pathmgr.h's (direct or the DERP relay socket), DERP traffic goes through derpclient.h.
 * - Network: the NetworkSettingsRequest nsbuild.h derives from the config, applied by
 *   codervpnd (tunnelnet_apply + dnsapply.h) or, when the caller sets apply_network, by
 *   whoever that callback hands it to (a manager that configures the network itself).
 * - Names: the built-in DNS responder answers each peer's Name= with its host addresses.
 * - PeerUpdate: upserts and deletions when the peer set changes, and every
 *   ENGINE_REFRESH_USEC a refresh of every agent's last_handshake and last_ping.
 *
 * Freeing the engine removes everything it set up (link, routes, rules, DNS).
 */
#include <stdint.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "vpn.pb-c.h"

#define ENGINE_REFRESH_USEC (5ULL * 1000000ULL)
/*
 * Per interface, so that instances in different network namespaces sharing /run do not
 * meet: IFNAME.state (what `codervpnd cleanup` removes after a crash) and IFNAME.pub
 * (our public key, for `codervpnctl pubkey`).
 */
#define ENGINE_RUNTIME_DIR "/run/codervpnd"

struct engine;

struct engine_callbacks {
        /* Optional: each PeerUpdate (the engine frees it after the call). */
        void (*peer_update)(struct engine *e, Vpn__PeerUpdate *update, void *userdata);
        /*
         * Optional: someone else applies the network settings. Return 0 and later call
         * engine_network_done() once, or -errno.
         */
        int (*apply_network)(struct engine *e, const Vpn__NetworkSettingsRequest *req, void *userdata);
        /* Optional: the first network apply finished (@error NULL: success). */
        void (*ready)(struct engine *e, const char *error, void *userdata);
};

/*
 * Takes @config (freed by the engine, also on failure). On failure *@error (malloc'ed)
 * says what could not be done and nothing is left behind.
 */
int engine_new(sd_event *event, struct config *config, const struct engine_callbacks *cb, void *userdata,
               struct engine **ret, char **error);
struct engine *engine_free(struct engine *e);
static inline void engine_freep(struct engine **e) {
        if (*e)
                engine_free(*e);
}

/*
 * Makes the running engine match @config (taken), sending only the difference. Settings
 * that need a new interface (Name, WireGuard, PrivateKeyFile, FirewallMark, DNS Mode)
 * are refused with -EINVAL and nothing changes.
 */
int engine_reload(struct engine *e, struct config *config, char **error);

/* The manager that applies the network answered (@error NULL: success). */
void engine_network_done(struct engine *e, const char *error);

/* Every workspace and agent as upserts, with handshakes read now; free with engine_snapshot_free. */
int engine_snapshot(struct engine *e, Vpn__PeerUpdate *out);
void engine_snapshot_free(Vpn__PeerUpdate *out);

const uint8_t *engine_public_key(const struct engine *e);

/* ENGINE_RUNTIME_DIR/IFNAME.state -> IFNAME (malloc'ed), anything else -> NULL. */
char *engine_state_ifname(const char *state_path);
