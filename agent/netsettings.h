/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * NetworkSettingsRequest as the tunnel sends it: partial updates merged into
 * one current view (DNS only if present, MTU only if non-zero, IPv4 or IPv6
 * only if present), and that view checked and converted into what netlink/
 * applies. Errors name the offending field, e.g. "ipv4_settings.addrs[1]: ...".
 */
#include "apply.h"
#include "dns.h"
#include "vpn.pb-c.h"

/*
 * The view after @update on top of @state (NULL: nothing yet), as a new message
 * in *@ret; @state is not changed. 0 or -ENOMEM.
 */
int netsettings_merge(const Vpn__NetworkSettingsRequest *state, const Vpn__NetworkSettingsRequest *update,
                      Vpn__NetworkSettingsRequest **ret);

/*
 * Checks every field of @req and fills @out (free with net_desired_free).
 * Returns 0, or -EINVAL with *@error set (free it); nothing is filled then.
 */
int netsettings_to_desired(const Vpn__NetworkSettingsRequest *req, struct net_desired *out, char **error);

/*
 * Checks @d (servers: plain IPv4/IPv6 addresses; search and match domains: DNS
 * names, one trailing dot stripped) and fills @out (free with dns_config_free).
 * domain_name is not used (Coder sends the same name as a match domain).
 * Returns 0, or -EINVAL with *@error set naming the field
 * ("dns_settings.servers[1]: ..."), or -ENOMEM; nothing is filled on failure.
 */
int netsettings_to_dns(const Vpn__NetworkSettingsRequest__DNSSettings *d, struct dns_config *out, char **error);
