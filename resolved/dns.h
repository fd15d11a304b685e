/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * The DNS configuration the tunnel wants for its link, whoever applies it:
 * systemd-resolved over D-Bus (resolved.h), or resolvconf / /etc/resolv.conf
 * where resolved is not the system's resolver (resolvconf.h).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dns_server {
        uint8_t family;        /* AF_INET or AF_INET6 */
        uint8_t addr[16];      /* 4 or 16 bytes used */
        uint16_t port;         /* 0: 53 */
};

struct dns_config {
        struct dns_server *servers;
        size_t n_servers;
        char **search_domains;          /* no trailing dot */
        size_t n_search_domains;
        char **match_domains;           /* routing-only: only these names go to the link */
        size_t n_match_domains;
        bool match_domains_no_search;   /* false: match domains are search domains too */
};

void dns_config_free(struct dns_config *c);
