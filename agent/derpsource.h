/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * Where a standalone configuration's DERP map comes from: [DERP] MapFile (tailcfg.DERPMap
 * JSON, at most DERPSOURCE_MAP_MAX bytes), or [DERP] URL, which stands for a map of one
 * region (DERPSOURCE_URL_REGION_ID, code "default") with one node: the URL's host (an
 * IPv4/IPv6 literal is used as the node's fixed address) and port, ForceHTTP for http://.
 */
#include "config.h"
#include "derpmap.h"

#define DERPSOURCE_MAP_MAX (4u * 1024 * 1024)
#define DERPSOURCE_URL_REGION_ID 1

/* On failure *@error (malloc'ed) names the file or the URL and what is wrong. */
int derpsource_load(const struct config *c, struct derp_map **ret, char **error);
