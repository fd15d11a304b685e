/* SPDX-License-Identifier: MIT */
#pragma once
/* Presenting a PeerUpdate to people (a table) and to scripts (JSON). */
#include <stdio.h>
#include <time.h>
#include <json-c/json.h>

#include "vpn.pb-c.h"

/* "never", "12s ago", "3m ago", "2h ago" for the handshake at @ts as of @now. */
void peers_format_age(const Google__Protobuf__Timestamp *ts, time_t now, char *buf, size_t size);

/* One line per agent: WORKSPACE AGENT STATUS ADDRESS HANDSHAKE LATENCY PATH. */
void peers_print_table(FILE *f, const Vpn__PeerUpdate *u, time_t now);

/* {"workspaces":[...],"agents":[...]} with upserts (and deletions, if any). Caller puts it. */
json_object *peers_to_json(const Vpn__PeerUpdate *u);

const char *peers_workspace_status_name(Vpn__Workspace__Status status);
