/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "dnsapply.h"
#include "log.h"
#include "macro.h"
#include "resolved.h"

struct dnsapply {
        enum dns_mode mode;
        char *ifname;
        sd_bus *bus;
        struct resolved_link *link;
        bool applied;
        char *backup;
        struct resolvconf_paths paths;
};

static bool resolved_on_bus(sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int has = 0;

        if (sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "NameHasOwner", &e, &reply, "s", "org.freedesktop.resolve1") < 0 ||
            sd_bus_message_read(reply, "b", &has) < 0)
                return false;
        return has;
}

static void on_resolved(struct resolved_link *l, enum resolved_link_op op, int r, const char *error,
                        void *userdata) {
        struct dnsapply *d = userdata;

        if (r < 0)
                log_warning("DNS for %s via systemd-resolved: %s", d->ifname, error ?: strerror(-r));
        else if (op == RESOLVED_LINK_APPLY)
                log_info("DNS for %s set in systemd-resolved", d->ifname);
}

static int fail(char **error, int r, const char *what) {
        if (asprintf(error, "%s: %s", what, strerror(-r)) < 0)
                *error = NULL;
        return r;
}

static int backup_path(const char *ifname, char **ret) {
        if (asprintf(ret, DNSAPPLY_BACKUP_DIR "/%s.resolv.conf.orig", ifname) < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

int dnsapply_restore(const char *ifname, char **error) {
        _cleanup_free_ char *backup = NULL;

        if (backup_path(ifname, &backup) < 0)
                return -ENOMEM;
        return resolvconf_direct_restore(&(struct resolvconf_paths) { .backup = backup }, error);
}

int dnsapply_new(sd_event *event, enum config_dns_mode mode, const char *ifname, int ifindex,
                 struct dnsapply **ret, char **error) {
        _cleanup_(dnsapply_freep) struct dnsapply *d = calloc(1, sizeof(*d));
        _cleanup_free_ char *reason = NULL;
        int r;

        if (!d || !(d->ifname = strdup(ifname)) || backup_path(ifname, &d->backup) < 0)
                return fail(error, -ENOMEM, "DNS");
        d->paths.backup = d->backup;
        /* Undo what a crash left in resolv.conf, whatever this run's mode will be. */
        if ((r = resolvconf_direct_restore(&d->paths, error)) < 0 && r != -ENOENT)
                return r;
        if (r == -ENOENT) {
                log_warning("%s", *error);
                free(*error);
                *error = NULL;
        }
        if (mode != CONFIG_DNS_OFF && mode != CONFIG_DNS_RESOLVCONF && mode != CONFIG_DNS_FILE &&
            sd_bus_open_system(&d->bus) >= 0 && !resolved_on_bus(d->bus))
                d->bus = sd_bus_flush_close_unref(d->bus);

        switch (mode) {
        case CONFIG_DNS_OFF: d->mode = DNS_MODE_OFF; break;
        case CONFIG_DNS_RESOLVCONF: d->mode = DNS_MODE_RESOLVCONF; break;
        case CONFIG_DNS_FILE: d->mode = DNS_MODE_DIRECT; break;
        case CONFIG_DNS_RESOLVED:
                if (!d->bus)
                        return fail(error, -ENOENT, "DNS Mode=resolved, but systemd-resolved is not on the system bus");
                d->mode = DNS_MODE_RESOLVED;
                break;
        case CONFIG_DNS_AUTO:
                if ((r = dns_mode_detect(&d->paths, d->bus != NULL, &d->mode, &reason)) < 0)
                        return fail(error, r, "DNS mode detection");
                log_info("DNS for %s: %s (%s)", ifname, dns_mode_to_string(d->mode), reason ?: "detected");
                break;
        }
        if (d->mode == DNS_MODE_RESOLVED) {
                if ((r = sd_bus_attach_event(d->bus, event, 0)) < 0 ||
                    (r = resolved_link_new(&d->link, d->bus, event, ifindex, ifname, on_resolved, d)) < 0)
                        return fail(error, r, "systemd-resolved");
        } else
                d->bus = sd_bus_flush_close_unref(d->bus);
        *ret = TAKE_PTR(d);
        return 0;
}

enum dns_mode dnsapply_mode(const struct dnsapply *d) {
        return d->mode;
}

static int revert(struct dnsapply *d, char **error) {
        int r = 0;

        if (!d->applied)
                return 0;
        switch (d->mode) {
        case DNS_MODE_RESOLVED: r = resolved_link_revert(d->link); break;
        case DNS_MODE_RESOLVCONF: r = resolvconf_cmd_remove(&d->paths, d->ifname, error); break;
        case DNS_MODE_DIRECT: r = resolvconf_direct_restore(&d->paths, error); break;
        case DNS_MODE_OFF: break;
        }
        if (r >= 0)
                d->applied = false;
        return r < 0 ? r : 0;
}

int dnsapply_set(struct dnsapply *d, const struct dns_config *c, char **error) {
        int r = 0;

        if (!c || !c->n_servers)
                return revert(d, error);
        switch (d->mode) {
        case DNS_MODE_RESOLVED: r = resolved_link_apply(d->link, c); break;
        case DNS_MODE_RESOLVCONF: r = resolvconf_cmd_apply(&d->paths, d->ifname, c, error); break;
        case DNS_MODE_DIRECT: r = resolvconf_direct_apply(&d->paths, c, error); break;
        case DNS_MODE_OFF: return 0;
        }
        if (r < 0) {
                if (!*error)
                        fail(error, r, "DNS");
                return r;
        }
        d->applied = true;
        return 0;
}

struct dnsapply *dnsapply_free(struct dnsapply *d) {
        _cleanup_free_ char *error = NULL;

        if (!d)
                return NULL;
        /* resolved: resolved_link_free sends RevertLink itself. */
        if (d->mode != DNS_MODE_RESOLVED && revert(d, &error) < 0)
                log_warning("Cannot remove the DNS settings of %s: %s", d->ifname, error ?: "failed");
        resolved_link_free(d->link);
        sd_bus_flush_close_unref(d->bus);
        free(d->ifname);
        free(d->backup);
        free(d);
        return NULL;
}
