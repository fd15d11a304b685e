/* SPDX-License-Identifier: MIT */
/*
 * dnsresponder-tool: agent/dnsresponder on the command line, for tests.
 *
 *   dnsresponder-tool --listen ADDR:PORT [--listen ...] [--zone ZONE]...
 *                     [--name FQDN=IP[,IP...]]...
 *
 * ADDR:PORT is 127.0.0.1:5353 or [::1]:5353 (port 0: the kernel picks one). Once every
 * socket is bound it prints "listening ADDR:PORT" per socket and then "ready" on stdout,
 * and serves until SIGTERM or SIGINT. On SIGHUP it prints its counters
 * ("stats received=N answered=N dropped=N send_errors=N").
 *
 * Exit status: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <systemd/sd-event.h>

#include "dnsresponder.h"
#include "log.h"
#include "macro.h"

static const char *prog = "dnsresponder-tool";

static void usage(FILE *f) {
        fprintf(f, "usage: %s --listen ADDR:PORT [--listen ...] [--zone ZONE]... "
                   "[--name FQDN=IP[,IP...]]...\n", prog);
}

static int parse_listen(const char *s, struct sockaddr_storage *ss) {
        char host[INET6_ADDRSTRLEN + 2];
        const char *colon, *h = s;
        size_t hl;
        char *end;

        memset(ss, 0, sizeof(*ss));
        if (s[0] == '[') {
                const char *rb = strchr(s, ']');
                if (!rb || rb[1] != ':')
                        return -EINVAL;
                h = s + 1;
                hl = (size_t) (rb - h);
                colon = rb + 1;
        } else {
                colon = strrchr(s, ':');
                if (!colon)
                        return -EINVAL;
                hl = (size_t) (colon - s);
        }
        if (hl >= sizeof(host))
                return -EINVAL;
        memcpy(host, h, hl);
        host[hl] = 0;
        errno = 0;
        unsigned long port = strtoul(colon + 1, &end, 10);
        if (errno || *end || end == colon + 1 || port > 65535)
                return -EINVAL;
        struct sockaddr_in *in = (struct sockaddr_in *) ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ss;
        if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
                in->sin_family = AF_INET;
                in->sin_port = htons((uint16_t) port);
        } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t) port);
        } else
                return -EINVAL;
        return 0;
}

/* FQDN=IP[,IP...] into @e (fqdn points into @s, which is modified). */
static int parse_name(char *s, struct dns_entry *e) {
        char *eq = strchr(s, '=');
        struct dns_address *a;
        size_t n = 1;

        if (!eq)
                return -EINVAL;
        *eq = 0;
        for (char *p = eq + 1; *p; p++)
                n += *p == ',';
        a = calloc(n, sizeof(*a));
        if (!a)
                return -ENOMEM;
        e->fqdn = s;
        e->addresses = a;
        e->n_addresses = 0;
        if (!eq[1])
                return 0; /* FQDN= : a name with no addresses */
        for (char *tok = strtok(eq + 1, ","); tok; tok = strtok(NULL, ",")) {
                struct dns_address *x = &a[e->n_addresses];
                if (inet_pton(AF_INET, tok, &x->in) == 1)
                        x->family = AF_INET;
                else if (inet_pton(AF_INET6, tok, &x->in6) == 1)
                        x->family = AF_INET6;
                else
                        return -EINVAL;
                e->n_addresses++;
        }
        return 0;
}

static int on_hup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct dns_responder_stats st;

        dns_responder_get_stats(userdata, &st);
        printf("stats received=%llu answered=%llu dropped=%llu send_errors=%llu\n", st.received,
               st.answered, st.dropped, st.send_errors);
        fflush(stdout);
        return 0;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "listen", required_argument, NULL, 'l' },
                { "zone", required_argument, NULL, 'z' },
                { "name", required_argument, NULL, 'n' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_free_ struct sockaddr_storage *listen = calloc((size_t) argc, sizeof(*listen));
        _cleanup_free_ const char **zones = calloc((size_t) argc, sizeof(*zones));
        _cleanup_free_ struct dns_entry *entries = calloc((size_t) argc, sizeof(*entries));
        size_t n_listen = 0, n_zones = 0, n_entries = 0;
        _cleanup_(dns_responder_freep) struct dns_responder *r = NULL;
        sd_event *event = NULL;
        int c, k, ret = 1;

        if (!listen || !zones || !entries)
                return 1;
        log_open(LOG_TARGET_STDERR, LOG_DEBUG);
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
                switch (c) {
                case 'l':
                        if (parse_listen(optarg, &listen[n_listen]) < 0) {
                                fprintf(stderr, "%s: bad --listen %s\n", prog, optarg);
                                return 2;
                        }
                        n_listen++;
                        break;
                case 'z':
                        zones[n_zones++] = optarg;
                        break;
                case 'n':
                        if (parse_name(optarg, &entries[n_entries++]) < 0) {
                                fprintf(stderr, "%s: bad --name %s\n", prog, optarg);
                                return 2;
                        }
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        if (optind != argc || n_listen == 0) {
                usage(stderr);
                return 2;
        }

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        k = sd_event_default(&event);
        if (k < 0)
                goto out;
        k = dns_responder_new(event, listen, n_listen, &r);
        if (k < 0)
                goto out;
        k = dns_responder_set_zones(r, zones, n_zones);
        if (k < 0) {
                log_error_errno(k, "bad --zone");
                goto out;
        }
        k = dns_responder_set_names(r, entries, n_entries);
        if (k < 0) {
                log_error_errno(k, "bad --name");
                goto out;
        }
        if (sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL) < 0 ||
            sd_event_add_signal(event, NULL, SIGINT, NULL, NULL) < 0 ||
            sd_event_add_signal(event, NULL, SIGHUP, on_hup, r) < 0)
                goto out;
        for (size_t i = 0; i < dns_responder_n_sockets(r); i++) {
                struct sockaddr_storage ss;
                char host[INET6_ADDRSTRLEN];
                dns_responder_local_address(r, i, &ss);
                if (ss.ss_family == AF_INET) {
                        struct sockaddr_in *in = (struct sockaddr_in *) &ss;
                        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
                        printf("listening %s:%u\n", host, ntohs(in->sin_port));
                } else {
                        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;
                        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
                        printf("listening [%s]:%u\n", host, ntohs(in6->sin6_port));
                }
        }
        printf("ready\n");
        fflush(stdout);
        k = sd_event_loop(event);
        if (k >= 0)
                ret = 0;
out:
        r = dns_responder_free(r);
        sd_event_unref(event);
        for (size_t i = 0; i < n_entries; i++)
                free((void *) entries[i].addresses);
        return ret;
}
