/* SPDX-License-Identifier: MIT */
#define LOG_COMPONENT "tunnel"
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <json-c/json.h>

#include "log.h"
#include "macro.h"
#include "message.h"
#include "tunnel.h"

#define TELEMETRY_HEADER "Coder-Desktop-Telemetry"
#define LOG_FORWARD_FIELDS_MAX 16

struct conn {
        struct conn *next;
        struct speaker *speaker;
};

/* A Start or Stop waiting its turn. speaker is NULL for our own shutdown. */
struct request {
        struct request *next;
        struct speaker *speaker;
        uint64_t id;
        ProtobufCMessage *msg;
        bool is_start;
        const Vpn__StartRequest *start;   /* inside msg */
};

struct tunnel {
        sd_event *event;
        sd_event_source *kick_source;
        enum tunnel_state state;
        char *last_error;

        const struct tunnel_backend *backend;
        void *backend_userdata;

        struct conn *conns;
        size_t n_conns;
        tunnel_detached_fn detached;
        void *detached_userdata;

        struct request *queue_head, **queue_tail;
        struct request *busy;     /* the Start or Stop the backend is working on */

        char *config_url;         /* standalone: the file:// URL a Start may name */
        struct speaker *starter;  /* the manager whose Start is running or ran */

        bool shutting_down;
        void (*shutdown_done)(struct tunnel *t, void *userdata);
        void *shutdown_userdata;
};

static const char *const state_names[] = {
        [TUNNEL_STOPPED] = "stopped",
        [TUNNEL_STARTING] = "starting",
        [TUNNEL_STARTED] = "started",
        [TUNNEL_STOPPING] = "stopping",
};

const char *tunnel_state_name(enum tunnel_state state) {
        return state_names[state];
}

enum tunnel_state tunnel_get_state(const struct tunnel *t) {
        return t->state;
}

size_t tunnel_n_connections(const struct tunnel *t) {
        return t->n_conns;
}

/* ---- Start validation ---------------------------------------------------------------- */

static bool is_token_char(char c) {
        return isalnum((unsigned char) c) || strchr("!#$%&'*+-.^_`|~", c);
}

int tunnel_validate_start(const Vpn__StartRequest *req, const char **error) {
        if (!req->coder_url || !*req->coder_url) {
                *error = "missing coder url";
                return -EINVAL;
        }

        CURLU *u = curl_url();
        if (!u) {
                *error = "out of memory";
                return -ENOMEM;
        }
        char *scheme = NULL, *host = NULL;
        bool ok = curl_url_set(u, CURLUPART_URL, req->coder_url, 0) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
                  (strcmp(scheme, "https") == 0 || strcmp(scheme, "http") == 0) && *host;
        curl_free(scheme);
        curl_free(host);
        curl_url_cleanup(u);
        if (!ok) {
                *error = "invalid coder url: want an http:// or https:// URL with a host";
                return -EINVAL;
        }

        if (!req->api_token || !*req->api_token) {
                *error = "missing api token";
                return -EINVAL;
        }
        if (strpbrk(req->api_token, "\r\n")) {
                *error = "invalid api token: contains a line break";
                return -EINVAL;
        }

        for (size_t i = 0; i < req->n_headers; i++) {
                const Vpn__StartRequest__Header *h = req->headers[i];
                const char *n = h->name ? h->name : "";
                if (!*n) {
                        *error = "invalid header: empty name";
                        return -EINVAL;
                }
                for (const char *c = n; *c; c++)
                        if (!is_token_char(*c)) {
                                *error = "invalid header: name is not an HTTP token";
                                return -EINVAL;
                        }
                if (h->value && strpbrk(h->value, "\r\n")) {
                        *error = "invalid header: value contains a line break";
                        return -EINVAL;
                }
        }
        *error = NULL;
        return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

int tunnel_telemetry_header(const Vpn__StartRequest *req, char **ret) {
        const char *id = req->device_id ?: "", *os = req->device_os ?: "",
                   *ver = req->coder_desktop_version ?: "";

        if (!*id && !*os && !*ver) {
                *ret = NULL;
                return 0;
        }
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        if (!o || json_object_object_add(o, "device_id", json_object_new_string(id)) < 0 ||
            json_object_object_add(o, "device_os", json_object_new_string(os)) < 0 ||
            json_object_object_add(o, "coder_desktop_version", json_object_new_string(ver)) < 0)
                return -ENOMEM;
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        *ret = s ? strdup(s) : NULL;
        return *ret ? 0 : -ENOMEM;
}

/* ---- Replies ------------------------------------------------------------------------- */

static void send_or_log(struct speaker *s, uint64_t id, ProtobufCMessage *m) {
        if (!s || !speaker_is_open(s))
                return;   /* the requester left; nobody to tell */
        int r = id ? speaker_reply(s, id, m) : speaker_send(s, m);
        if (r < 0)
                log_warning_errno(r, "Cannot send %s to %s", vpn_message_case_name(m), speaker_description(s));
}

/* StartResponse and StopResponse share their shape; so do the two roles' envelopes. */
static void reply_result(struct speaker *s, uint64_t id, bool is_start, const char *error) {
        Vpn__StartResponse start = VPN__START_RESPONSE__INIT;
        Vpn__StopResponse stop = VPN__STOP_RESPONSE__INIT;

        start.success = stop.success = error == NULL;
        start.error_message = stop.error_message = (char *) (error ?: "");

        if (!s)
                return;
        if (speaker_role(s) == VPN_ROLE_TUNNEL) {
                Vpn__TunnelMessage m = VPN__TUNNEL_MESSAGE__INIT;
                if (is_start) {
                        m.msg_case = VPN__TUNNEL_MESSAGE__MSG_START;
                        m.start = &start;
                } else {
                        m.msg_case = VPN__TUNNEL_MESSAGE__MSG_STOP;
                        m.stop = &stop;
                }
                send_or_log(s, id, &m.base);
        } else {
                Vpn__ServiceMessage m = VPN__SERVICE_MESSAGE__INIT;
                if (is_start) {
                        m.msg_case = VPN__SERVICE_MESSAGE__MSG_START;
                        m.start = &start;
                } else {
                        m.msg_case = VPN__SERVICE_MESSAGE__MSG_STOP;
                        m.stop = &stop;
                }
                send_or_log(s, id, &m.base);
        }
}

static void snapshot(struct tunnel *t, Vpn__PeerUpdate *out) {
        vpn__peer_update__init(out);
        if (t->backend->snapshot && t->backend->snapshot(t, out, t->backend_userdata) < 0)
                log_warning("Cannot build a peer snapshot; sending an empty one");
}

static void snapshot_free(struct tunnel *t, Vpn__PeerUpdate *out) {
        if (t->backend->snapshot_free)
                t->backend->snapshot_free(t, out, t->backend_userdata);
}

static const Vpn__Status__Lifecycle lifecycle_of[] = {
        [TUNNEL_STOPPED] = VPN__STATUS__LIFECYCLE__STOPPED,
        [TUNNEL_STARTING] = VPN__STATUS__LIFECYCLE__STARTING,
        [TUNNEL_STARTED] = VPN__STATUS__LIFECYCLE__STARTED,
        [TUNNEL_STOPPING] = VPN__STATUS__LIFECYCLE__STOPPING,
};

/* Status to one client (@id != 0, a reply) or to every client (@s NULL). */
static void send_status(struct tunnel *t, struct speaker *s, uint64_t id) {
        Vpn__ServiceMessage m = VPN__SERVICE_MESSAGE__INIT;
        Vpn__Status status = VPN__STATUS__INIT;
        Vpn__PeerUpdate peers;

        snapshot(t, &peers);
        status.lifecycle = lifecycle_of[t->state];
        status.error_message = t->last_error ?: "";
        status.peer_update = &peers;
        m.msg_case = VPN__SERVICE_MESSAGE__MSG_STATUS;
        m.status = &status;
        if (s)
                send_or_log(s, id, &m.base);
        else
                for (struct conn *c = t->conns; c; c = c->next)
                        if (speaker_role(c->speaker) == VPN_ROLE_SERVICE)
                                send_or_log(c->speaker, 0, &m.base);
        snapshot_free(t, &peers);
}

static void send_peer_update(struct speaker *s, uint64_t id, Vpn__PeerUpdate *update) {
        Vpn__TunnelMessage m = VPN__TUNNEL_MESSAGE__INIT;

        m.msg_case = VPN__TUNNEL_MESSAGE__MSG_PEER_UPDATE;
        m.peer_update = update;
        send_or_log(s, id, &m.base);
}

void tunnel_broadcast_peer_update(struct tunnel *t, Vpn__PeerUpdate *update) {
        for (struct conn *c = t->conns; c; c = c->next)
                if (speaker_role(c->speaker) == VPN_ROLE_TUNNEL)
                        send_peer_update(c->speaker, 0, update);
}

/* ---- Lifecycle ----------------------------------------------------------------------- */

static void set_state(struct tunnel *t, enum tunnel_state state) {
        if (t->state == state)
                return;
        log_info("Tunnel %s -> %s", state_names[t->state], state_names[state]);
        t->state = state;
        send_status(t, NULL, 0);
}

static void set_last_error(struct tunnel *t, const char *error) {
        free(t->last_error);
        t->last_error = error ? strdup(error) : NULL;
}

static void request_free(struct request *r) {
        if (!r)
                return;
        speaker_unref(r->speaker);
        if (r->msg)
                protobuf_c_message_free_unpacked(r->msg, NULL);
        free(r);
}

static void kick(struct tunnel *t) {
        sd_event_source_set_enabled(t->kick_source, SD_EVENT_ONESHOT);
}

static void finish_stop_reply(struct request *r, const char *error) {
        reply_result(r->speaker, r->id, false, error);
        /* A manager's Stop ends its stream: StopResponse is the last thing it reads. */
        if (r->speaker && speaker_role(r->speaker) == VPN_ROLE_TUNNEL)
                speaker_close_after_flush(r->speaker);
}

static void begin_start(struct tunnel *t, struct request *r) {
        _cleanup_free_ char *telemetry = NULL;
        _cleanup_free_ struct tunnel_header *headers = NULL;
        const Vpn__StartRequest *req = r->start;
        const char *error;

        if (t->shutting_down) {
                reply_result(r->speaker, r->id, true, "codervpnd is shutting down");
                request_free(r);
                return;
        }
        bool names_config = t->config_url && req->coder_url && strcmp(req->coder_url, t->config_url) == 0;
        if (!names_config && tunnel_validate_start(req, &error) < 0) {
                log_warning("Refusing Start from %s: %s", speaker_description(r->speaker), error);
                reply_result(r->speaker, r->id, true, error);
                request_free(r);
                return;
        }
        if (t->state == TUNNEL_STARTED) {
                log_warning("Start from %s while already started; keeping the running tunnel",
                            r->speaker ? speaker_description(r->speaker) : "codervpnd");
                reply_result(r->speaker, r->id, true, NULL);
                request_free(r);
                return;
        }

        headers = calloc(req->n_headers + 1, sizeof(*headers));
        if (!headers || tunnel_telemetry_header(req, &telemetry) < 0) {
                reply_result(r->speaker, r->id, true, "out of memory");
                request_free(r);
                return;
        }
        struct tunnel_start params = {
                .coder_url = req->coder_url,
                .api_token = req->api_token,
                .headers = headers,
        };
        for (size_t i = 0; i < req->n_headers; i++)
                headers[params.n_headers++] = (struct tunnel_header) {
                        req->headers[i]->name, req->headers[i]->value ?: ""
                };
        if (telemetry)
                headers[params.n_headers++] = (struct tunnel_header) { TELEMETRY_HEADER, telemetry };

        log_full_errno_fields(LOG_INFO, 0, LOG_FIELDS({ "CODER_URL", req->coder_url }),
                              "Starting for %s: %s", r->speaker ? speaker_description(r->speaker) : "codervpnd",
                              req->coder_url);
        t->busy = r;
        speaker_unref(t->starter);
        t->starter = r->speaker && speaker_role(r->speaker) == VPN_ROLE_TUNNEL ? speaker_ref(r->speaker) : NULL;
        set_last_error(t, NULL);
        set_state(t, TUNNEL_STARTING);
        t->backend->start(t, &params, t->backend_userdata);
}

static void begin_stop(struct tunnel *t, struct request *r) {
        if (t->state == TUNNEL_STOPPED) {
                finish_stop_reply(r, NULL);
                request_free(r);
                return;
        }
        log_info("Stopping for %s", r->speaker ? speaker_description(r->speaker) : "shutdown");
        t->busy = r;
        set_state(t, TUNNEL_STOPPING);
        t->backend->stop(t, t->backend_userdata);
}

static int on_kick(sd_event_source *source _unused_, void *userdata) {
        struct tunnel *t = userdata;

        while (!t->busy && t->queue_head) {
                struct request *r = t->queue_head;
                t->queue_head = r->next;
                if (!t->queue_head)
                        t->queue_tail = &t->queue_head;
                /* Whoever left, or ended its stream with Stop, no longer asks for anything. */
                if (r->speaker && !speaker_is_open(r->speaker)) {
                        log_debug("Dropping %s queued by %s, which is gone",
                                  r->is_start ? "Start" : "Stop", speaker_description(r->speaker));
                        request_free(r);
                        continue;
                }
                if (r->is_start)
                        begin_start(t, r);
                else
                        begin_stop(t, r);
        }
        if (!t->busy && !t->queue_head && t->shutting_down && t->shutdown_done) {
                void (*done)(struct tunnel *, void *) = t->shutdown_done;
                t->shutdown_done = NULL;
                done(t, t->shutdown_userdata);
        }
        return 0;
}

static void enqueue(struct tunnel *t, struct request *r) {
        r->next = NULL;
        *t->queue_tail = r;
        t->queue_tail = &r->next;
        kick(t);
}

void tunnel_start_done(struct tunnel *t, const char *error_message) {
        struct request *r = t->busy;

        t->busy = NULL;
        if (error_message) {
                log_error("Start failed: %s", error_message);
                set_last_error(t, error_message);
        }
        set_state(t, error_message ? TUNNEL_STOPPED : TUNNEL_STARTED);
        if (r) {
                reply_result(r->speaker, r->id, true, error_message);
                request_free(r);
        }
        kick(t);
}

void tunnel_stop_done(struct tunnel *t, const char *error_message) {
        struct request *r = t->busy;

        t->busy = NULL;
        if (error_message) {
                log_error("Stop failed: %s", error_message);
                set_last_error(t, error_message);
        }
        set_state(t, TUNNEL_STOPPED);
        if (r) {
                finish_stop_reply(r, error_message);
                request_free(r);
        }
        kick(t);
}

struct network_call {
        struct tunnel *tunnel;
        tunnel_network_done_fn done;
        void *userdata;
};

static void on_network_reply(struct speaker *s, int error, ProtobufCMessage *reply, void *userdata) {
        struct network_call *call = userdata;
        Vpn__ManagerMessage *m = (Vpn__ManagerMessage *) reply;
        const char *failure = NULL;

        if (error < 0)
                failure = "the manager went away before answering NetworkSettingsRequest";
        else if (m->msg_case != VPN__MANAGER_MESSAGE__MSG_NETWORK_SETTINGS)
                failure = "the manager answered NetworkSettingsRequest with something else";
        else if (!m->network_settings->success)
                failure = m->network_settings->error_message && *m->network_settings->error_message ?
                          m->network_settings->error_message : "the manager could not apply the network settings";
        call->done(call->tunnel, failure, call->userdata);
        if (reply)
                protobuf_c_message_free_unpacked(reply, NULL);
        free(call);
}

int tunnel_request_network_settings(struct tunnel *t, const Vpn__NetworkSettingsRequest *req,
                                    tunnel_network_done_fn done, void *userdata) {
        Vpn__TunnelMessage m = VPN__TUNNEL_MESSAGE__INIT;
        struct network_call *call;
        int r;

        if (!t->starter || !speaker_is_open(t->starter))
                return -ENOTCONN;
        if (!(call = malloc(sizeof(*call))))
                return -ENOMEM;
        *call = (struct network_call) { t, done, userdata };
        m.msg_case = VPN__TUNNEL_MESSAGE__MSG_NETWORK_SETTINGS;
        m.network_settings = (Vpn__NetworkSettingsRequest *) req;
        if ((r = speaker_request(t->starter, &m.base, on_network_reply, call)) < 0)
                free(call);
        return r;
}

int tunnel_set_config_url(struct tunnel *t, const char *url) {
        char *copy = url ? strdup(url) : NULL;

        if (url && !copy)
                return -ENOMEM;
        free(t->config_url);
        t->config_url = copy;
        return 0;
}

int tunnel_start_local(struct tunnel *t) {
        _cleanup_free_ struct request *r = calloc(1, sizeof(*r));
        Vpn__StartRequest *req = malloc(sizeof(*req));

        if (!r || !req || !t->config_url) {
                free(req);
                return t->config_url ? -ENOMEM : -EINVAL;
        }
        vpn__start_request__init(req);
        if (!(req->coder_url = strdup(t->config_url))) {
                free(req);
                return -ENOMEM;
        }
        r->msg = &req->base;
        r->start = req;
        r->is_start = true;
        enqueue(t, TAKE_PTR(r));
        return 0;
}

void tunnel_shutdown(struct tunnel *t, void (*done)(struct tunnel *t, void *userdata), void *userdata) {
        struct request *r = calloc(1, sizeof(*r));

        t->shutting_down = true;
        t->shutdown_done = done;
        t->shutdown_userdata = userdata;
        if (r)
                enqueue(t, r);   /* a Stop behind whatever is queued */
        else
                kick(t);
}

/* ---- Connections --------------------------------------------------------------------- */

static void queue_lifecycle(struct tunnel *t, struct speaker *s, uint64_t id, ProtobufCMessage *m,
                            const Vpn__StartRequest *start) {
        struct request *r = calloc(1, sizeof(*r));

        if (!r) {
                log_error_errno(ENOMEM, "Dropping %s from %s", vpn_message_case_name(m), speaker_description(s));
                protobuf_c_message_free_unpacked(m, NULL);
                return;
        }
        *r = (struct request) {
                .speaker = speaker_ref(s), .id = id, .msg = m, .is_start = start != NULL, .start = start,
        };
        enqueue(t, r);
}

static void on_manager_request(struct tunnel *t, struct speaker *s, Vpn__ManagerMessage *m, uint64_t id) {
        switch (m->msg_case) {
        case VPN__MANAGER_MESSAGE__MSG_START:
                queue_lifecycle(t, s, id, &m->base, m->start);
                return;
        case VPN__MANAGER_MESSAGE__MSG_STOP:
                queue_lifecycle(t, s, id, &m->base, NULL);
                return;
        case VPN__MANAGER_MESSAGE__MSG_GET_PEER_UPDATE: {
                Vpn__PeerUpdate peers;
                snapshot(t, &peers);
                send_peer_update(s, id, &peers);
                snapshot_free(t, &peers);
                break;
        }
        case VPN__MANAGER_MESSAGE__MSG_WAKE:
                if (!vpn_version_at_least(speaker_version(s), 1, 3)) {
                        log_warning("Ignoring Wake from %s: it negotiated %u.%u, Wake needs 1.3",
                                    speaker_description(s), speaker_version(s).major, speaker_version(s).minor);
                        break;
                }
                if (t->state == TUNNEL_STARTED && t->backend->wake)
                        t->backend->wake(t, t->backend_userdata);
                Vpn__TunnelMessage reply = VPN__TUNNEL_MESSAGE__INIT;
                Vpn__WakeResponse wake = VPN__WAKE_RESPONSE__INIT;
                reply.msg_case = VPN__TUNNEL_MESSAGE__MSG_WAKE;
                reply.wake = &wake;
                send_or_log(s, id, &reply.base);
                break;
        default:
                log_warning("Ignoring %s request from %s", vpn_message_case_name(&m->base), speaker_description(s));
                break;
        }
        protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void on_client_request(struct tunnel *t, struct speaker *s, Vpn__ClientMessage *m, uint64_t id) {
        switch (m->msg_case) {
        case VPN__CLIENT_MESSAGE__MSG_START:
                queue_lifecycle(t, s, id, &m->base, m->start);
                return;
        case VPN__CLIENT_MESSAGE__MSG_STOP:
                queue_lifecycle(t, s, id, &m->base, NULL);
                return;
        case VPN__CLIENT_MESSAGE__MSG_STATUS:
                send_status(t, s, id);
                break;
        default:
                log_warning("Ignoring %s request from %s", vpn_message_case_name(&m->base), speaker_description(s));
                break;
        }
        protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void on_message(struct speaker *s, ProtobufCMessage *m, uint64_t id, void *userdata) {
        struct tunnel *t = userdata;

        if (id == 0) {
                log_debug("Ignoring unsolicited %s from %s", vpn_message_case_name(m), speaker_description(s));
                protobuf_c_message_free_unpacked(m, NULL);
                return;
        }
        if (speaker_role(s) == VPN_ROLE_TUNNEL)
                on_manager_request(t, s, (Vpn__ManagerMessage *) m, id);
        else
                on_client_request(t, s, (Vpn__ClientMessage *) m, id);
}

static void on_closed(struct speaker *s, int error, void *userdata) {
        struct tunnel *t = userdata;

        for (struct conn **c = &t->conns; *c; c = &(*c)->next) {
                if ((*c)->speaker != s)
                        continue;
                struct conn *gone = *c;
                *c = gone->next;
                t->n_conns--;
                log_debug("Detached %s (%s)", speaker_description(s), error ? strerror(-error) : "closed");
                if (t->detached)
                        t->detached(t, s, t->detached_userdata);
                speaker_unref(gone->speaker);
                free(gone);
                return;
        }
}

const struct speaker_ops tunnel_speaker_ops = {
        .message = on_message,
        .closed = on_closed,
};

void tunnel_attach(struct tunnel *t, struct speaker *s) {
        struct conn *c = calloc(1, sizeof(*c));

        if (!c) {
                log_error_errno(ENOMEM, "Dropping %s", speaker_description(s));
                speaker_close(s, -ENOMEM);
                speaker_unref(s);
                return;
        }
        c->speaker = s;
        c->next = t->conns;
        t->conns = c;
        t->n_conns++;
}

void tunnel_set_detached_callback(struct tunnel *t, tunnel_detached_fn fn, void *userdata) {
        t->detached = fn;
        t->detached_userdata = userdata;
}

/* ---- Logs to managers ---------------------------------------------------------------- */

static Vpn__Log__Level level_of(int priority) {
        switch (priority) {
        case LOG_DEBUG: return VPN__LOG__LEVEL__DEBUG;
        case LOG_INFO:
        case LOG_NOTICE: return VPN__LOG__LEVEL__INFO;
        case LOG_WARNING: return VPN__LOG__LEVEL__WARN;
        case LOG_ERR: return VPN__LOG__LEVEL__ERROR;
        case LOG_CRIT: return VPN__LOG__LEVEL__CRITICAL;
        default: return VPN__LOG__LEVEL__FATAL;
        }
}

static void forward_log(int priority, const char *component, const char *message,
                        const struct log_field *fields, size_t n_fields, void *userdata) {
        struct tunnel *t = userdata;
        Vpn__Log__Field field_storage[LOG_FORWARD_FIELDS_MAX];
        Vpn__Log__Field *field_ptrs[LOG_FORWARD_FIELDS_MAX];
        Vpn__TunnelMessage m = VPN__TUNNEL_MESSAGE__INIT;
        Vpn__Log log = VPN__LOG__INIT;
        char *logger_names[] = { (char *) component };

        if (n_fields > LOG_FORWARD_FIELDS_MAX)
                n_fields = LOG_FORWARD_FIELDS_MAX;
        for (size_t i = 0; i < n_fields; i++) {
                vpn__log__field__init(&field_storage[i]);
                field_storage[i].name = (char *) fields[i].name;
                field_storage[i].value = (char *) (fields[i].value ?: "");
                field_ptrs[i] = &field_storage[i];
        }
        log.level = level_of(priority);
        log.message = (char *) message;
        log.n_logger_names = 1;
        log.logger_names = logger_names;
        log.n_fields = n_fields;
        log.fields = field_ptrs;
        m.msg_case = VPN__TUNNEL_MESSAGE__MSG_LOG;
        m.log = &log;

        for (struct conn *c = t->conns; c; c = c->next)
                if (speaker_role(c->speaker) == VPN_ROLE_TUNNEL && speaker_is_open(c->speaker))
                        speaker_send(c->speaker, &m.base);
}

/* ---- Object -------------------------------------------------------------------------- */

int tunnel_new(struct tunnel **ret, sd_event *event, const struct tunnel_backend *backend, void *userdata) {
        struct tunnel *t = calloc(1, sizeof(*t));
        int r;

        if (!t)
                return -ENOMEM;
        *t = (struct tunnel) {
                .event = sd_event_ref(event),
                .backend = backend,
                .backend_userdata = userdata,
                .queue_tail = &t->queue_head,
        };
        r = sd_event_add_defer(event, &t->kick_source, on_kick, t);
        if (r < 0 || (r = sd_event_source_set_enabled(t->kick_source, SD_EVENT_OFF)) < 0) {
                tunnel_free(t);
                return r;
        }
        log_set_forwarder(forward_log, t);
        *ret = t;
        return 0;
}

struct tunnel *tunnel_free(struct tunnel *t) {
        if (!t)
                return NULL;
        log_set_forwarder(NULL, NULL);
        while (t->conns) {
                struct conn *c = t->conns;
                t->conns = c->next;
                /* Not through on_closed: we are going away, nobody is told. */
                speaker_unref(c->speaker);
                free(c);
        }
        request_free(t->busy);
        while (t->queue_head) {
                struct request *r = t->queue_head;
                t->queue_head = r->next;
                request_free(r);
        }
        sd_event_source_disable_unref(t->kick_source);
        sd_event_unref(t->event);
        free(t->last_error);
        free(t->config_url);
        speaker_unref(t->starter);
        free(t);
        return NULL;
}

/* ---- The backend until the engine exists --------------------------------------------- */

static void unimplemented_start(struct tunnel *t, const struct tunnel_start *params, void *userdata) {
        tunnel_start_done(t, "not implemented: connecting to the Coder control plane "
                             "(tailnet coordination, and the engine that drives WireGuard and DNS from it)");
}

static void unimplemented_stop(struct tunnel *t, void *userdata) {
        tunnel_stop_done(t, NULL);
}

const struct tunnel_backend tunnel_backend_unimplemented = {
        .start = unimplemented_start,
        .stop = unimplemented_stop,
};
