/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * What managers see of a standalone configuration: a PeerUpdate with a workspace per
 * distinct Workspace= (or WorkspaceID=) and an agent per peer, and the name table the
 * DNS responder answers from.
 *
 * IDs: WorkspaceID=/AgentID= when set (UUIDs), else 16 bytes of BLAKE2b over the
 * workspace name (or "workspace-less") and over the peer's public key: stable across
 * restarts, so managers keep their view. An agent's addresses are its peer's host
 * allowed IPs (/32, /128); its names are the peer's Name= values.
 */
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "dnswire.h"
#include "vpn.pb-c.h"

struct peerupdate_path {
        bool known;                 /* false: nothing measured yet */
        bool direct;
        int derp_region;            /* 0: none */
        uint64_t derp_latency_usec; /* 0: not measured */
        int64_t last_handshake_sec; /* 0: never */
};

/*
 * Fills @out (initialised by the caller) with upserts for every peer of @c (@paths[i] is
 * peer i's) and, when @old is not NULL, deletions for the agents and workspaces of @old
 * that @c no longer has. 0 or -ENOMEM (then @out is left empty).
 */
int peerupdate_build(const struct config *c, const struct peerupdate_path *paths, const struct config *old,
                     Vpn__PeerUpdate *out);
/* Frees what peerupdate_build put into @u, not @u itself. */
void peerupdate_free_contents(Vpn__PeerUpdate *u);

struct peerupdate_names {
        struct dns_entry *entries;
        size_t n_entries;
        struct dns_address *addrs;  /* entries[i].addresses point in here */
};
int peerupdate_names(const struct config *c, struct peerupdate_names *out);
void peerupdate_names_freep(struct peerupdate_names *n);
