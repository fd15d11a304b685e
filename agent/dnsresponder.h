/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * The built-in DNS responder: UDP sockets on the tunnel's DNS address(es), on the
 * caller's sd-event loop, answering from a name table (dnswire.h says how).
 *
 * Sockets: one per address, SOCK_DGRAM|SOCK_NONBLOCK|SOCK_CLOEXEC, SO_REUSEADDR,
 * IP_FREEBIND / IPV6_FREEBIND (so it can bind before the address is on the link),
 * IPV6_V6ONLY for IPv6. No rate limiting; each wake-up handles at most
 * DNS_RESPONDER_BATCH datagrams per socket, then yields to the loop (the source stays
 * armed, so the rest is read on the next iteration). A reply that cannot be sent at once
 * (EAGAIN) is dropped, as UDP allows; the client retries.
 *
 * dns_responder_set_names / set_zones build a new immutable table and swap it in; on
 * failure the old one stays.
 */
#include <stddef.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "dnswire.h"

#define DNS_RESPONDER_BATCH 64

struct dns_responder;

/* Binds every address in @addrs (AF_INET or AF_INET6; port 0 picks one). */
int dns_responder_new(sd_event *event, const struct sockaddr_storage *addrs, size_t n_addrs,
                      struct dns_responder **ret);
struct dns_responder *dns_responder_free(struct dns_responder *r);

int dns_responder_set_names(struct dns_responder *r, const struct dns_entry *entries, size_t n);
int dns_responder_set_zones(struct dns_responder *r, const char *const *match_domains, size_t n);

/* The address socket @i is bound to (with the port the kernel chose). */
int dns_responder_local_address(const struct dns_responder *r, size_t i,
                                struct sockaddr_storage *ret);
size_t dns_responder_n_sockets(const struct dns_responder *r);

/* Counters, for tests and status. */
struct dns_responder_stats {
        unsigned long long received, answered, dropped, send_errors;
};
void dns_responder_get_stats(const struct dns_responder *r, struct dns_responder_stats *ret);

static inline void dns_responder_freep(struct dns_responder **r) {
        if (*r)
                dns_responder_free(*r);
}
