/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * The control socket: a Unix stream socket on which managers (tunnel role) and
 * desktop clients (service role) connect to one tunnel. The socket is mode 0660,
 * owned by root and the configured group; every connection is checked again
 * with SO_PEERCRED (root, our own uid, or a member of the group).
 * A socket passed by systemd socket activation is used when present.
 */
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "tunnel.h"

#define SERVER_DEFAULT_SOCKET "/run/codervpnd/codervpnd.sock"
#define SERVER_DEFAULT_GROUP "codervpn"

struct server;

struct server_config {
        const char *path;
        const char *group;   /* NULL or missing: only root and our uid may connect */
};

int server_new(struct server **ret, sd_event *event, struct tunnel *tunnel, const struct server_config *config);
struct server *server_free(struct server *s);
static inline void server_freep(struct server **s) {
        if (*s)
                server_free(*s);
}
