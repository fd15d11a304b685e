/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * The tunnel role: one lifecycle (stopped -> starting -> started -> stopping ->
 * stopped) shared by every attached connection. Managers (tunnel role) send
 * Start/Stop/Wake/GetPeerUpdate and receive Log and PeerUpdate; desktop clients
 * (service role) send Start/Stop/Status and receive Status on every change.
 *
 * Start and Stop are handled one at a time, in arrival order; queries are
 * answered at once. What actually brings the VPN up is the backend.
 */
#include <stdbool.h>
#include <systemd/sd-event.h>

#include "speaker.h"
#include "vpn.pb-c.h"

enum tunnel_state {
        TUNNEL_STOPPED,
        TUNNEL_STARTING,
        TUNNEL_STARTED,
        TUNNEL_STOPPING,
};

struct tunnel;

struct tunnel_header {
        const char *name;
        const char *value;
};

/* A validated StartRequest, in the shape the control plane will use. */
struct tunnel_start {
        const char *coder_url;
        const char *api_token;             /* secret: never log it */
        const struct tunnel_header *headers;  /* the request's, then Coder-Desktop-Telemetry */
        size_t n_headers;
};

struct tunnel_backend {
        /*
         * Bring the VPN up. Must lead to exactly one tunnel_start_done(), possibly
         * before returning. @params lives only during this call: copy what is kept.
         */
        void (*start)(struct tunnel *t, const struct tunnel_start *params, void *userdata);
        /* Tear it down. Must lead to exactly one tunnel_stop_done(). */
        void (*stop)(struct tunnel *t, void *userdata);
        /* The host woke up: re-bind sockets. Optional. */
        void (*wake)(struct tunnel *t, void *userdata);
        /* Fill @out with every current workspace and agent (upserts only). Optional. */
        int (*snapshot)(struct tunnel *t, Vpn__PeerUpdate *out, void *userdata);
        /* Free what snapshot() put into @out. Optional. */
        void (*snapshot_free)(struct tunnel *t, Vpn__PeerUpdate *out, void *userdata);
};

/* Until the network engine and the control plane exist: Start fails, saying so. */
extern const struct tunnel_backend tunnel_backend_unimplemented;

int tunnel_new(struct tunnel **ret, sd_event *event, const struct tunnel_backend *backend, void *userdata);
struct tunnel *tunnel_free(struct tunnel *t);
static inline void tunnel_freep(struct tunnel **t) {
        if (*t)
                tunnel_free(*t);
}

/*
 * Serves @s (a tunnel- or service-role speaker created with tunnel_speaker_ops
 * and the tunnel as userdata). The tunnel takes over the caller's reference.
 */
extern const struct speaker_ops tunnel_speaker_ops;
void tunnel_attach(struct tunnel *t, struct speaker *s);

/* Called once a connection is gone (e.g. to end `codervpnd run`). */
typedef void (*tunnel_detached_fn)(struct tunnel *t, struct speaker *s, void *userdata);
void tunnel_set_detached_callback(struct tunnel *t, tunnel_detached_fn fn, void *userdata);

void tunnel_start_done(struct tunnel *t, const char *error_message);
void tunnel_stop_done(struct tunnel *t, const char *error_message);

/*
 * Standalone mode: a Start whose coder_url is exactly @url (file:///path/of/the/config)
 * is accepted without a token and handed to the backend as it is. NULL: none.
 */
int tunnel_set_config_url(struct tunnel *t, const char *url);
/*
 * Sends @req to the manager whose Start runs (or ran) the tunnel, for managers that
 * configure the network themselves; @done gets NULL or the reason it failed (the
 * manager's error_message). -ENOTCONN when that manager is gone or there is none.
 */
typedef void (*tunnel_network_done_fn)(struct tunnel *t, const char *error, void *userdata);
int tunnel_request_network_settings(struct tunnel *t, const Vpn__NetworkSettingsRequest *req,
                                    tunnel_network_done_fn done, void *userdata);

/* Queues a Start of the config URL on behalf of codervpnd itself (`codervpnd up`). */
int tunnel_start_local(struct tunnel *t);

/* Stops the lifecycle if it is up (e.g. on SIGTERM), then calls @done. */
void tunnel_shutdown(struct tunnel *t, void (*done)(struct tunnel *t, void *userdata), void *userdata);

enum tunnel_state tunnel_get_state(const struct tunnel *t);
const char *tunnel_state_name(enum tunnel_state state);
size_t tunnel_n_connections(const struct tunnel *t);

/* Sends PeerUpdate @update to every manager (e.g. when the engine sees a change). */
void tunnel_broadcast_peer_update(struct tunnel *t, Vpn__PeerUpdate *update);

/*
 * Checks a StartRequest the way the Go tunnel does, plus header sanity.
 * Returns 0, or -EINVAL with *error set to a message for the manager.
 */
int tunnel_validate_start(const Vpn__StartRequest *req, const char **error);

/*
 * The Coder-Desktop-Telemetry header value for @req, or NULL when none of
 * device_id/device_os/coder_desktop_version is set. Caller frees.
 */
int tunnel_telemetry_header(const Vpn__StartRequest *req, char **ret);
