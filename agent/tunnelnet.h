/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * The tunnel's network: its WireGuard link and the addresses, MTU, routes and
 * rules that NetworkSettingsRequests ask for. Creating one first removes what
 * a crashed instance left (from the state file), then records and creates the
 * link; freeing it leaves nothing behind. Rules someone deletes come back.
 */
#include <systemd/sd-event.h>

#include "apply.h"
#include "vpn.pb-c.h"
#include "wg.h"

struct tunnelnet_config {
        const char *ifname;
        enum wg_mode mode;
        struct net_policy policy;
        const char *state_path;
};

struct tunnelnet;

/* On failure *@error (static storage) says what could not be done. */
int tunnelnet_new(struct tunnelnet **ret, sd_event *event, const struct tunnelnet_config *config,
                  const char **error);
struct tunnelnet *tunnelnet_free(struct tunnelnet *t);
static inline void tunnelnet_freep(struct tunnelnet **t) {
        if (*t)
                tunnelnet_free(*t);
}

struct wg *tunnelnet_wg(struct tunnelnet *t);

/*
 * Merges @update into the current settings and makes the system match.
 * On failure the system and the current settings stay as they were, and
 * *@error (caller frees) names the field or the step that failed.
 */
int tunnelnet_apply(struct tunnelnet *t, const Vpn__NetworkSettingsRequest *update, char **error);

/* The result of the last successful apply. */
const struct net_result *tunnelnet_last_result(const struct tunnelnet *t);
