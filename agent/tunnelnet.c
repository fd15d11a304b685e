/* SPDX-License-Identifier: MIT */
#define LOG_COMPONENT "network"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "monitor.h"
#include "netcfg.h"
#include "netsettings.h"
#include "state.h"
#include "tunnelnet.h"

struct tunnelnet {
        struct tunnelnet_config config;
        char *ifname, *state_path;
        struct wg *wg;
        struct netcfg *netcfg;
        struct net_monitor *monitor;
        sd_event_source *monitor_source;
        Vpn__NetworkSettingsRequest *settings;   /* merged, as applied */
        struct net_desired desired;
        struct net_result last;
        bool created;
};

struct wg *tunnelnet_wg(struct tunnelnet *t) {
        return t->wg;
}

const struct net_result *tunnelnet_last_result(const struct tunnelnet *t) {
        return &t->last;
}

static int on_rules_changed(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct tunnelnet *t = userdata;
        int r = net_monitor_drain(t->monitor, &t->config.policy);

        if (r <= 0) {
                if (r < 0)
                        log_warning_errno(r, "Cannot read routing rule events");
                return 0;
        }
        r = net_restore_rules(t->netcfg, &t->config.policy, &t->desired);
        if (r < 0)
                log_error_errno(r, "Cannot restore the tunnel's routing rules");
        else if (r > 0)
                log_notice("Restored %d routing rule(s) that something deleted", r);
        return 0;
}

int tunnelnet_new(struct tunnelnet **ret, sd_event *event, const struct tunnelnet_config *config,
                  const char **error) {
        _cleanup_(tunnelnet_freep) struct tunnelnet *t = calloc(1, sizeof(*t));
        int r;

        if (!t)
                return -ENOMEM;
        t->config = *config;
        t->ifname = strdup(config->ifname);
        t->state_path = strdup(config->state_path);
        if (!t->ifname || !t->state_path)
                return -ENOMEM;
        t->config.ifname = t->ifname;
        t->config.state_path = t->state_path;

        r = net_state_cleanup(t->state_path);
        if (r < 0) {
                *error = "cannot remove what a previous run left behind";
                return r;
        }
        if (r > 0)
                log_notice("Removed the link, routes and rules a previous run left behind");

        if ((r = netcfg_open(&t->netcfg)) < 0) {
                *error = "cannot open rtnetlink";
                return r;
        }
        if ((r = wg_open(&t->wg, t->ifname, config->mode)) < 0) {
                *error = "WireGuard is not available";
                return r;
        }
        struct net_state state = { .mode = wg_get_mode(t->wg), .policy = config->policy };
        snprintf(state.ifname, sizeof(state.ifname), "%s", t->ifname);
        /* Written before the link exists: a crash in between still gets cleaned. */
        if ((r = net_state_save(t->state_path, &state)) < 0) {
                *error = "cannot write the state file";
                return r;
        }
        r = wg_create(t->wg);
        if (r == -EEXIST) {
                *error = "the interface exists and is not ours";
                unlink(t->state_path);
                return r;
        }
        if (r < 0) {
                *error = "cannot create the WireGuard interface";
                unlink(t->state_path);
                return r;
        }
        t->created = true;

        struct wg_device dev = { .flags = WG_DEVICE_HAS_FWMARK, .fwmark = config->policy.fwmark };
        if ((r = wg_set(t->wg, &dev, NULL)) < 0) {
                *error = "cannot set the WireGuard fwmark";
                return r;
        }
        if ((r = net_monitor_open(&t->monitor)) < 0 ||
            (r = sd_event_add_io(event, &t->monitor_source, net_monitor_fd(t->monitor), EPOLLIN,
                                 on_rules_changed, t)) < 0) {
                *error = "cannot watch routing rules";
                return r;
        }
        log_info("Created %s (%s WireGuard)", t->ifname, wg_mode_name(wg_get_mode(t->wg)));
        *ret = TAKE_PTR(t);
        return 0;
}

int tunnelnet_apply(struct tunnelnet *t, const Vpn__NetworkSettingsRequest *update, char **error) {
        Vpn__NetworkSettingsRequest *merged = NULL;
        struct net_desired desired;
        struct net_result result;
        const char *step;
        int r;

        *error = NULL;
        if ((r = netsettings_merge(t->settings, update, &merged)) < 0)
                return r;
        if ((r = netsettings_to_desired(merged, &desired, error)) < 0) {
                protobuf_c_message_free_unpacked(&merged->base, NULL);
                return r;
        }
        r = net_apply(t->netcfg, t->ifname, &t->config.policy, &desired, &result, &step);
        if (r < 0) {
                if (asprintf(error, "%s: %s", step ?: "applying network settings", strerror(-r)) < 0)
                        *error = NULL;
                net_desired_free(&desired);
                protobuf_c_message_free_unpacked(&merged->base, NULL);
                return r;
        }
        if (result.ipv6_skipped)
                log_warning("IPv6 is disabled on %s (or its MTU is below 1280): IPv6 settings skipped", t->ifname);
        log_info("Network settings applied: %zu added, %zu removed", result.added, result.removed);
        if (t->settings)
                protobuf_c_message_free_unpacked(&t->settings->base, NULL);
        t->settings = merged;
        net_desired_free(&t->desired);
        t->desired = desired;
        t->last = result;
        return 0;
}

struct tunnelnet *tunnelnet_free(struct tunnelnet *t) {
        int r;

        if (!t)
                return NULL;
        sd_event_source_disable_unref(t->monitor_source);
        net_monitor_close(t->monitor);
        if (t->created) {
                bool clean = true;
                /* The link takes its addresses and routes via it along; rules and throws stay. */
                if ((r = wg_delete(t->wg)) < 0 && r != -ENODEV) {
                        log_error_errno(r, "Cannot delete %s", t->ifname);
                        clean = false;
                }
                if ((r = net_teardown(t->netcfg, &t->config.policy)) < 0) {
                        log_error_errno(r, "Cannot remove the tunnel's routes and rules");
                        clean = false;
                }
                /* Left in place on failure, so that `codervpnd cleanup` can try again. */
                if (clean && unlink(t->state_path) < 0 && errno != ENOENT)
                        log_warning_errno(errno, "Cannot remove %s", t->state_path);
        }
        wg_free(t->wg);
        netcfg_close(t->netcfg);
        if (t->settings)
                protobuf_c_message_free_unpacked(&t->settings->base, NULL);
        net_desired_free(&t->desired);
        free(t->ifname);
        free(t->state_path);
        free(t);
        return NULL;
}
