/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * The NetworkSettingsRequest a standalone configuration stands for, in the shape Coder's
 * tunnel sends: the interface's addresses (IPv4 with dotted masks, IPv6 with prefix
 * lengths) and the DNS responder's (as host addresses, so queries to them are local), one included route per peer allowed IP (host bits cleared, duplicates
 * dropped), the MTU, and DNS (the responder's addresses as servers, the domains as
 * match domains that are search domains too) unless DNS is off or has no address.
 * Both families are always present (empty when unused), so that merging it replaces
 * whatever an earlier request set. Whoever applies it — codervpnd or a manager — merges
 * it the same way.
 */
#include "config.h"
#include "vpn.pb-c.h"

/* *@ret: free with protobuf_c_message_free_unpacked(&(*ret)->base, NULL). 0 or -ENOMEM. */
int nsbuild_from_config(const struct config *c, Vpn__NetworkSettingsRequest **ret);
