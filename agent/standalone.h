/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * The tunnel backend of standalone mode: a Start naming the configuration
 * (file://PATH, see tunnel_set_config_url) loads PATH and the CODERVPND_* environment
 * and runs the engine; Stop frees it (which removes everything); reload (SIGHUP) loads
 * the file again and applies the difference, keeping the running state when the file is
 * invalid. A Start naming a Coder URL is refused: the control plane is not here yet.
 */
#include <stdbool.h>
#include <systemd/sd-event.h>

#include "tunnel.h"

extern const struct tunnel_backend standalone_backend;

struct standalone;

/*
 * @config_path NULL: the environment only. @exit_on_failure: a failed Start ends @event's
 * loop. @network_by_manager: the manager that sent Start applies the NetworkSettingsRequest
 * (sent to it as an RPC; its failure response fails the Start with its message).
 */
int standalone_new(struct standalone **ret, sd_event *event, const char *config_path, bool exit_on_failure,
                   bool network_by_manager);
struct standalone *standalone_free(struct standalone *s);
static inline void standalone_freep(struct standalone **s) {
        if (*s)
                standalone_free(*s);
}
/* "file://" + the path, for tunnel_set_config_url. */
const char *standalone_url(const struct standalone *s);

/* SIGHUP. 0 when applied (or nothing runs), else -errno after logging why. */
int standalone_reload(struct standalone *s);
