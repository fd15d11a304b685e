/* SPDX-License-Identifier: MIT */
/* The built-in DNS responder (see dnsresponder.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "dnsresponder.h"
#include "log.h"
#include "macro.h"

#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78
#endif

struct dns_socket {
        struct dns_responder *responder;
        int fd;
        sd_event_source *source;
        struct sockaddr_storage local;
};

struct dns_responder {
        sd_event *event;
        struct dns_socket *sockets;
        size_t n_sockets;
        struct dns_names *names;
        struct dns_zones *zones;
        struct dns_responder_stats stats;
};

static int on_readable(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct dns_socket *sk = userdata;
        struct dns_responder *r = sk->responder;
        uint8_t in[4096], out[DNS_EDNS_UDP_MAX];

        for (unsigned i = 0; i < DNS_RESPONDER_BATCH; i++) {
                struct sockaddr_storage peer;
                struct iovec iov = { .iov_base = in, .iov_len = sizeof(in) };
                struct msghdr mh = {
                        .msg_name = &peer, .msg_namelen = sizeof(peer),
                        .msg_iov = &iov, .msg_iovlen = 1,
                };
                ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);

                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        /* ICMP errors from earlier sends (ECONNREFUSED etc.) surface here. */
                        log_debug_errno(errno, "dns: recvmsg");
                        continue;
                }
                r->stats.received++;
                if (mh.msg_flags & MSG_TRUNC) {
                        r->stats.dropped++;
                        continue;
                }
                size_t len = dns_respond(r->names, r->zones, in, (size_t) n, out, sizeof(out));
                if (len == 0) {
                        r->stats.dropped++;
                        continue;
                }
                if (sendto(fd, out, len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *) &peer,
                           mh.msg_namelen) < 0) {
                        r->stats.send_errors++;
                        log_debug_errno(errno, "dns: sendto");
                        continue;
                }
                r->stats.answered++;
        }
        return 0;
}

static int open_socket(const struct sockaddr_storage *a, struct sockaddr_storage *local) {
        _cleanup_close_ int fd = -1;
        socklen_t len;
        int one = 1;

        if (a->ss_family == AF_INET)
                len = sizeof(struct sockaddr_in);
        else if (a->ss_family == AF_INET6)
                len = sizeof(struct sockaddr_in6);
        else
                return -EAFNOSUPPORT;
        fd = socket(a->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
                return -errno;
        if (a->ss_family == AF_INET) {
                if (setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one)) < 0)
                        return -errno;
        } else {
                if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
                        return -errno;
                /* IPV6_FREEBIND is Linux 4.15+; IP_FREEBIND works on v6 sockets too. */
                if (setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one)) < 0 &&
                    setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one)) < 0)
                        return -errno;
        }
        if (bind(fd, (const struct sockaddr *) a, len) < 0)
                return -errno;
        len = sizeof(*local);
        if (getsockname(fd, (struct sockaddr *) local, &len) < 0)
                return -errno;
        return TAKE_FD(fd);
}

struct dns_responder *dns_responder_free(struct dns_responder *r) {
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n_sockets; i++) {
                sd_event_source_disable_unref(r->sockets[i].source);
                closep(&r->sockets[i].fd);
        }
        free(r->sockets);
        dns_names_free(r->names);
        dns_zones_free(r->zones);
        sd_event_unref(r->event);
        free(r);
        return NULL;
}

int dns_responder_new(sd_event *event, const struct sockaddr_storage *addrs, size_t n_addrs,
                      struct dns_responder **ret) {
        _cleanup_(dns_responder_freep) struct dns_responder *r = NULL;
        int k;

        if (!event || !ret || (n_addrs > 0 && !addrs))
                return -EINVAL;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->event = sd_event_ref(event);
        r->sockets = calloc(n_addrs ? n_addrs : 1, sizeof(*r->sockets));
        if (!r->sockets)
                return -ENOMEM;
        k = dns_names_new(NULL, 0, &r->names);
        if (k < 0)
                return k;
        k = dns_zones_new(NULL, 0, &r->zones);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n_addrs; i++) {
                struct dns_socket *sk = &r->sockets[i];

                sk->responder = r;
                sk->fd = open_socket(&addrs[i], &sk->local);
                if (sk->fd < 0)
                        return log_error_errno(sk->fd, "dns: cannot listen on address %zu", i);
                r->n_sockets++;
                k = sd_event_add_io(event, &sk->source, sk->fd, EPOLLIN, on_readable, sk);
                if (k < 0)
                        return log_error_errno(k, "dns: sd_event_add_io");
        }
        *ret = TAKE_PTR(r);
        return 0;
}

int dns_responder_set_names(struct dns_responder *r, const struct dns_entry *entries, size_t n) {
        struct dns_names *names;
        int k = dns_names_new(entries, n, &names);

        if (k < 0)
                return k;
        dns_names_free(r->names);
        r->names = names;
        log_debug("dns: %zu names", dns_names_count(names));
        return 0;
}

int dns_responder_set_zones(struct dns_responder *r, const char *const *match_domains, size_t n) {
        struct dns_zones *zones;
        int k = dns_zones_new(match_domains, n, &zones);

        if (k < 0)
                return k;
        dns_zones_free(r->zones);
        r->zones = zones;
        return 0;
}

size_t dns_responder_n_sockets(const struct dns_responder *r) {
        return r->n_sockets;
}

int dns_responder_local_address(const struct dns_responder *r, size_t i,
                                struct sockaddr_storage *ret) {
        if (i >= r->n_sockets)
                return -ENOENT;
        *ret = r->sockets[i].local;
        return 0;
}

void dns_responder_get_stats(const struct dns_responder *r, struct dns_responder_stats *ret) {
        *ret = r->stats;
}
