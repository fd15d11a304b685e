/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * One link's DNS in systemd-resolved (org.freedesktop.resolve1), asynchronously
 * over sd-bus on the caller's sd-event loop; nothing here blocks.
 *
 * resolved_link_apply() sends, in the order RESOLVED-VPNS.md recommends:
 * SetLinkDomains, SetLinkDefaultRoute, SetLinkDNS (SetLinkDNSEx when a server
 * has a port other than 53), SetLinkLLMNR "no", SetLinkMulticastDNS "no",
 * FlushCaches. Split DNS (match domains): each as a routing-only "~domain"
 * (or a plain domain, which resolved also routes on, when the match domains
 * are search domains too), default route off. Servers and no match domains:
 * "~." and default route on. Search domains are plain domains.
 *
 * NoSuchLink (resolved has not seen the link yet) is retried from 50 ms,
 * doubling, for up to 5 s. The last configuration is re-sent whenever
 * org.freedesktop.resolve1 gets a new owner (resolved restarted).
 *
 * When resolved is not on the bus the apply fails (ServiceUnknown) and is
 * retried as soon as it appears.
 *
 * Completion and failure go to the handler with the error text (nothing is
 * logged here): r is 0 or -errno, error NULL on success. A failed apply is not
 * retried except as above; call resolved_link_apply() again to retry. The
 * handler must not free the link (defer that, e.g. with sd_event_add_defer).
 */
#include <stdbool.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "dns.h"

struct resolved_link;

enum resolved_link_op {
        RESOLVED_LINK_APPLY,    /* an apply (or a re-apply after a resolved restart) finished */
        RESOLVED_LINK_REVERT,   /* resolved_link_revert() finished */
};

typedef void (*resolved_link_handler_t)(struct resolved_link *l, enum resolved_link_op op, int r,
                                        const char *error, void *userdata);

/*
 * @bus must be attached to @event (sd_bus_attach_event). @ifname is only used
 * in messages (may be NULL). Returns 0 or -errno.
 */
int resolved_link_new(struct resolved_link **ret, sd_bus *bus, sd_event *event, int ifindex,
                      const char *ifname, resolved_link_handler_t handler, void *userdata);

/*
 * Copies @c and (re)starts applying it, cancelling whatever was in flight.
 * Returns 0 (the outcome goes to the handler) or -ENOMEM / -EINVAL.
 */
int resolved_link_apply(struct resolved_link *l, const struct dns_config *c);

/* Forgets the configuration (no more re-applies) and sends RevertLink; the handler gets REVERT. */
int resolved_link_revert(struct resolved_link *l);

/*
 * Sends RevertLink if a configuration was applied (not waiting for the reply:
 * flush the bus, e.g. sd_bus_flush_close_unref, before exiting) and frees @l.
 * Returns NULL.
 */
struct resolved_link *resolved_link_free(struct resolved_link *l);

/* The error text for a failed call of @method (exposed for tests). Returns a new string or NULL. */
char *resolved_error_message(const char *method, const char *ifname, int ifindex, const sd_bus_error *e, int r);
