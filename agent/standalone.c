/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "engine.h"
#include "log.h"
#include "macro.h"
#include "standalone.h"

extern char **environ;

struct standalone {
        sd_event *event;
        bool exit_on_failure;
        bool network_by_manager;
        char *path;              /* NULL: the environment only */
        char *url;
        struct tunnel *tunnel;
        struct engine *engine;
        bool starting;
};

static int load(const struct standalone *s, struct config **ret, char **error) {
        char buf[CONFIG_ERROR_MAX];
        int r = config_load(s->path, environ, ret, buf, sizeof(buf));
        if (r < 0)
                *error = strdup(buf);
        return r;
}

static void on_peer_update(struct engine *e, Vpn__PeerUpdate *u, void *userdata) {
        struct standalone *s = userdata;
        tunnel_broadcast_peer_update(s->tunnel, u);
}

static void on_ready(struct engine *e, const char *error, void *userdata) {
        struct standalone *s = userdata;

        if (!s->starting)
                return;
        s->starting = false;
        tunnel_start_done(s->tunnel, error);
        if (error && s->exit_on_failure)
                sd_event_exit(s->event, 1);
}

static void on_network_done(struct tunnel *t, const char *error, void *userdata) {
        struct standalone *s = userdata;

        if (!s->engine)
                return;
        engine_network_done(s->engine, error);
        if (error && !s->starting && tunnel_get_state(t) != TUNNEL_STARTED)
                s->engine = engine_free(s->engine);   /* the failed Start leaves nothing */
}

static int on_apply_network(struct engine *e, const Vpn__NetworkSettingsRequest *req, void *userdata) {
        struct standalone *s = userdata;
        return tunnel_request_network_settings(s->tunnel, req, on_network_done, s);
}

static const struct engine_callbacks engine_callbacks = {
        .peer_update = on_peer_update,
        .ready = on_ready,
};

static const struct engine_callbacks engine_callbacks_manager_network = {
        .peer_update = on_peer_update,
        .ready = on_ready,
        .apply_network = on_apply_network,
};

static void backend_start(struct tunnel *t, const struct tunnel_start *params, void *userdata) {
        struct standalone *s = userdata;
        _cleanup_free_ char *error = NULL;
        struct config *c = NULL;
        int r;

        s->tunnel = t;
        s->starting = true;
        if (strcmp(params->coder_url, s->url) != 0) {
                on_ready(NULL, "not implemented: connecting to the Coder control plane; this codervpnd runs "
                               "standalone: Start with the configuration's URL instead", s);
                return;
        }
        if (load(s, &c, &error) < 0) {
                on_ready(NULL, error ?: "cannot load the configuration", s);
                return;
        }
        r = engine_new(s->event, c, s->network_by_manager ? &engine_callbacks_manager_network : &engine_callbacks,
                       s, &s->engine, &error);
        if (r < 0)
                on_ready(NULL, error ?: strerror(-r), s);
}

static void backend_stop(struct tunnel *t, void *userdata) {
        struct standalone *s = userdata;

        s->engine = engine_free(s->engine);
        tunnel_stop_done(t, NULL);
}

static int backend_snapshot(struct tunnel *t, Vpn__PeerUpdate *out, void *userdata) {
        struct standalone *s = userdata;
        return s->engine ? engine_snapshot(s->engine, out) : 0;
}

static void backend_snapshot_free(struct tunnel *t, Vpn__PeerUpdate *out, void *userdata) {
        engine_snapshot_free(out);
}

const struct tunnel_backend standalone_backend = {
        .start = backend_start,
        .stop = backend_stop,
        .snapshot = backend_snapshot,
        .snapshot_free = backend_snapshot_free,
};

int standalone_new(struct standalone **ret, sd_event *event, const char *config_path, bool exit_on_failure,
                   bool network_by_manager) {
        _cleanup_(standalone_freep) struct standalone *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(event);
        s->exit_on_failure = exit_on_failure;
        s->network_by_manager = network_by_manager;
        if (config_path && !(s->path = strdup(config_path)))
                return -ENOMEM;
        if (asprintf(&s->url, "file://%s", config_path ?: "") < 0) {
                s->url = NULL;
                return -ENOMEM;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

struct standalone *standalone_free(struct standalone *s) {
        if (!s)
                return NULL;
        engine_free(s->engine);
        sd_event_unref(s->event);
        free(s->path);
        free(s->url);
        free(s);
        return NULL;
}

const char *standalone_url(const struct standalone *s) {
        return s->url;
}

int standalone_reload(struct standalone *s) {
        _cleanup_free_ char *error = NULL;
        struct config *c = NULL;
        int r;

        if (!s->engine) {
                log_info("Reload requested; nothing is running");
                return 0;
        }
        if ((r = load(s, &c, &error)) < 0) {
                log_error("Not reloading: %s; the running configuration stays", error ?: "invalid configuration");
                return r;
        }
        if ((r = engine_reload(s->engine, c, &error)) < 0) {
                log_error("Reload failed: %s", error ?: strerror(-r));
                return r;
        }
        return 0;
}
