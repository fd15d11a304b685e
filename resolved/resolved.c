/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "macro.h"
#include "resolved.h"

#define RESOLVE_NAME "org.freedesktop.resolve1"
#define RESOLVE_PATH "/org/freedesktop/resolve1"
#define RESOLVE_MANAGER "org.freedesktop.resolve1.Manager"

#define RETRY_FIRST_USEC (50 * 1000ULL)
#define RETRY_BUDGET_USEC (5 * 1000 * 1000ULL)

enum step {
        STEP_DOMAINS,
        STEP_DEFAULT_ROUTE,
        STEP_DNS,
        STEP_LLMNR,
        STEP_MDNS,
        STEP_FLUSH,
        STEP_DONE,
};

struct resolved_link {
        sd_bus *bus;
        sd_event *event;
        int ifindex;
        char *ifname;
        resolved_link_handler_t handler;
        void *userdata;

        struct dns_config config;
        bool have_config;       /* something to (re-)apply */
        bool applied;           /* resolved holds (some of) our settings: revert on free */

        enum step step;
        sd_bus_slot *call;      /* the call in flight */
        sd_bus_slot *owner_match;
        sd_event_source *retry;
        uint64_t retry_delay, retry_spent;
};

static const char *const step_method[] = {
        [STEP_DOMAINS] = "SetLinkDomains",
        [STEP_DEFAULT_ROUTE] = "SetLinkDefaultRoute",
        [STEP_DNS] = "SetLinkDNS",
        [STEP_LLMNR] = "SetLinkLLMNR",
        [STEP_MDNS] = "SetLinkMulticastDNS",
        [STEP_FLUSH] = "FlushCaches",
};

char *resolved_error_message(const char *method, const char *ifname, int ifindex, const sd_bus_error *e,
                             int r) {
        char idx[16];
        char *s = NULL;
        const char *name = e && sd_bus_error_is_set(e) ? e->name : NULL;
        const char *msg = e && e->message ? e->message : strerror(r < 0 ? -r : r);

        if (!ifname) {
                snprintf(idx, sizeof(idx), "%d", ifindex);
                ifname = idx;
        }
        if (name && strcmp(name, "org.freedesktop.resolve1.LinkBusy") == 0) {
                if (asprintf(&s,
                             "systemd-resolved %s on %s: the link is managed by systemd-networkd (%s); "
                             "add a .network file with [Match] Name=%s and [Link] Unmanaged=yes",
                             method, ifname, msg, ifname) < 0)
                        s = NULL;
        } else if ((name && (strcmp(name, SD_BUS_ERROR_ACCESS_DENIED) == 0 ||
                             strcmp(name, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED) == 0 ||
                             strcmp(name, "org.freedesktop.DBus.Error.AuthFailed") == 0)) ||
                   (!name && (r == -EACCES || r == -EPERM))) {
                if (asprintf(&s,
                             "systemd-resolved %s on %s: access denied (%s%s%s); run as root or grant the polkit "
                             "actions org.freedesktop.resolve1.set-dns-servers, "
                             "org.freedesktop.resolve1.set-domains, org.freedesktop.resolve1.set-default-route, "
                             "org.freedesktop.resolve1.set-llmnr, org.freedesktop.resolve1.set-mdns, "
                             "org.freedesktop.resolve1.revert",
                             method, ifname, name ? name : "", name ? ": " : "", msg) < 0)
                        s = NULL;
        } else if (name && strcmp(name, "org.freedesktop.resolve1.NoSuchLink") == 0) {
                if (asprintf(&s, "systemd-resolved %s on %s: link not known to systemd-resolved after %llu s (%s)",
                             method, ifname, (unsigned long long) (RETRY_BUDGET_USEC / 1000000), msg) < 0)
                        s = NULL;
        } else if (asprintf(&s, "systemd-resolved %s on %s: %s%s%s", method, ifname, msg, name ? ": " : "",
                            name ? name : "") < 0)
                s = NULL;
        return s;
}

static void finish(struct resolved_link *l, enum resolved_link_op op, int r, const char *method,
                   const sd_bus_error *e) {
        _cleanup_free_ char *msg = NULL;

        if (r < 0) {
                msg = resolved_error_message(method, l->ifname, l->ifindex, e, r);
                if (!msg)
                        msg = strdup("out of memory");
        }
        if (l->handler)
                l->handler(l, op, r, msg, l->userdata);
}

static int config_copy(struct dns_config *dst, const struct dns_config *src) {
        struct dns_config c = { .match_domains_no_search = src->match_domains_no_search };

        if (src->n_servers) {
                c.servers = calloc(src->n_servers, sizeof(*c.servers));
                if (!c.servers)
                        goto oom;
                memcpy(c.servers, src->servers, src->n_servers * sizeof(*c.servers));
                c.n_servers = src->n_servers;
        }
        if (src->n_search_domains) {
                c.search_domains = calloc(src->n_search_domains, sizeof(char *));
                if (!c.search_domains)
                        goto oom;
                for (; c.n_search_domains < src->n_search_domains; c.n_search_domains++)
                        if (!(c.search_domains[c.n_search_domains] = strdup(src->search_domains[c.n_search_domains])))
                                goto oom;
        }
        if (src->n_match_domains) {
                c.match_domains = calloc(src->n_match_domains, sizeof(char *));
                if (!c.match_domains)
                        goto oom;
                for (; c.n_match_domains < src->n_match_domains; c.n_match_domains++)
                        if (!(c.match_domains[c.n_match_domains] = strdup(src->match_domains[c.n_match_domains])))
                                goto oom;
        }
        *dst = c;
        return 0;
oom:
        dns_config_free(&c);
        return -ENOMEM;
}

static bool listed(char *const *v, size_t n, const char *s) {
        for (size_t i = 0; i < n; i++)
                if (strcasecmp(v[i], s) == 0)
                        return true;
        return false;
}

static bool split_dns(const struct dns_config *c) {
        return c->n_match_domains > 0;
}

static int append_domains(sd_bus_message *m, const struct dns_config *c) {
        int r;

        if ((r = sd_bus_message_open_container(m, 'a', "(sb)")) < 0)
                return r;
        /* A plain (search) domain is a routing domain too in resolved: one entry per name. */
        for (size_t i = 0; i < c->n_match_domains; i++) {
                if (listed(c->match_domains, i, c->match_domains[i]))
                        continue;
                bool route_only = c->match_domains_no_search &&
                                  !listed(c->search_domains, c->n_search_domains, c->match_domains[i]);
                if ((r = sd_bus_message_append(m, "(sb)", c->match_domains[i], route_only)) < 0)
                        return r;
        }
        for (size_t i = 0; i < c->n_search_domains; i++) {
                if (listed(c->match_domains, c->n_match_domains, c->search_domains[i]) ||
                    listed(c->search_domains, i, c->search_domains[i]))
                        continue;
                if ((r = sd_bus_message_append(m, "(sb)", c->search_domains[i], 0)) < 0)
                        return r;
        }
        if (c->n_servers > 0 && !split_dns(c) && (r = sd_bus_message_append(m, "(sb)", ".", 1)) < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static bool need_dns_ex(const struct dns_config *c) {
        for (size_t i = 0; i < c->n_servers; i++)
                if (c->servers[i].port != 0 && c->servers[i].port != 53)
                        return true;
        return false;
}

static int append_servers(sd_bus_message *m, const struct dns_config *c, bool ex) {
        int r;

        if ((r = sd_bus_message_open_container(m, 'a', ex ? "(iayqs)" : "(iay)")) < 0)
                return r;
        for (size_t i = 0; i < c->n_servers; i++) {
                const struct dns_server *s = &c->servers[i];
                if (s->family != AF_INET && s->family != AF_INET6)
                        return -EINVAL;
                if ((r = sd_bus_message_open_container(m, 'r', ex ? "iayqs" : "iay")) < 0 ||
                    (r = sd_bus_message_append(m, "i", (int32_t) s->family)) < 0 ||
                    (r = sd_bus_message_append_array(m, 'y', s->addr, s->family == AF_INET ? 4 : 16)) < 0)
                        return r;
                if (ex && (r = sd_bus_message_append(m, "qs", s->port ? s->port : (uint16_t) 53, "")) < 0)
                        return r;
                if ((r = sd_bus_message_close_container(m)) < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

/* Never 0: an error reply is a failure even when its name maps to no errno. */
static int bus_errno(const sd_bus_error *e) {
        int r = sd_bus_error_get_errno(e);
        return r > 0 ? r : EIO;
}

static int step_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error);
static void run_step(struct resolved_link *l);

static int retry_fire(sd_event_source *s, uint64_t usec, void *userdata) {
        struct resolved_link *l = userdata;
        l->retry = sd_event_source_unref(l->retry);
        l->step = STEP_DOMAINS;
        run_step(l);
        return 0;
}

static void cancel(struct resolved_link *l) {
        l->call = sd_bus_slot_unref(l->call);
        l->retry = sd_event_source_disable_unref(l->retry);
}

static void run_step(struct resolved_link *l) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        const struct dns_config *c = &l->config;
        bool ex = need_dns_ex(c);
        const char *method = l->step == STEP_DNS && ex ? "SetLinkDNSEx" : step_method[l->step];
        int r;

        r = sd_bus_message_new_method_call(l->bus, &m, RESOLVE_NAME, RESOLVE_PATH, RESOLVE_MANAGER, method);
        if (r < 0)
                goto fail;
        if (l->step != STEP_FLUSH && (r = sd_bus_message_append(m, "i", (int32_t) l->ifindex)) < 0)
                goto fail;
        switch (l->step) {
        case STEP_DOMAINS:
                r = append_domains(m, c);
                break;
        case STEP_DEFAULT_ROUTE:
                r = sd_bus_message_append(m, "b", c->n_servers > 0 && !split_dns(c));
                break;
        case STEP_DNS:
                r = append_servers(m, c, ex);
                break;
        case STEP_LLMNR:
        case STEP_MDNS:
                r = sd_bus_message_append(m, "s", "no");
                break;
        default:
                r = 0;
        }
        if (r < 0)
                goto fail;
        r = sd_bus_call_async(l->bus, &l->call, m, step_reply, l, 0);
        if (r < 0)
                goto fail;
        return;
fail:
        finish(l, RESOLVED_LINK_APPLY, r, method, NULL);
}

static int step_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct resolved_link *l = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *method = l->step == STEP_DNS && need_dns_ex(&l->config) ? "SetLinkDNSEx" : step_method[l->step];
        int r;

        l->call = sd_bus_slot_unref(l->call);
        if (e) {
                if (sd_bus_error_has_name(e, "org.freedesktop.resolve1.NoSuchLink") &&
                    l->retry_spent < RETRY_BUDGET_USEC) {
                        uint64_t delay = l->retry_delay ? l->retry_delay : RETRY_FIRST_USEC;
                        if (delay > RETRY_BUDGET_USEC - l->retry_spent)
                                delay = RETRY_BUDGET_USEC - l->retry_spent;
                        l->retry_spent += delay;
                        l->retry_delay = delay * 2;
                        r = sd_event_add_time_relative(l->event, &l->retry, CLOCK_MONOTONIC, delay, 0, retry_fire, l);
                        if (r >= 0)
                                return 0;
                        finish(l, RESOLVED_LINK_APPLY, r, method, NULL);
                        return 0;
                }
                finish(l, RESOLVED_LINK_APPLY, -bus_errno(e), method, e);
                return 0;
        }
        if (l->step <= STEP_DNS)
                l->applied = true;
        l->step++;
        if (l->step == STEP_DONE) {
                l->retry_delay = l->retry_spent = 0;
                finish(l, RESOLVED_LINK_APPLY, 0, method, NULL);
                return 0;
        }
        run_step(l);
        return 0;
}

static void start(struct resolved_link *l) {
        cancel(l);
        l->retry_delay = l->retry_spent = 0;
        l->step = STEP_DOMAINS;
        run_step(l);
}

static int owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct resolved_link *l = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (strcmp(name, RESOLVE_NAME) != 0)
                return 0;
        if (!*new_owner) {
                /* resolved went away: whatever it held is gone; the call in flight fails on its own. */
                l->applied = false;
                return 0;
        }
        if (l->have_config)
                start(l);
        return 0;
}

int resolved_link_new(struct resolved_link **ret, sd_bus *bus, sd_event *event, int ifindex,
                      const char *ifname, resolved_link_handler_t handler, void *userdata) {
        struct resolved_link *l;
        int r;

        if (!ret || !bus || !event || ifindex <= 0)
                return -EINVAL;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->bus = sd_bus_ref(bus);
        l->event = sd_event_ref(event);
        l->ifindex = ifindex;
        l->handler = handler;
        l->userdata = userdata;
        if (ifname && !(l->ifname = strdup(ifname))) {
                resolved_link_free(l);
                return -ENOMEM;
        }
        r = sd_bus_add_match_async(bus, &l->owner_match,
                                   "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                   "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                                   "arg0='" RESOLVE_NAME "'",
                                   owner_changed, NULL, l);
        if (r < 0) {
                resolved_link_free(l);
                return r;
        }
        *ret = l;
        return 0;
}

int resolved_link_apply(struct resolved_link *l, const struct dns_config *c) {
        struct dns_config copy;
        int r;

        if (!l || !c)
                return -EINVAL;
        for (size_t i = 0; i < c->n_servers; i++)
                if (c->servers[i].family != AF_INET && c->servers[i].family != AF_INET6)
                        return -EINVAL;
        if ((r = config_copy(&copy, c)) < 0)
                return r;
        dns_config_free(&l->config);
        l->config = copy;
        l->have_config = true;
        start(l);
        return 0;
}

static int revert_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct resolved_link *l = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        l->call = sd_bus_slot_unref(l->call);
        if (e && !sd_bus_error_has_name(e, "org.freedesktop.resolve1.NoSuchLink")) {
                finish(l, RESOLVED_LINK_REVERT, -bus_errno(e), "RevertLink", e);
                return 0;
        }
        l->applied = false;
        finish(l, RESOLVED_LINK_REVERT, 0, "RevertLink", NULL);
        return 0;
}

int resolved_link_revert(struct resolved_link *l) {
        int r;

        if (!l)
                return -EINVAL;
        cancel(l);
        l->have_config = false;
        dns_config_free(&l->config);
        r = sd_bus_call_method_async(l->bus, &l->call, RESOLVE_NAME, RESOLVE_PATH, RESOLVE_MANAGER, "RevertLink",
                                     revert_reply, l, "i", (int32_t) l->ifindex);
        if (r < 0)
                finish(l, RESOLVED_LINK_REVERT, r, "RevertLink", NULL);
        return 0;
}

struct resolved_link *resolved_link_free(struct resolved_link *l) {
        if (!l)
                return NULL;
        cancel(l);
        if (l->applied || l->have_config)
                /* Floating: nobody waits for the reply. */
                (void) sd_bus_call_method_async(l->bus, NULL, RESOLVE_NAME, RESOLVE_PATH, RESOLVE_MANAGER,
                                                "RevertLink", NULL, NULL, "i", (int32_t) l->ifindex);
        sd_bus_slot_unref(l->owner_match);
        dns_config_free(&l->config);
        sd_bus_unref(l->bus);
        sd_event_unref(l->event);
        free(l->ifname);
        free(l);
        return NULL;
}
