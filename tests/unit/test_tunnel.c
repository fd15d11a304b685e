/* SPDX-License-Identifier: MIT */
/* The tunnel role over a fake backend (spec §5), seen from a manager or a desktop client. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>

#include "frame.h"
#include "log.h"
#include "message.h"
#include "speaker.h"
#include "tunnel.h"
#include "unit-helpers.h"

#define MANAGER (1u << VPN_ROLE_MANAGER)
#define TUNNEL (1u << VPN_ROLE_TUNNEL)
#define CLIENT (1u << VPN_ROLE_CLIENT)
#define SERVICE (1u << VPN_ROLE_SERVICE)

#define TEST_URL "https://coder.example.com"
#define TEST_TOKEN "s3cr3t-token-XYZ"

/* ---- The fake backend ------------------------------------------------------------------ */

struct fake {
        struct tunnel *t;
        unsigned n_start, n_stop, n_wake, n_snapshot, n_snapshot_free;
        bool async_start, async_stop;     /* leave completion to the test */
        const char *start_error, *stop_error;
        enum tunnel_state state_at_start, state_at_stop;
        char url[256], token[256];
        size_t n_headers;
        char header_names[8][64];
        char header_values[8][256];

        Vpn__Workspace ws;
        Vpn__Workspace *ws_ptrs[1];
};

static void fake_start(struct tunnel *t, const struct tunnel_start *p, void *userdata) {
        struct fake *f = userdata;

        assert_ptr_equal(t, f->t);
        f->n_start++;
        f->state_at_start = tunnel_get_state(t);
        snprintf(f->url, sizeof(f->url), "%s", p->coder_url);
        snprintf(f->token, sizeof(f->token), "%s", p->api_token);
        assert_true(p->n_headers <= 8);
        f->n_headers = p->n_headers;
        for (size_t i = 0; i < p->n_headers; i++) {
                snprintf(f->header_names[i], sizeof(f->header_names[i]), "%s", p->headers[i].name);
                snprintf(f->header_values[i], sizeof(f->header_values[i]), "%s", p->headers[i].value);
        }
        if (!f->async_start)
                tunnel_start_done(t, f->start_error);
}

static void fake_stop(struct tunnel *t, void *userdata) {
        struct fake *f = userdata;

        assert_ptr_equal(t, f->t);
        f->n_stop++;
        f->state_at_stop = tunnel_get_state(t);
        if (!f->async_stop)
                tunnel_stop_done(t, f->stop_error);
}

static void fake_wake(struct tunnel *t, void *userdata) {
        struct fake *f = userdata;
        f->n_wake++;
}

static int fake_snapshot(struct tunnel *t, Vpn__PeerUpdate *out, void *userdata) {
        struct fake *f = userdata;

        f->n_snapshot++;
        vpn__workspace__init(&f->ws);
        f->ws.name = (char *) "ws1";
        f->ws.status = VPN__WORKSPACE__STATUS__RUNNING;
        f->ws_ptrs[0] = &f->ws;
        out->n_upserted_workspaces = 1;
        out->upserted_workspaces = f->ws_ptrs;
        return 0;
}

static void fake_snapshot_free(struct tunnel *t, Vpn__PeerUpdate *out, void *userdata) {
        struct fake *f = userdata;
        f->n_snapshot_free++;
        assert_ptr_equal(out->upserted_workspaces, f->ws_ptrs);
}

static const struct tunnel_backend fake_backend = {
        .start = fake_start,
        .stop = fake_stop,
        .wake = fake_wake,
        .snapshot = fake_snapshot,
        .snapshot_free = fake_snapshot_free,
};

/* ---- The peer (a manager or a desktop client) ------------------------------------------ */

#define MAX_REC 256

struct peer {
        struct speaker *s;
        unsigned n_ready;
        unsigned n_closed;
        int closed_error;
        /* Unsolicited messages. */
        unsigned n_msgs;
        uint32_t cases[MAX_REC];
        bool had_rpc[MAX_REC];
        int lifecycles[MAX_REC];          /* Status messages */
        char status_errors[MAX_REC][64];
        unsigned n_logs;
        char *log_text;                   /* every Log's message, logger names and fields */
        size_t log_len;
        unsigned n_peer_updates;
};

struct reply {
        unsigned n;
        int error;
        uint32_t msg_case;
        bool success;
        char error_message[256];
        unsigned seq;
        int lifecycle;
        size_t n_workspaces;
        char ws_name[32];
};
static unsigned reply_seq;

static void append_log(struct peer *p, const char *s) {
        size_t n = strlen(s);
        char *t = realloc(p->log_text, p->log_len + n + 2);
        assert_non_null(t);
        p->log_text = t;
        memcpy(t + p->log_len, s, n);
        p->log_len += n;
        t[p->log_len++] = '\n';
        t[p->log_len] = '\0';
}

static void peer_ready(struct speaker *s, void *userdata) {
        struct peer *p = userdata;
        p->n_ready++;
}

static void peer_message(struct speaker *s, ProtobufCMessage *m, uint64_t id, void *userdata) {
        struct peer *p = userdata;
        unsigned i = p->n_msgs++;

        assert_true(i < MAX_REC);
        assert_int_equal(id, 0);   /* the tunnel sends no requests in these tests */
        p->cases[i] = vpn_message_case(m);
        p->had_rpc[i] = vpn_message_rpc(m) != NULL;
        p->lifecycles[i] = -1;
        if (m->descriptor == &vpn__tunnel_message__descriptor) {
                const Vpn__TunnelMessage *t = (const Vpn__TunnelMessage *) m;
                if (t->msg_case == VPN__TUNNEL_MESSAGE__MSG_LOG) {
                        p->n_logs++;
                        append_log(p, t->log->message);
                        for (size_t k = 0; k < t->log->n_logger_names; k++)
                                append_log(p, t->log->logger_names[k]);
                        for (size_t k = 0; k < t->log->n_fields; k++) {
                                append_log(p, t->log->fields[k]->name);
                                append_log(p, t->log->fields[k]->value);
                        }
                } else if (t->msg_case == VPN__TUNNEL_MESSAGE__MSG_PEER_UPDATE)
                        p->n_peer_updates++;
        } else if (m->descriptor == &vpn__service_message__descriptor) {
                const Vpn__ServiceMessage *sm = (const Vpn__ServiceMessage *) m;
                if (sm->msg_case == VPN__SERVICE_MESSAGE__MSG_STATUS) {
                        p->lifecycles[i] = sm->status->lifecycle;
                        snprintf(p->status_errors[i], 64, "%s", sm->status->error_message);
                }
        }
        protobuf_c_message_free_unpacked(m, NULL);
}

static void peer_closed(struct speaker *s, int error, void *userdata) {
        struct peer *p = userdata;
        p->n_closed++;
        p->closed_error = error;
}

static const struct speaker_ops peer_ops = {
        .ready = peer_ready,
        .message = peer_message,
        .closed = peer_closed,
};

static void on_reply(struct speaker *s, int error, ProtobufCMessage *m, void *userdata) {
        struct reply *r = userdata;

        r->n++;
        r->error = error;
        r->seq = reply_seq++;
        r->lifecycle = -1;
        if (!m)
                return;
        assert_non_null(vpn_message_rpc(m));
        assert_int_equal(vpn_message_rpc(m)->msg_id, 0);
        r->msg_case = vpn_message_case(m);
        if (m->descriptor == &vpn__tunnel_message__descriptor) {
                const Vpn__TunnelMessage *t = (const Vpn__TunnelMessage *) m;
                switch (t->msg_case) {
                case VPN__TUNNEL_MESSAGE__MSG_START:
                        r->success = t->start->success;
                        snprintf(r->error_message, sizeof(r->error_message), "%s", t->start->error_message);
                        break;
                case VPN__TUNNEL_MESSAGE__MSG_STOP:
                        r->success = t->stop->success;
                        snprintf(r->error_message, sizeof(r->error_message), "%s", t->stop->error_message);
                        break;
                case VPN__TUNNEL_MESSAGE__MSG_PEER_UPDATE:
                        r->n_workspaces = t->peer_update->n_upserted_workspaces;
                        if (r->n_workspaces)
                                snprintf(r->ws_name, sizeof(r->ws_name), "%s", t->peer_update->upserted_workspaces[0]->name);
                        break;
                default:
                        break;
                }
        } else {
                const Vpn__ServiceMessage *sm = (const Vpn__ServiceMessage *) m;
                switch (sm->msg_case) {
                case VPN__SERVICE_MESSAGE__MSG_START:
                        r->success = sm->start->success;
                        snprintf(r->error_message, sizeof(r->error_message), "%s", sm->start->error_message);
                        break;
                case VPN__SERVICE_MESSAGE__MSG_STOP:
                        r->success = sm->stop->success;
                        snprintf(r->error_message, sizeof(r->error_message), "%s", sm->stop->error_message);
                        break;
                case VPN__SERVICE_MESSAGE__MSG_STATUS:
                        r->lifecycle = sm->status->lifecycle;
                        snprintf(r->error_message, sizeof(r->error_message), "%s", sm->status->error_message);
                        if (sm->status->peer_update) {
                                r->n_workspaces = sm->status->peer_update->n_upserted_workspaces;
                                if (r->n_workspaces)
                                        snprintf(r->ws_name, sizeof(r->ws_name), "%s",
                                                 sm->status->peer_update->upserted_workspaces[0]->name);
                        }
                        break;
                default:
                        break;
                }
        }
        protobuf_c_message_free_unpacked(m, NULL);
}

/* ---- Fixture -------------------------------------------------------------------------- */

struct fx {
        sd_event *e;
        struct fake fake;
        struct tunnel *t;
        struct peer p;
        unsigned n_detached;
        struct speaker *last_detached;
};

static void on_detached(struct tunnel *t, struct speaker *s, void *userdata) {
        struct fx *f = userdata;
        f->n_detached++;
        f->last_detached = s;
}

/* Connects @p (in @peer_roles) to the tunnel through a speaker playing @tunnel_roles. */
static void connect_peer(struct fx *f, struct peer *p, unsigned peer_roles, unsigned tunnel_roles) {
        struct speaker_config pc = { .roles = peer_roles, .description = "test peer" };
        struct speaker_config tc = { .roles = tunnel_roles, .description = "attached peer" };
        struct speaker *ts = NULL;
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(speaker_new(&p->s, f->e, sv[0], dup(sv[0]), &pc, &peer_ops, p), 0);
        assert_int_equal(speaker_new(&ts, f->e, sv[1], dup(sv[1]), &tc, &tunnel_speaker_ops, f->t), 0);
        tunnel_attach(f->t, ts);
        assert_true(RUN_UNTIL(f->e, p->n_ready == 1));
}

static void fx_init(struct fx *f, unsigned peer_roles, unsigned tunnel_roles) {
        *f = (struct fx) {};
        reply_seq = 0;
        assert_true(sd_event_new(&f->e) >= 0);
        assert_int_equal(tunnel_new(&f->t, f->e, &fake_backend, &f->fake), 0);
        f->fake.t = f->t;
        tunnel_set_detached_callback(f->t, on_detached, f);
        assert_int_equal(tunnel_get_state(f->t), TUNNEL_STOPPED);
        assert_int_equal(tunnel_n_connections(f->t), 0);
        if (peer_roles)
                connect_peer(f, &f->p, peer_roles, tunnel_roles);
}

static void peer_done(struct peer *p) {
        if (p->s)
                p->s = speaker_unref(p->s);
        free(p->log_text);
        p->log_text = NULL;
}

static void fx_done(struct fx *f) {
        f->t = tunnel_free(f->t);
        peer_done(&f->p);
        run_idle(f->e);
        sd_event_unref(f->e);
}

/* ---- Requests ------------------------------------------------------------------------- */

struct start_args {
        const char *url, *token;
        const char *header_name, *header_value;
        const char *device_id, *device_os, *version;
};

static void fill_start(Vpn__StartRequest *req, Vpn__StartRequest__Header *h, Vpn__StartRequest__Header **hp,
                       const struct start_args *a) {
        vpn__start_request__init(req);
        req->coder_url = (char *) (a->url ?: "");
        req->api_token = (char *) (a->token ?: "");
        if (a->header_name) {
                vpn__start_request__header__init(h);
                h->name = (char *) a->header_name;
                h->value = (char *) (a->header_value ?: "");
                hp[0] = h;
                req->n_headers = 1;
                req->headers = hp;
        }
        req->device_id = (char *) (a->device_id ?: "");
        req->device_os = (char *) (a->device_os ?: "");
        req->coder_desktop_version = (char *) (a->version ?: "");
}

static void mgr_start(struct peer *p, const struct start_args *a, struct reply *r) {
        Vpn__ManagerMessage m = VPN__MANAGER_MESSAGE__INIT;
        Vpn__StartRequest req;
        Vpn__StartRequest__Header h, *hp[1];

        fill_start(&req, &h, hp, a);
        m.msg_case = VPN__MANAGER_MESSAGE__MSG_START;
        m.start = &req;
        assert_int_equal(speaker_request(p->s, &m.base, on_reply, r), 0);
}

static void mgr_start_ok(struct peer *p, struct reply *r) {
        mgr_start(p, &(struct start_args) { .url = TEST_URL, .token = TEST_TOKEN }, r);
}

static void mgr_simple(struct peer *p, Vpn__ManagerMessage__MsgCase which, struct reply *r) {
        Vpn__ManagerMessage m = VPN__MANAGER_MESSAGE__INIT;
        Vpn__StopRequest stop = VPN__STOP_REQUEST__INIT;
        Vpn__WakeRequest wake = VPN__WAKE_REQUEST__INIT;
        Vpn__GetPeerUpdate gpu = VPN__GET_PEER_UPDATE__INIT;

        m.msg_case = which;
        if (which == VPN__MANAGER_MESSAGE__MSG_STOP)
                m.stop = &stop;
        else if (which == VPN__MANAGER_MESSAGE__MSG_WAKE)
                m.wake = &wake;
        else
                m.get_peer_update = &gpu;
        assert_int_equal(speaker_request(p->s, &m.base, on_reply, r), 0);
}

static void client_request(struct peer *p, Vpn__ClientMessage__MsgCase which, const struct start_args *a,
                           struct reply *r) {
        Vpn__ClientMessage m = VPN__CLIENT_MESSAGE__INIT;
        Vpn__StartRequest req;
        Vpn__StartRequest__Header h, *hp[1];
        Vpn__StopRequest stop = VPN__STOP_REQUEST__INIT;
        Vpn__StatusRequest status = VPN__STATUS_REQUEST__INIT;

        m.msg_case = which;
        if (which == VPN__CLIENT_MESSAGE__MSG_START) {
                fill_start(&req, &h, hp, a);
                m.start = &req;
        } else if (which == VPN__CLIENT_MESSAGE__MSG_STOP)
                m.stop = &stop;
        else
                m.status = &status;
        assert_int_equal(speaker_request(p->s, &m.base, on_reply, r), 0);
}

/* ---- Lifecycle ------------------------------------------------------------------------ */

static void test_lifecycle(void **state) {
        struct fx f;
        struct reply start = {}, stop = {};

        fx_init(&f, MANAGER, TUNNEL);
        f.fake.async_start = f.fake.async_stop = true;
        assert_int_equal(tunnel_n_connections(f.t), 1);
        assert_string_equal(tunnel_state_name(TUNNEL_STOPPED), "stopped");
        assert_string_equal(tunnel_state_name(TUNNEL_STARTING), "starting");
        assert_string_equal(tunnel_state_name(TUNNEL_STARTED), "started");
        assert_string_equal(tunnel_state_name(TUNNEL_STOPPING), "stopping");

        mgr_start_ok(&f.p, &start);
        assert_true(RUN_UNTIL(f.e, f.fake.n_start == 1));
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STARTING);
        assert_int_equal(f.fake.state_at_start, TUNNEL_STARTING);
        assert_string_equal(f.fake.url, TEST_URL);
        assert_string_equal(f.fake.token, TEST_TOKEN);
        assert_int_equal(f.fake.n_headers, 0);
        run_idle(f.e);
        assert_int_equal(start.n, 0);   /* not answered until the backend is done */

        tunnel_start_done(f.t, NULL);
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STARTED);
        assert_true(RUN_UNTIL(f.e, start.n == 1));
        assert_int_equal(start.error, 0);
        assert_int_equal(start.msg_case, VPN__TUNNEL_MESSAGE__MSG_START);
        assert_true(start.success);
        assert_string_equal(start.error_message, "");

        mgr_simple(&f.p, VPN__MANAGER_MESSAGE__MSG_STOP, &stop);
        assert_true(RUN_UNTIL(f.e, f.fake.n_stop == 1));
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STOPPING);
        assert_int_equal(f.fake.state_at_stop, TUNNEL_STOPPING);
        run_idle(f.e);
        assert_int_equal(stop.n, 0);

        tunnel_stop_done(f.t, NULL);
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STOPPED);
        assert_true(RUN_UNTIL(f.e, stop.n == 1 && f.p.n_closed == 1));
        assert_int_equal(stop.msg_case, VPN__TUNNEL_MESSAGE__MSG_STOP);
        assert_true(stop.success);
        assert_int_equal(f.p.closed_error, 0);   /* StopResponse, then EOF */
        assert_true(RUN_UNTIL(f.e, tunnel_n_connections(f.t) == 0));
        assert_int_equal(f.n_detached, 1);
        assert_int_equal(f.fake.n_start, 1);
        assert_int_equal(f.fake.n_stop, 1);
        /* Unsolicited messages to a manager: none at this log level. */
        assert_int_equal(f.p.n_msgs, 0);
        fx_done(&f);
}

static void test_start_validation(void **state) {
        static const struct {
                struct start_args a;
                const char *error;   /* exact, or NULL: any non-empty message */
        } cases[] = {
                { { .url = "", .token = TEST_TOKEN }, "missing coder url" },
                { { .url = NULL, .token = NULL }, "missing coder url" },
                { { .url = "not a url", .token = TEST_TOKEN }, NULL },
                { { .url = "ftp://coder.example.com", .token = TEST_TOKEN }, NULL },
                { { .url = "file:///etc/passwd", .token = TEST_TOKEN }, NULL },
                { { .url = "https://", .token = TEST_TOKEN }, NULL },
                { { .url = "coder.example.com", .token = TEST_TOKEN }, NULL },
                { { .url = "https://coder.example.com:99999999", .token = TEST_TOKEN }, NULL },
                { { .url = TEST_URL, .token = "" }, "missing api token" },
                { { .url = TEST_URL }, "missing api token" },
                { { .url = TEST_URL, .token = "a\r\nX-Evil: 1" }, NULL },
                { { .url = TEST_URL, .token = TEST_TOKEN, .header_name = "X Test", .header_value = "v" }, NULL },
                { { .url = TEST_URL, .token = TEST_TOKEN, .header_name = "X-Test", .header_value = "a\r\nb" }, NULL },
                { { .url = TEST_URL, .token = TEST_TOKEN, .header_name = "", .header_value = "v" }, NULL },
        };
        struct fx f;
        struct reply r[ELEMENTSOF(cases)] = {};

        fx_init(&f, MANAGER, TUNNEL);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                mgr_start(&f.p, &cases[i].a, &r[i]);
        assert_true(RUN_UNTIL(f.e, r[ELEMENTSOF(cases) - 1].n == 1));
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                if (r[i].n != 1 || r[i].error != 0 || r[i].success || !r[i].error_message[0])
                        fail_msg("case %zu (%s): n=%u error=%d success=%d \"%s\"", i,
                                 cases[i].a.url ?: "(null)", r[i].n, r[i].error, r[i].success, r[i].error_message);
                if (cases[i].error)
                        assert_string_equal(r[i].error_message, cases[i].error);
                assert_int_equal(r[i].seq, i);   /* answered in order */
        }
        assert_string_equal(r[2].error_message, "invalid coder url: want an http:// or https:// URL with a host");
        assert_int_equal(f.fake.n_start, 0);
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STOPPED);
        assert_true(speaker_is_open(f.p.s));   /* refusals do not end the connection */

        /* http:// is as good as https://, and a port and path are fine. */
        struct reply ok = {};
        mgr_start(&f.p, &(struct start_args) { .url = "http://127.0.0.1:3000/coder", .token = TEST_TOKEN }, &ok);
        assert_true(RUN_UNTIL(f.e, ok.n == 1));
        assert_true(ok.success);
        assert_int_equal(f.fake.n_start, 1);
        assert_string_equal(f.fake.url, "http://127.0.0.1:3000/coder");
        fx_done(&f);
}

static void test_second_start(void **state) {
        struct fx f;
        struct reply r1 = {}, r2 = {};

        fx_init(&f, MANAGER, TUNNEL);
        mgr_start_ok(&f.p, &r1);
        assert_true(RUN_UNTIL(f.e, r1.n == 1));
        assert_true(r1.success);
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STARTED);
        assert_int_equal(f.fake.n_start, 1);

        mgr_start(&f.p, &(struct start_args) { .url = "https://other.example.com", .token = "other" }, &r2);
        assert_true(RUN_UNTIL(f.e, r2.n == 1));
        assert_true(r2.success);
        assert_string_equal(r2.error_message, "");
        assert_int_equal(f.fake.n_start, 1);             /* backend not called again */
        assert_string_equal(f.fake.url, TEST_URL);       /* the running tunnel is kept */
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STARTED);
        fx_done(&f);
}

static void test_stop_before_start(void **state) {
        struct fx f;
        struct reply r = {};

        fx_init(&f, MANAGER, TUNNEL);
        mgr_simple(&f.p, VPN__MANAGER_MESSAGE__MSG_STOP, &r);
        assert_true(RUN_UNTIL(f.e, r.n == 1 && f.p.n_closed == 1));
        assert_int_equal(r.error, 0);
        assert_int_equal(r.msg_case, VPN__TUNNEL_MESSAGE__MSG_STOP);
        assert_true(r.success);
        assert_int_equal(f.p.closed_error, 0);
        assert_int_equal(f.fake.n_stop, 0);
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STOPPED);
        assert_int_equal(f.p.n_msgs, 0);
        assert_true(RUN_UNTIL(f.e, tunnel_n_connections(f.t) == 0));
        fx_done(&f);
}

/* Stop ends a manager's stream: a Start it queued behind the Stop is not carried out. */
static void test_start_queued_after_stop_is_dropped(void **state) {
        struct fx f;
        struct reply stop = {}, start = {};

        fx_init(&f, MANAGER, TUNNEL);
        mgr_simple(&f.p, VPN__MANAGER_MESSAGE__MSG_STOP, &stop);
        mgr_start_ok(&f.p, &start);
        assert_true(RUN_UNTIL(f.e, stop.n == 1 && start.n == 1 && f.p.n_closed == 1));
        assert_true(stop.success);
        assert_int_equal(start.error, -EPIPE);
        run_idle(f.e);
        assert_int_equal(f.fake.n_start, 0);
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STOPPED);
        fx_done(&f);
}

static void test_start_failure(void **state) {
        struct fx f;
        struct reply r1 = {}, r2 = {}, r3 = {};

        fx_init(&f, MANAGER, TUNNEL);
        f.fake.start_error = "boom: cannot reach the control plane";
        mgr_start_ok(&f.p, &r1);
        assert_true(RUN_UNTIL(f.e, r1.n == 1));
        assert_false(r1.success);
        assert_string_equal(r1.error_message, "boom: cannot reach the control plane");
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STOPPED);
        assert_int_equal(f.fake.n_start, 1);

        /* Asynchronous failure. */
        f.fake.start_error = NULL;
        f.fake.async_start = true;
        mgr_start_ok(&f.p, &r2);
        assert_true(RUN_UNTIL(f.e, f.fake.n_start == 2));
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STARTING);
        tunnel_start_done(f.t, "async boom");
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STOPPED);
        assert_true(RUN_UNTIL(f.e, r2.n == 1));
        assert_false(r2.success);
        assert_string_equal(r2.error_message, "async boom");

        /* The connection is still good, and a later Start can succeed. */
        f.fake.async_start = false;
        mgr_start_ok(&f.p, &r3);
        assert_true(RUN_UNTIL(f.e, r3.n == 1));
        assert_true(r3.success);
        assert_int_equal(f.fake.n_start, 3);
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STARTED);
        assert_int_equal(f.p.n_closed, 0);
        fx_done(&f);
}

static void test_queued_behind_async_start(void **state) {
        struct fx f;
        struct reply a = {}, b = {}, c = {}, g = {};

        fx_init(&f, MANAGER, TUNNEL);
        f.fake.async_start = f.fake.async_stop = true;
        mgr_start_ok(&f.p, &a);
        assert_true(RUN_UNTIL(f.e, f.fake.n_start == 1));
        mgr_start(&f.p, &(struct start_args) { .url = "https://second.example.com", .token = "t2" }, &b);
        mgr_simple(&f.p, VPN__MANAGER_MESSAGE__MSG_STOP, &c);
        /* A query is answered at once, ahead of the queued lifecycle requests. */
        mgr_simple(&f.p, VPN__MANAGER_MESSAGE__MSG_GET_PEER_UPDATE, &g);
        assert_true(RUN_UNTIL(f.e, g.n == 1));
        run_idle(f.e);
        assert_int_equal(a.n + b.n + c.n, 0);
        assert_int_equal(f.fake.n_start, 1);
        assert_int_equal(f.fake.n_stop, 0);
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STARTING);

        tunnel_start_done(f.t, NULL);
        assert_true(RUN_UNTIL(f.e, a.n == 1 && b.n == 1 && f.fake.n_stop == 1));
        assert_true(a.success);
        assert_true(b.success);                 /* already started */
        assert_int_equal(f.fake.n_start, 1);
        assert_string_equal(f.fake.url, TEST_URL);
        assert_true(g.seq < a.seq);
        assert_true(a.seq < b.seq);
        assert_int_equal(c.n, 0);
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STOPPING);

        tunnel_stop_done(f.t, NULL);
        assert_true(RUN_UNTIL(f.e, c.n == 1 && f.p.n_closed == 1));
        assert_true(c.success);
        assert_true(b.seq < c.seq);
        assert_int_equal(f.p.closed_error, 0);
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STOPPED);
        fx_done(&f);
}

static void test_get_peer_update_while_starting(void **state) {
        struct fx f;
        struct reply start = {}, peers = {};

        fx_init(&f, MANAGER, TUNNEL);
        f.fake.async_start = true;
        mgr_start_ok(&f.p, &start);
        assert_true(RUN_UNTIL(f.e, f.fake.n_start == 1));
        mgr_simple(&f.p, VPN__MANAGER_MESSAGE__MSG_GET_PEER_UPDATE, &peers);
        assert_true(RUN_UNTIL(f.e, peers.n == 1));
        assert_int_equal(peers.error, 0);
        assert_int_equal(peers.msg_case, VPN__TUNNEL_MESSAGE__MSG_PEER_UPDATE);
        assert_int_equal(peers.n_workspaces, 1);
        assert_string_equal(peers.ws_name, "ws1");
        assert_int_equal(start.n, 0);
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STARTING);
        assert_int_equal(f.fake.n_snapshot, f.fake.n_snapshot_free);
        assert_true(f.fake.n_snapshot >= 1);

        tunnel_start_done(f.t, NULL);
        assert_true(RUN_UNTIL(f.e, start.n == 1));
        assert_true(start.success);
        fx_done(&f);
}

static void test_wake(void **state) {
        struct fx f;
        struct reply w1 = {}, w2 = {}, s = {};

        fx_init(&f, MANAGER, TUNNEL);
        mgr_simple(&f.p, VPN__MANAGER_MESSAGE__MSG_WAKE, &w1);
        assert_true(RUN_UNTIL(f.e, w1.n == 1));
        assert_int_equal(w1.error, 0);
        assert_int_equal(w1.msg_case, VPN__TUNNEL_MESSAGE__MSG_WAKE);
        assert_int_equal(f.fake.n_wake, 0);     /* not running: nothing to re-bind */

        mgr_start_ok(&f.p, &s);
        assert_true(RUN_UNTIL(f.e, s.n == 1));
        mgr_simple(&f.p, VPN__MANAGER_MESSAGE__MSG_WAKE, &w2);
        assert_true(RUN_UNTIL(f.e, w2.n == 1));
        assert_int_equal(w2.msg_case, VPN__TUNNEL_MESSAGE__MSG_WAKE);
        assert_int_equal(f.fake.n_wake, 1);
        fx_done(&f);
}

/* ---- A raw manager: exact bytes ------------------------------------------------------- */

static int raw_manager(struct fx *f, const char *header) {
        struct speaker_config tc = { .roles = TUNNEL, .description = "raw manager" };
        struct speaker *ts = NULL;
        int sv[2];
        char buf[64] = {};

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(speaker_new(&ts, f->e, sv[1], dup(sv[1]), &tc, &tunnel_speaker_ops, f->t), 0);
        tunnel_attach(f->t, ts);
        set_nonblocking(sv[0]);
        write_all(sv[0], header, strlen(header));
        assert_int_equal(read_exact_loop(f->e, sv[0], buf, strlen("codervpn tunnel 1.3\n")),
                         (ssize_t) strlen("codervpn tunnel 1.3\n"));
        assert_string_equal(buf, "codervpn tunnel 1.3\n");
        return sv[0];
}

static void raw_send(int fd, const char *hex) {
        uint8_t b[1024];
        size_t n = hex_decode(hex, b + 4, sizeof(b) - 4);
        frame_put_len(b, (uint32_t) n);
        write_all(fd, b, n + 4);
}

static void raw_expect(sd_event *e, int fd, const char *want_hex) {
        uint8_t len[4], payload[1024];
        char hex[2049];
        assert_int_equal(read_exact_loop(e, fd, len, 4), 4);
        uint32_t n = (uint32_t) len[0] << 24 | (uint32_t) len[1] << 16 | (uint32_t) len[2] << 8 | len[3];
        assert_true(n > 0 && n <= sizeof(payload));
        assert_int_equal(read_exact_loop(e, fd, payload, n), (ssize_t) n);
        hex_encode(payload, n, hex);
        assert_string_equal(hex, want_hex);
}

#define V_MGR_START "0a02080122590802121968747470733a2f2f636f6465722e6578616d706c652e636f6d1a0966616b65546f6b656e22150a0d582d546573742d4865616465721204746573742a0964657669636530303132056d61634f533a06302e32342e38"

static void test_raw_manager_vectors(void **state) {
        struct fx f;

        fx_init(&f, 0, 0);
        int raw = raw_manager(&f, "codervpn manager 1.3\n");

        raw_send(raw, "0a0208033200");            /* wake, id 3 */
        raw_expect(f.e, raw, "0a0210033a00");
        raw_send(raw, "0a0208041200");            /* get_peer_update, id 4 */
        /* peer_update with the fake's snapshot: one workspace {name "ws1", status RUNNING} */
        raw_expect(f.e, raw, "0a0210041a090a0712037773311803");

        raw_send(raw, V_MGR_START);
        raw_expect(f.e, raw, "0a0210012a020801");    /* start{success:true}, response_to 1 */
        assert_int_equal(f.fake.n_start, 1);
        assert_string_equal(f.fake.url, "https://coder.example.com");
        assert_string_equal(f.fake.token, "fakeToken");
        assert_int_equal(f.fake.n_headers, 2);
        assert_string_equal(f.fake.header_names[0], "X-Test-Header");
        assert_string_equal(f.fake.header_values[0], "test");
        assert_string_equal(f.fake.header_names[1], "Coder-Desktop-Telemetry");
        assert_string_equal(f.fake.header_values[1],
                            "{\"device_id\":\"device001\",\"device_os\":\"macOS\",\"coder_desktop_version\":\"0.24.8\"}");

        raw_send(raw, "0a0208022a00");            /* stop, id 2 */
        raw_expect(f.e, raw, "0a02100232020801");
        assert_raw_eof(f.e, raw);                 /* nothing after the StopResponse */
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STOPPED);
        close(raw);
        fx_done(&f);
}

/* Before 1.3 there is no Wake: it gets no WakeResponse. */
static void test_raw_manager_wake_old_version(void **state) {
        struct fx f;

        fx_init(&f, 0, 0);
        int raw = raw_manager(&f, "codervpn manager 1.1\n");
        raw_send(raw, "0a0208033200");            /* wake, id 3 */
        raw_send(raw, "0a0208022a00");            /* stop, id 2 */
        raw_expect(f.e, raw, "0a02100232020801"); /* the first thing back answers the Stop */
        assert_raw_eof(f.e, raw);
        assert_int_equal(f.fake.n_wake, 0);
        close(raw);
        fx_done(&f);
}

/* ---- Desktop clients (service role) ---------------------------------------------------- */

static void test_service_client(void **state) {
        struct fx f;
        struct reply st = {}, start = {}, stop = {}, st2 = {};

        fx_init(&f, CLIENT, TUNNEL | SERVICE);
        client_request(&f.p, VPN__CLIENT_MESSAGE__MSG_STATUS, NULL, &st);
        assert_true(RUN_UNTIL(f.e, st.n == 1));
        assert_int_equal(st.error, 0);
        assert_int_equal(st.msg_case, VPN__SERVICE_MESSAGE__MSG_STATUS);
        assert_int_equal(st.lifecycle, VPN__STATUS__LIFECYCLE__STOPPED);
        assert_string_equal(st.error_message, "");
        assert_int_equal(st.n_workspaces, 1);
        assert_string_equal(st.ws_name, "ws1");
        assert_int_equal(f.p.n_msgs, 0);

        client_request(&f.p, VPN__CLIENT_MESSAGE__MSG_START, &(struct start_args) { .url = TEST_URL, .token = TEST_TOKEN },
                       &start);
        assert_true(RUN_UNTIL(f.e, start.n == 1 && f.p.n_msgs == 2));
        assert_int_equal(start.msg_case, VPN__SERVICE_MESSAGE__MSG_START);
        assert_true(start.success);
        for (unsigned i = 0; i < 2; i++) {
                assert_int_equal(f.p.cases[i], VPN__SERVICE_MESSAGE__MSG_STATUS);
                assert_false(f.p.had_rpc[i]);
        }
        assert_int_equal(f.p.lifecycles[0], VPN__STATUS__LIFECYCLE__STARTING);
        assert_int_equal(f.p.lifecycles[1], VPN__STATUS__LIFECYCLE__STARTED);

        client_request(&f.p, VPN__CLIENT_MESSAGE__MSG_STOP, NULL, &stop);
        assert_true(RUN_UNTIL(f.e, stop.n == 1 && f.p.n_msgs == 4));
        assert_int_equal(stop.msg_case, VPN__SERVICE_MESSAGE__MSG_STOP);
        assert_true(stop.success);
        assert_int_equal(f.p.lifecycles[2], VPN__STATUS__LIFECYCLE__STOPPING);
        assert_int_equal(f.p.lifecycles[3], VPN__STATUS__LIFECYCLE__STOPPED);

        /* Unlike a manager's, a client's connection stays open after Stop. */
        run_idle(f.e);
        assert_int_equal(f.p.n_closed, 0);
        assert_true(speaker_is_open(f.p.s));

        /* A failed start is reported with its error. */
        f.fake.start_error = "no route to coder";
        struct reply bad = {};
        client_request(&f.p, VPN__CLIENT_MESSAGE__MSG_START, &(struct start_args) { .url = TEST_URL, .token = TEST_TOKEN },
                       &bad);
        assert_true(RUN_UNTIL(f.e, bad.n == 1 && f.p.n_msgs == 6));
        assert_false(bad.success);
        assert_string_equal(bad.error_message, "no route to coder");
        assert_int_equal(f.p.lifecycles[4], VPN__STATUS__LIFECYCLE__STARTING);
        assert_int_equal(f.p.lifecycles[5], VPN__STATUS__LIFECYCLE__STOPPED);
        assert_string_equal(f.p.status_errors[5], "no route to coder");
        client_request(&f.p, VPN__CLIENT_MESSAGE__MSG_STATUS, NULL, &st2);
        assert_true(RUN_UNTIL(f.e, st2.n == 1));
        assert_int_equal(st2.lifecycle, VPN__STATUS__LIFECYCLE__STOPPED);
        assert_string_equal(st2.error_message, "no route to coder");
        fx_done(&f);
}

/* A manager and a client on one tunnel: the client hears of the manager's changes. */
static void test_manager_and_client(void **state) {
        struct fx f;
        struct peer cli = {};
        struct reply start = {}, stop = {};

        fx_init(&f, MANAGER, TUNNEL | SERVICE);
        connect_peer(&f, &cli, CLIENT, TUNNEL | SERVICE);
        assert_int_equal(tunnel_n_connections(f.t), 2);

        mgr_start_ok(&f.p, &start);
        assert_true(RUN_UNTIL(f.e, start.n == 1 && cli.n_msgs == 2));
        assert_true(start.success);
        assert_int_equal(cli.lifecycles[0], VPN__STATUS__LIFECYCLE__STARTING);
        assert_int_equal(cli.lifecycles[1], VPN__STATUS__LIFECYCLE__STARTED);
        assert_int_equal(f.p.n_msgs, 0);   /* no Status for managers */

        /* Peer updates go to managers only. */
        Vpn__PeerUpdate pu = VPN__PEER_UPDATE__INIT;
        tunnel_broadcast_peer_update(f.t, &pu);
        assert_true(RUN_UNTIL(f.e, f.p.n_peer_updates == 1));
        assert_false(f.p.had_rpc[0]);
        assert_int_equal(f.p.cases[0], VPN__TUNNEL_MESSAGE__MSG_PEER_UPDATE);

        mgr_simple(&f.p, VPN__MANAGER_MESSAGE__MSG_STOP, &stop);
        assert_true(RUN_UNTIL(f.e, stop.n == 1 && f.p.n_closed == 1 && cli.n_msgs == 4));
        assert_int_equal(cli.lifecycles[2], VPN__STATUS__LIFECYCLE__STOPPING);
        assert_int_equal(cli.lifecycles[3], VPN__STATUS__LIFECYCLE__STOPPED);
        assert_int_equal(cli.n_closed, 0);
        assert_int_equal(cli.n_peer_updates + cli.n_logs, 0);
        assert_true(RUN_UNTIL(f.e, tunnel_n_connections(f.t) == 1));
        peer_done(&cli);
        fx_done(&f);
}

/* ---- Connections ---------------------------------------------------------------------- */

static void test_detach(void **state) {
        struct fx f;

        fx_init(&f, MANAGER, TUNNEL);
        assert_int_equal(tunnel_n_connections(f.t), 1);
        speaker_close(f.p.s, 0);
        assert_true(RUN_UNTIL(f.e, f.n_detached == 1));
        assert_int_equal(tunnel_n_connections(f.t), 0);
        assert_non_null(f.last_detached);
        fx_done(&f);
}

/* The manager leaves while its Start is in progress: the Start still completes. */
static void test_manager_leaves_during_start(void **state) {
        struct fx f;
        struct reply r = {};

        fx_init(&f, MANAGER, TUNNEL);
        f.fake.async_start = true;
        mgr_start_ok(&f.p, &r);
        assert_true(RUN_UNTIL(f.e, f.fake.n_start == 1));
        f.p.s = speaker_unref(f.p.s);
        assert_int_equal(r.n, 1);
        assert_int_equal(r.error, -EPIPE);
        assert_true(RUN_UNTIL(f.e, tunnel_n_connections(f.t) == 0));
        tunnel_start_done(f.t, NULL);
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STARTED);
        run_idle(f.e);
        fx_done(&f);
}

static unsigned shutdown_calls;
static void on_shutdown(struct tunnel *t, void *userdata) {
        shutdown_calls++;
        assert_int_equal(tunnel_get_state(t), TUNNEL_STOPPED);
}

static void test_shutdown(void **state) {
        struct fx f;
        struct reply start = {}, late = {};

        fx_init(&f, MANAGER, TUNNEL);
        mgr_start_ok(&f.p, &start);
        assert_true(RUN_UNTIL(f.e, start.n == 1));
        f.fake.async_stop = true;
        shutdown_calls = 0;
        tunnel_shutdown(f.t, on_shutdown, NULL);
        assert_true(RUN_UNTIL(f.e, f.fake.n_stop == 1));
        assert_int_equal(shutdown_calls, 0);
        tunnel_stop_done(f.t, NULL);
        assert_true(RUN_UNTIL(f.e, shutdown_calls == 1));
        assert_int_equal(tunnel_get_state(f.t), TUNNEL_STOPPED);

        /* Shutting down: a new Start is refused. */
        mgr_start_ok(&f.p, &late);
        assert_true(RUN_UNTIL(f.e, late.n == 1));
        assert_false(late.success);
        assert_string_equal(late.error_message, "codervpnd is shutting down");
        assert_int_equal(f.fake.n_start, 1);
        fx_done(&f);
}

/* ---- Logs to managers never carry the API token ---------------------------------------- */

static void test_no_token_in_logs(void **state) {
        struct fx f;
        struct reply r1 = {}, r2 = {}, r3 = {}, r4 = {}, r5 = {};

        log_open(LOG_TARGET_STDERR, LOG_DEBUG);   /* forward everything */
        fx_init(&f, MANAGER, TUNNEL);

        /* A refused Start (bad header), a failing one, a good one, a repeated one, a Stop. */
        mgr_start(&f.p, &(struct start_args) { .url = TEST_URL, .token = TEST_TOKEN, .header_name = "Bad Name" }, &r1);
        f.fake.async_start = true;
        mgr_start(&f.p, &(struct start_args) { .url = TEST_URL, .token = TEST_TOKEN, .header_name = "Authorization",
                                               .header_value = "Bearer x", .device_id = "d" }, &r2);
        assert_true(RUN_UNTIL(f.e, r1.n == 1 && f.fake.n_start == 1));
        tunnel_start_done(f.t, "failed to reach " TEST_URL);
        assert_true(RUN_UNTIL(f.e, r2.n == 1));
        f.fake.async_start = false;
        mgr_start_ok(&f.p, &r3);
        mgr_start_ok(&f.p, &r4);
        mgr_simple(&f.p, VPN__MANAGER_MESSAGE__MSG_STOP, &r5);
        assert_true(RUN_UNTIL(f.e, r5.n == 1 && f.p.n_closed == 1));
        log_open(LOG_TARGET_STDERR, LOG_CRIT);

        assert_false(r1.success);
        assert_false(r2.success);
        assert_true(r3.success);
        assert_true(r4.success);
        assert_true(r5.success);
        assert_string_equal(f.fake.token, TEST_TOKEN);   /* the backend did get it */

        /* Logs were forwarded (so the scan below means something)... */
        assert_true(f.p.n_logs >= 4);
        assert_non_null(f.p.log_text);
        assert_non_null(strstr(f.p.log_text, "CODER_URL\n" TEST_URL "\n"));
        assert_non_null(strstr(f.p.log_text, "Tunnel stopped -> starting"));
        assert_non_null(strstr(f.p.log_text, "tunnel\n"));   /* logger name */
        for (unsigned i = 0; i < f.p.n_msgs; i++)
                if (f.p.cases[i] == VPN__TUNNEL_MESSAGE__MSG_LOG)
                        assert_false(f.p.had_rpc[i]);   /* unsolicited: no rpc field */
        /* ... and none of them contains the token. */
        if (strstr(f.p.log_text, TEST_TOKEN))
                fail_msg("API token leaked into a Log message:\n%s", f.p.log_text);
        assert_null(strstr(f.p.log_text, "s3cr3t"));
        fx_done(&f);
}

/* ---- Pure functions -------------------------------------------------------------------- */

static void test_validate_start(void **state) {
        Vpn__StartRequest req;
        Vpn__StartRequest__Header h, h2, *hp[2];
        const char *error = "unset";

        fill_start(&req, &h, hp, &(struct start_args) { .url = TEST_URL, .token = TEST_TOKEN,
                                                         .header_name = "X-Test-Header", .header_value = "test" });
        assert_int_equal(tunnel_validate_start(&req, &error), 0);
        assert_null(error);

        static const struct {
                const char *name, *value, *error;
        } headers[] = {
                { "X Test", "v", "invalid header: name is not an HTTP token" },
                { " X-Test", "v", "invalid header: name is not an HTTP token" },
                { "X-Test:", "v", "invalid header: name is not an HTTP token" },
                { "X-T\xc3\xa9st", "v", "invalid header: name is not an HTTP token" },
                { "X-Test\r\n", "v", "invalid header: name is not an HTTP token" },
                { "", "v", "invalid header: empty name" },
                { "X-Test", "a\r\nb", "invalid header: value contains a line break" },
                { "X-Test", "a\nb", "invalid header: value contains a line break" },
                { "X-Test", "a\r", "invalid header: value contains a line break" },
        };
        for (size_t i = 0; i < ELEMENTSOF(headers); i++) {
                h.name = (char *) headers[i].name;
                h.value = (char *) headers[i].value;
                error = NULL;
                assert_int_equal(tunnel_validate_start(&req, &error), -EINVAL);
                assert_non_null(error);
                assert_string_equal(error, headers[i].error);
        }

        /* Token characters, an empty value, a NULL value: fine. */
        h.name = (char *) "X-Custom_Header.v1!#$%&'*+^`|~";
        h.value = (char *) "";
        assert_int_equal(tunnel_validate_start(&req, &error), 0);
        h.value = NULL;
        assert_int_equal(tunnel_validate_start(&req, &error), 0);

        /* The second header is checked too. */
        vpn__start_request__header__init(&h2);
        h.value = (char *) "ok";
        h2.name = (char *) "Bad Name";
        hp[1] = &h2;
        req.n_headers = 2;
        assert_int_equal(tunnel_validate_start(&req, &error), -EINVAL);
        assert_string_equal(error, "invalid header: name is not an HTTP token");
        req.n_headers = 1;

        /* Order of checks: url, then token, then headers. */
        h.name = (char *) "Bad Name";
        req.coder_url = (char *) "";
        req.api_token = (char *) "";
        assert_int_equal(tunnel_validate_start(&req, &error), -EINVAL);
        assert_string_equal(error, "missing coder url");
        req.coder_url = (char *) TEST_URL;
        assert_int_equal(tunnel_validate_start(&req, &error), -EINVAL);
        assert_string_equal(error, "missing api token");
        req.api_token = (char *) "tok\nen";
        assert_int_equal(tunnel_validate_start(&req, &error), -EINVAL);
        assert_string_equal(error, "invalid api token: contains a line break");
        req.api_token = (char *) TEST_TOKEN;
        assert_int_equal(tunnel_validate_start(&req, &error), -EINVAL);
        assert_string_equal(error, "invalid header: name is not an HTTP token");
        req.coder_url = (char *) "gopher://coder.example.com";
        assert_int_equal(tunnel_validate_start(&req, &error), -EINVAL);
        assert_string_equal(error, "invalid coder url: want an http:// or https:// URL with a host");
}

static void test_telemetry_header(void **state) {
        Vpn__StartRequest req = VPN__START_REQUEST__INIT;
        char *s = (char *) "not touched";

        /* None set: NULL. */
        assert_int_equal(tunnel_telemetry_header(&req, &s), 0);
        assert_null(s);
        req.device_id = req.device_os = req.coder_desktop_version = NULL;
        s = (char *) "not touched";
        assert_int_equal(tunnel_telemetry_header(&req, &s), 0);
        assert_null(s);

        req.device_id = (char *) "device001";
        req.device_os = (char *) "macOS";
        req.coder_desktop_version = (char *) "0.24.8";
        assert_int_equal(tunnel_telemetry_header(&req, &s), 0);
        assert_non_null(s);
        assert_string_equal(s, "{\"device_id\":\"device001\",\"device_os\":\"macOS\",\"coder_desktop_version\":\"0.24.8\"}");
        free(s);

        /* One is enough; the others are present and empty. */
        req.device_id = (char *) "";
        req.device_os = (char *) "linux";
        req.coder_desktop_version = NULL;
        assert_int_equal(tunnel_telemetry_header(&req, &s), 0);
        assert_string_equal(s, "{\"device_id\":\"\",\"device_os\":\"linux\",\"coder_desktop_version\":\"\"}");
        free(s);

        /* Values are JSON-escaped. */
        req.device_os = (char *) "a\"b\\c";
        assert_int_equal(tunnel_telemetry_header(&req, &s), 0);
        assert_string_equal(s, "{\"device_id\":\"\",\"device_os\":\"a\\\"b\\\\c\",\"coder_desktop_version\":\"\"}");
        free(s);
}

/* The backend gets the request's headers, then the telemetry header. */
static void test_backend_headers(void **state) {
        struct fx f;
        struct reply r1 = {}, r2 = {}, stop = {};

        fx_init(&f, MANAGER, TUNNEL);
        mgr_start(&f.p, &(struct start_args) { .url = TEST_URL, .token = TEST_TOKEN, .header_name = "X-Test-Header",
                                               .header_value = "test", .device_id = "device001", .device_os = "macOS",
                                               .version = "0.24.8" }, &r1);
        assert_true(RUN_UNTIL(f.e, r1.n == 1));
        assert_true(r1.success);
        assert_int_equal(f.fake.n_headers, 2);
        assert_string_equal(f.fake.header_names[0], "X-Test-Header");
        assert_string_equal(f.fake.header_values[0], "test");
        assert_string_equal(f.fake.header_names[1], "Coder-Desktop-Telemetry");
        assert_string_equal(f.fake.header_values[1],
                            "{\"device_id\":\"device001\",\"device_os\":\"macOS\",\"coder_desktop_version\":\"0.24.8\"}");
        mgr_simple(&f.p, VPN__MANAGER_MESSAGE__MSG_STOP, &stop);
        assert_true(RUN_UNTIL(f.e, f.p.n_closed == 1));
        peer_done(&f.p);
        f.p = (struct peer) {};

        /* No telemetry fields, no header. A new manager connection. */
        connect_peer(&f, &f.p, MANAGER, TUNNEL);
        mgr_start(&f.p, &(struct start_args) { .url = TEST_URL, .token = TEST_TOKEN }, &r2);
        assert_true(RUN_UNTIL(f.e, r2.n == 1));
        assert_true(r2.success);
        assert_int_equal(f.fake.n_start, 2);
        assert_int_equal(f.fake.n_headers, 0);
        fx_done(&f);
}

static int teardown_log(void **state) {
        log_open(LOG_TARGET_STDERR, LOG_CRIT);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lifecycle),
                cmocka_unit_test(test_start_validation),
                cmocka_unit_test(test_second_start),
                cmocka_unit_test(test_stop_before_start),
                cmocka_unit_test(test_start_queued_after_stop_is_dropped),
                cmocka_unit_test(test_start_failure),
                cmocka_unit_test(test_queued_behind_async_start),
                cmocka_unit_test(test_get_peer_update_while_starting),
                cmocka_unit_test(test_wake),
                cmocka_unit_test(test_raw_manager_vectors),
                cmocka_unit_test(test_raw_manager_wake_old_version),
                cmocka_unit_test(test_service_client),
                cmocka_unit_test(test_manager_and_client),
                cmocka_unit_test(test_detach),
                cmocka_unit_test(test_manager_leaves_during_start),
                cmocka_unit_test(test_shutdown),
                cmocka_unit_test_teardown(test_no_token_in_logs, teardown_log),
                cmocka_unit_test(test_validate_start),
                cmocka_unit_test(test_telemetry_header),
                cmocka_unit_test(test_backend_headers),
        };

        signal(SIGPIPE, SIG_IGN);   /* as codervpnd does */
        log_open(LOG_TARGET_STDERR, LOG_CRIT);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
