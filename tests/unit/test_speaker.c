/* SPDX-License-Identifier: MIT */
/* The speaker: handshake, RPC routing, queueing and closing (spec §2-§4). */
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
#include "unit-helpers.h"

#define MAX_REC 32

/* One end of a connection, as its callbacks saw it. */
struct side {
        struct speaker *s;
        unsigned n_ready;
        struct vpn_version version;
        unsigned n_msgs;
        uint64_t msg_ids[MAX_REC];
        uint32_t cases[MAX_REC];
        bool had_rpc[MAX_REC];
        char texts[MAX_REC][64];
        unsigned n_closed;
        int closed_error;
        bool unref_on_close;     /* drop our reference from inside the closed callback */
        bool unref_on_message;   /* ... or from inside the message callback */
};

static void on_ready(struct speaker *s, void *userdata) {
        struct side *d = userdata;
        assert_ptr_equal(s, d->s);
        d->n_ready++;
        d->version = speaker_version(s);
}

static void text_of(const ProtobufCMessage *m, char out[64]) {
        out[0] = '\0';
        if (m->descriptor == &vpn__tunnel_message__descriptor) {
                const Vpn__TunnelMessage *t = (const Vpn__TunnelMessage *) m;
                if (t->msg_case == VPN__TUNNEL_MESSAGE__MSG_LOG)
                        snprintf(out, 64, "%s", t->log->message);
                else if (t->msg_case == VPN__TUNNEL_MESSAGE__MSG_STOP)
                        snprintf(out, 64, "%s", t->stop->error_message);
                else if (t->msg_case == VPN__TUNNEL_MESSAGE__MSG_START)
                        snprintf(out, 64, "%s", t->start->error_message);
        } else if (m->descriptor == &vpn__manager_message__descriptor) {
                const Vpn__ManagerMessage *t = (const Vpn__ManagerMessage *) m;
                if (t->msg_case == VPN__MANAGER_MESSAGE__MSG_START)
                        snprintf(out, 64, "%s", t->start->coder_url);
                else if (t->msg_case == VPN__MANAGER_MESSAGE__MSG_NETWORK_SETTINGS)
                        snprintf(out, 64, "%s", t->network_settings->error_message);
        }
}

static void on_message(struct speaker *s, ProtobufCMessage *m, uint64_t msg_id, void *userdata) {
        struct side *d = userdata;

        assert_ptr_equal(s, d->s);
        assert_ptr_equal(m->descriptor, vpn_role_incoming(speaker_role(s)));
        assert_true(d->n_msgs < MAX_REC);
        d->msg_ids[d->n_msgs] = msg_id;
        d->cases[d->n_msgs] = vpn_message_case(m);
        d->had_rpc[d->n_msgs] = vpn_message_rpc(m) != NULL;
        /* The id given is the one on the wire. */
        if (vpn_message_rpc(m))
                assert_int_equal(vpn_message_rpc(m)->msg_id, msg_id);
        text_of(m, d->texts[d->n_msgs]);
        d->n_msgs++;
        protobuf_c_message_free_unpacked(m, NULL);
        if (d->unref_on_message) {
                d->s = NULL;
                speaker_unref(s);
        }
}

static void on_closed(struct speaker *s, int error, void *userdata) {
        struct side *d = userdata;
        d->n_closed++;
        d->closed_error = error;
        if (d->unref_on_close && d->s) {
                d->s = NULL;
                speaker_unref(s);
        }
}

static const struct speaker_ops side_ops = {
        .ready = on_ready,
        .message = on_message,
        .closed = on_closed,
};

/* A reply callback's record. */
struct reply_rec {
        unsigned n;
        int error;
        bool was_null;
        uint32_t msg_case;
        uint64_t response_to;
        char text[64];
        unsigned seq;
};
static unsigned reply_seq;

static void on_reply(struct speaker *s, int error, ProtobufCMessage *reply, void *userdata) {
        struct reply_rec *r = userdata;

        r->n++;
        r->error = error;
        r->was_null = reply == NULL;
        r->seq = reply_seq++;
        if (reply) {
                assert_int_equal(error, 0);
                r->msg_case = vpn_message_case(reply);
                assert_non_null(vpn_message_rpc(reply));
                r->response_to = vpn_message_rpc(reply)->response_to;
                assert_int_equal(vpn_message_rpc(reply)->msg_id, 0);
                text_of(reply, r->text);
                protobuf_c_message_free_unpacked(reply, NULL);
        }
}

/* ---- Fixtures ------------------------------------------------------------------------- */

static void new_side(sd_event *e, struct side *d, int fd, unsigned roles, const char *description) {
        struct speaker_config config = { .roles = roles, .description = description };
        int wfd = dup(fd);
        assert_true(wfd >= 0);
        assert_int_equal(speaker_new(&d->s, e, fd, wfd, &config, &side_ops, d), 0);
        assert_non_null(d->s);
}

/* Two speakers on one socketpair. */
static void new_pair(sd_event *e, struct side *a, unsigned roles_a, struct side *b, unsigned roles_b) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        new_side(e, a, sv[0], roles_a, "side a");
        new_side(e, b, sv[1], roles_b, "side b");
}

/* A speaker and the raw other end of its socket (non-blocking). */
static int new_raw(sd_event *e, struct side *a, unsigned roles) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        new_side(e, a, sv[0], roles, "raw peer");
        set_nonblocking(sv[1]);
        return sv[1];
}

static void drop(struct side *d) {
        if (d->s)
                d->s = speaker_unref(d->s);
}

#define MANAGER (1u << VPN_ROLE_MANAGER)
#define TUNNEL (1u << VPN_ROLE_TUNNEL)
#define CLIENT (1u << VPN_ROLE_CLIENT)
#define SERVICE (1u << VPN_ROLE_SERVICE)

/* A manager and a tunnel with the handshake done. */
static sd_event *connected(struct side *mgr, struct side *tun) {
        sd_event *e = NULL;
        assert_true(sd_event_new(&e) >= 0);
        new_pair(e, mgr, MANAGER, tun, TUNNEL);
        assert_true(RUN_UNTIL(e, mgr->n_ready == 1 && tun->n_ready == 1));
        return e;
}

/* ---- Messages ------------------------------------------------------------------------- */

static int send_log(struct speaker *s, const char *text) {
        Vpn__TunnelMessage m = VPN__TUNNEL_MESSAGE__INIT;
        Vpn__Log log = VPN__LOG__INIT;
        log.message = (char *) text;
        m.msg_case = VPN__TUNNEL_MESSAGE__MSG_LOG;
        m.log = &log;
        int r = speaker_send(s, &m.base);
        assert_null(m.rpc);   /* the caller's message is left as it was */
        return r;
}

static int mgr_request(struct speaker *s, Vpn__ManagerMessage__MsgCase which, struct reply_rec *rec) {
        Vpn__ManagerMessage m = VPN__MANAGER_MESSAGE__INIT;
        Vpn__StopRequest stop = VPN__STOP_REQUEST__INIT;
        Vpn__WakeRequest wake = VPN__WAKE_REQUEST__INIT;
        Vpn__GetPeerUpdate gpu = VPN__GET_PEER_UPDATE__INIT;

        m.msg_case = which;
        switch (which) {
        case VPN__MANAGER_MESSAGE__MSG_STOP: m.stop = &stop; break;
        case VPN__MANAGER_MESSAGE__MSG_WAKE: m.wake = &wake; break;
        case VPN__MANAGER_MESSAGE__MSG_GET_PEER_UPDATE: m.get_peer_update = &gpu; break;
        default: break;
        }
        int r = speaker_request(s, &m.base, on_reply, rec);
        assert_null(m.rpc);
        return r;
}

static int tun_reply_stop(struct speaker *s, uint64_t id, const char *error) {
        Vpn__TunnelMessage m = VPN__TUNNEL_MESSAGE__INIT;
        Vpn__StopResponse stop = VPN__STOP_RESPONSE__INIT;
        stop.success = error == NULL;
        stop.error_message = (char *) (error ?: "");
        m.msg_case = VPN__TUNNEL_MESSAGE__MSG_STOP;
        m.stop = &stop;
        int r = speaker_reply(s, id, &m.base);
        assert_null(m.rpc);
        return r;
}

static int tun_reply_wake(struct speaker *s, uint64_t id) {
        Vpn__TunnelMessage m = VPN__TUNNEL_MESSAGE__INIT;
        Vpn__WakeResponse wake = VPN__WAKE_RESPONSE__INIT;
        m.msg_case = VPN__TUNNEL_MESSAGE__MSG_WAKE;
        m.wake = &wake;
        return speaker_reply(s, id, &m.base);
}

static int tun_reply_peers(struct speaker *s, uint64_t id) {
        Vpn__TunnelMessage m = VPN__TUNNEL_MESSAGE__INIT;
        Vpn__PeerUpdate pu = VPN__PEER_UPDATE__INIT;
        m.msg_case = VPN__TUNNEL_MESSAGE__MSG_PEER_UPDATE;
        m.peer_update = &pu;
        return speaker_reply(s, id, &m.base);
}

static int tun_request_mtu(struct speaker *s, uint32_t mtu, struct reply_rec *rec) {
        Vpn__TunnelMessage m = VPN__TUNNEL_MESSAGE__INIT;
        Vpn__NetworkSettingsRequest ns = VPN__NETWORK_SETTINGS_REQUEST__INIT;
        ns.mtu = mtu;
        m.msg_case = VPN__TUNNEL_MESSAGE__MSG_NETWORK_SETTINGS;
        m.network_settings = &ns;
        return speaker_request(s, &m.base, on_reply, rec);
}

/* ---- Handshake between two speakers ---------------------------------------------------- */

static void test_handshake_ready(void **state) {
        struct side mgr = {}, tun = {};
        sd_event *e = connected(&mgr, &tun);

        assert_int_equal(mgr.version.major, 1);
        assert_int_equal(mgr.version.minor, 3);
        assert_int_equal(tun.version.major, 1);
        assert_int_equal(tun.version.minor, 3);
        assert_int_equal(speaker_role(mgr.s), VPN_ROLE_MANAGER);
        assert_int_equal(speaker_role(tun.s), VPN_ROLE_TUNNEL);
        assert_true(speaker_is_open(mgr.s));
        assert_true(speaker_is_open(tun.s));
        assert_string_equal(speaker_description(mgr.s), "side a");
        assert_ptr_equal(speaker_get_userdata(tun.s), &tun);
        assert_int_equal(mgr.n_closed + tun.n_closed, 0);

        /* ready is called once. */
        run_idle(e);
        assert_int_equal(mgr.n_ready, 1);
        assert_int_equal(tun.n_ready, 1);

        drop(&mgr);
        drop(&tun);
        sd_event_unref(e);
}

static void test_new_invalid(void **state) {
        sd_event *e = NULL;
        struct speaker *s = NULL;
        struct speaker_config config = { .roles = TUNNEL };
        struct speaker_ops no_message = { .ready = on_ready };
        int sv[2];

        assert_true(sd_event_new(&e) >= 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);

        /* The same fd twice: refused, and the fd is closed (ownership was taken). */
        int fd = dup(sv[0]);
        assert_int_equal(speaker_new(&s, e, fd, fd, &config, &side_ops, NULL), -EINVAL);
        assert_true(fcntl(fd, F_GETFD) < 0 && errno == EBADF);

        int r = dup(sv[0]), w = dup(sv[0]);
        config.roles = 0;
        assert_int_equal(speaker_new(&s, e, r, w, &config, &side_ops, NULL), -EINVAL);
        assert_true(fcntl(r, F_GETFD) < 0 && errno == EBADF);
        assert_true(fcntl(w, F_GETFD) < 0 && errno == EBADF);

        r = dup(sv[0]);
        w = dup(sv[0]);
        config.roles = TUNNEL;
        assert_int_equal(speaker_new(&s, e, r, w, &config, &no_message, NULL), -EINVAL);
        assert_true(fcntl(r, F_GETFD) < 0 && errno == EBADF);
        assert_true(fcntl(w, F_GETFD) < 0 && errno == EBADF);

        assert_int_equal(speaker_new(&s, e, -1, dup(sv[0]), &config, &side_ops, NULL), -EINVAL);
        assert_null(s);

        close(sv[0]);
        close(sv[1]);
        sd_event_unref(e);
}

/* ---- RPC ------------------------------------------------------------------------------ */

static void test_request_ids(void **state) {
        struct side mgr = {}, tun = {};
        struct reply_rec recs[5] = {};
        sd_event *e = connected(&mgr, &tun);

        assert_int_equal(mgr_request(mgr.s, VPN__MANAGER_MESSAGE__MSG_GET_PEER_UPDATE, &recs[0]), 0);
        assert_int_equal(mgr_request(mgr.s, VPN__MANAGER_MESSAGE__MSG_STOP, &recs[1]), 0);
        assert_int_equal(mgr_request(mgr.s, VPN__MANAGER_MESSAGE__MSG_WAKE, &recs[2]), 0);
        assert_true(RUN_UNTIL(e, tun.n_msgs == 3));
        for (unsigned i = 0; i < 3; i++) {
                assert_int_equal(tun.msg_ids[i], i + 1);
                assert_true(tun.had_rpc[i]);
        }
        assert_int_equal(tun.cases[0], VPN__MANAGER_MESSAGE__MSG_GET_PEER_UPDATE);
        assert_int_equal(tun.cases[1], VPN__MANAGER_MESSAGE__MSG_STOP);
        assert_int_equal(tun.cases[2], VPN__MANAGER_MESSAGE__MSG_WAKE);

        /* The other side's counter is its own, also from 1. */
        assert_int_equal(tun_request_mtu(tun.s, 1200, &recs[3]), 0);
        assert_int_equal(tun_request_mtu(tun.s, 1300, &recs[4]), 0);
        assert_true(RUN_UNTIL(e, mgr.n_msgs == 2));
        assert_int_equal(mgr.msg_ids[0], 1);
        assert_int_equal(mgr.msg_ids[1], 2);
        assert_int_equal(mgr.cases[0], VPN__TUNNEL_MESSAGE__MSG_NETWORK_SETTINGS);

        /* A failed request does not use up an id. */
        Vpn__ManagerMessage unset = VPN__MANAGER_MESSAGE__INIT;
        assert_int_equal(speaker_request(mgr.s, &unset.base, on_reply, NULL), -EINVAL);
        struct reply_rec r6 = {};
        assert_int_equal(mgr_request(mgr.s, VPN__MANAGER_MESSAGE__MSG_STOP, &r6), 0);
        assert_true(RUN_UNTIL(e, tun.n_msgs == 4));
        assert_int_equal(tun.msg_ids[3], 4);

        for (unsigned i = 0; i < 5; i++)
                assert_int_equal(recs[i].n, 0);
        drop(&mgr);
        drop(&tun);
        /* Pending requests failed when their speaker went away. */
        for (unsigned i = 0; i < 5; i++) {
                assert_int_equal(recs[i].n, 1);
                assert_int_equal(recs[i].error, -EPIPE);
        }
        assert_int_equal(r6.error, -EPIPE);
        sd_event_unref(e);
}

static void test_replies_out_of_order(void **state) {
        struct side mgr = {}, tun = {};
        struct reply_rec recs[3] = {};
        sd_event *e = connected(&mgr, &tun);

        reply_seq = 0;
        assert_int_equal(mgr_request(mgr.s, VPN__MANAGER_MESSAGE__MSG_STOP, &recs[0]), 0);
        assert_int_equal(mgr_request(mgr.s, VPN__MANAGER_MESSAGE__MSG_WAKE, &recs[1]), 0);
        assert_int_equal(mgr_request(mgr.s, VPN__MANAGER_MESSAGE__MSG_GET_PEER_UPDATE, &recs[2]), 0);
        assert_true(RUN_UNTIL(e, tun.n_msgs == 3));

        /* Answer 3, then 1, then 2. */
        assert_int_equal(tun_reply_peers(tun.s, 3), 0);
        assert_int_equal(tun_reply_stop(tun.s, 1, "one"), 0);
        assert_int_equal(tun_reply_wake(tun.s, 2), 0);
        assert_true(RUN_UNTIL(e, recs[0].n + recs[1].n + recs[2].n == 3));

        assert_int_equal(recs[2].seq, 0);
        assert_int_equal(recs[2].msg_case, VPN__TUNNEL_MESSAGE__MSG_PEER_UPDATE);
        assert_int_equal(recs[2].response_to, 3);
        assert_int_equal(recs[0].seq, 1);
        assert_int_equal(recs[0].msg_case, VPN__TUNNEL_MESSAGE__MSG_STOP);
        assert_string_equal(recs[0].text, "one");
        assert_int_equal(recs[0].response_to, 1);
        assert_int_equal(recs[1].seq, 2);
        assert_int_equal(recs[1].msg_case, VPN__TUNNEL_MESSAGE__MSG_WAKE);
        assert_int_equal(recs[1].response_to, 2);
        for (unsigned i = 0; i < 3; i++) {
                assert_int_equal(recs[i].n, 1);
                assert_int_equal(recs[i].error, 0);
        }
        /* Responses go to the reply callbacks only. */
        assert_int_equal(mgr.n_msgs, 0);

        /* And the other way round: the tunnel's request is answered by the manager. */
        struct reply_rec ns = {};
        assert_int_equal(tun_request_mtu(tun.s, 1200, &ns), 0);
        assert_true(RUN_UNTIL(e, mgr.n_msgs == 1));
        Vpn__ManagerMessage m = VPN__MANAGER_MESSAGE__INIT;
        Vpn__NetworkSettingsResponse resp = VPN__NETWORK_SETTINGS_RESPONSE__INIT;
        resp.success = false;
        resp.error_message = (char *) "no thanks";
        m.msg_case = VPN__MANAGER_MESSAGE__MSG_NETWORK_SETTINGS;
        m.network_settings = &resp;
        assert_int_equal(speaker_reply(mgr.s, mgr.msg_ids[0], &m.base), 0);
        assert_true(RUN_UNTIL(e, ns.n == 1));
        assert_int_equal(ns.error, 0);
        assert_int_equal(ns.msg_case, VPN__MANAGER_MESSAGE__MSG_NETWORK_SETTINGS);
        assert_string_equal(ns.text, "no thanks");
        assert_int_equal(tun.n_msgs, 3);

        drop(&mgr);
        drop(&tun);
        for (unsigned i = 0; i < 3; i++)
                assert_int_equal(recs[i].n, 1);   /* answered ones are not failed again */
        sd_event_unref(e);
}

static void test_unknown_response_dropped(void **state) {
        struct side mgr = {}, tun = {};
        struct reply_rec rec = {};
        sd_event *e = connected(&mgr, &tun);

        assert_int_equal(mgr_request(mgr.s, VPN__MANAGER_MESSAGE__MSG_STOP, &rec), 0);
        assert_true(RUN_UNTIL(e, tun.n_msgs == 1));

        assert_int_equal(tun_reply_stop(tun.s, 99, "unknown"), 0);
        assert_int_equal(send_log(tun.s, "after"), 0);
        assert_true(RUN_UNTIL(e, mgr.n_msgs == 1));
        assert_int_equal(mgr.cases[0], VPN__TUNNEL_MESSAGE__MSG_LOG);
        assert_string_equal(mgr.texts[0], "after");
        assert_int_equal(rec.n, 0);
        assert_true(speaker_is_open(mgr.s));
        assert_int_equal(mgr.n_closed, 0);

        /* Still working: the real answer arrives; a second answer to it is dropped too. */
        assert_int_equal(tun_reply_stop(tun.s, 1, NULL), 0);
        assert_int_equal(tun_reply_stop(tun.s, 1, "duplicate"), 0);
        assert_int_equal(send_log(tun.s, "end"), 0);
        assert_true(RUN_UNTIL(e, mgr.n_msgs == 2));
        assert_int_equal(rec.n, 1);
        assert_int_equal(rec.error, 0);
        assert_string_equal(rec.text, "");
        assert_string_equal(mgr.texts[1], "end");
        assert_true(speaker_is_open(mgr.s));

        drop(&mgr);
        drop(&tun);
        assert_int_equal(rec.n, 1);
        sd_event_unref(e);
}

static void test_unsolicited_has_no_rpc(void **state) {
        struct side mgr = {}, tun = {};
        sd_event *e = connected(&mgr, &tun);

        assert_int_equal(send_log(tun.s, "hello"), 0);
        assert_true(RUN_UNTIL(e, mgr.n_msgs == 1));
        assert_int_equal(mgr.msg_ids[0], 0);
        assert_false(mgr.had_rpc[0]);
        assert_int_equal(mgr.cases[0], VPN__TUNNEL_MESSAGE__MSG_LOG);
        assert_string_equal(mgr.texts[0], "hello");

        /* A message that already carries an rpc is still sent without it, and keeps its own. */
        Vpn__TunnelMessage m = VPN__TUNNEL_MESSAGE__INIT;
        Vpn__Log log = VPN__LOG__INIT;
        Vpn__RPC rpc = VPN__RPC__INIT;
        rpc.msg_id = 42;
        log.message = (char *) "with rpc";
        m.rpc = &rpc;
        m.msg_case = VPN__TUNNEL_MESSAGE__MSG_LOG;
        m.log = &log;
        assert_int_equal(speaker_send(tun.s, &m.base), 0);
        assert_ptr_equal(m.rpc, &rpc);
        assert_true(RUN_UNTIL(e, mgr.n_msgs == 2));
        assert_false(mgr.had_rpc[1]);
        assert_int_equal(mgr.msg_ids[1], 0);
        assert_string_equal(mgr.texts[1], "with rpc");

        drop(&mgr);
        drop(&tun);
        sd_event_unref(e);
}

static void test_send_invalid(void **state) {
        struct side mgr = {}, tun = {};
        sd_event *e = connected(&mgr, &tun);
        Vpn__TunnelMessage unset = VPN__TUNNEL_MESSAGE__INIT;
        Vpn__ManagerMessage wrong = VPN__MANAGER_MESSAGE__INIT;
        Vpn__StopRequest stop = VPN__STOP_REQUEST__INIT;

        assert_int_equal(speaker_send(tun.s, &unset.base), -EINVAL);
        assert_int_equal(speaker_request(tun.s, &unset.base, on_reply, NULL), -EINVAL);
        assert_int_equal(speaker_reply(tun.s, 1, &unset.base), -EINVAL);
        /* A manager's message on the tunnel side is the wrong type. */
        wrong.msg_case = VPN__MANAGER_MESSAGE__MSG_STOP;
        wrong.stop = &stop;
        assert_int_equal(speaker_send(tun.s, &wrong.base), -EINVAL);
        /* ... and the right one on the manager side. */
        struct reply_rec rr = {};
        assert_int_equal(speaker_request(mgr.s, &wrong.base, on_reply, &rr), 0);
        assert_int_equal(send_log(tun.s, "ok"), 0);
        /* Replying to id 0 is not a reply. */
        Vpn__TunnelMessage log_msg = VPN__TUNNEL_MESSAGE__INIT;
        Vpn__Log log = VPN__LOG__INIT;
        log_msg.msg_case = VPN__TUNNEL_MESSAGE__MSG_LOG;
        log_msg.log = &log;
        assert_int_equal(speaker_reply(tun.s, 0, &log_msg.base), -EINVAL);

        /* Only the valid messages arrived: the log here, the manager's stop there. */
        assert_true(RUN_UNTIL(e, mgr.n_msgs == 1 && tun.n_msgs == 1));
        run_idle(e);
        assert_int_equal(mgr.n_msgs, 1);
        assert_string_equal(mgr.texts[0], "ok");
        assert_int_equal(tun.n_msgs, 1);
        assert_int_equal(tun.cases[0], VPN__MANAGER_MESSAGE__MSG_STOP);
        assert_true(speaker_is_open(mgr.s) && speaker_is_open(tun.s));

        drop(&mgr);
        drop(&tun);
        sd_event_unref(e);
}

static void test_send_before_handshake(void **state) {
        struct side mgr = {}, tun = {};
        struct reply_rec rec = {};
        sd_event *e = NULL;

        assert_true(sd_event_new(&e) >= 0);
        new_pair(e, &mgr, MANAGER, &tun, TUNNEL);
        assert_false(speaker_is_open(tun.s));
        assert_int_equal(send_log(tun.s, "early"), -ENOTCONN);
        assert_int_equal(tun_request_mtu(tun.s, 1200, &rec), -ENOTCONN);
        assert_int_equal(tun_reply_stop(tun.s, 1, NULL), -ENOTCONN);
        assert_int_equal(mgr_request(mgr.s, VPN__MANAGER_MESSAGE__MSG_STOP, &rec), -ENOTCONN);

        assert_true(RUN_UNTIL(e, mgr.n_ready == 1 && tun.n_ready == 1));
        assert_int_equal(send_log(tun.s, "late"), 0);
        assert_true(RUN_UNTIL(e, mgr.n_msgs == 1));
        assert_string_equal(mgr.texts[0], "late");   /* the early one was not queued */
        run_idle(e);
        assert_int_equal(mgr.n_msgs, 1);
        assert_int_equal(rec.n, 0);

        drop(&mgr);
        drop(&tun);
        assert_int_equal(rec.n, 0);   /* refused requests never get a callback */
        sd_event_unref(e);
}

static void test_close_after_flush(void **state) {
        struct side mgr = {}, tun = {};
        sd_event *e = connected(&mgr, &tun);

        assert_int_equal(send_log(tun.s, "m0"), 0);
        assert_int_equal(send_log(tun.s, "m1"), 0);
        assert_int_equal(send_log(tun.s, "m2"), 0);
        speaker_close_after_flush(tun.s);
        assert_false(speaker_is_open(tun.s));
        assert_int_equal(send_log(tun.s, "refused"), -ENOTCONN);   /* nothing more accepted */
        speaker_close_after_flush(tun.s);                            /* harmless twice */

        assert_true(RUN_UNTIL(e, mgr.n_closed == 1 && tun.n_closed == 1));
        assert_int_equal(mgr.n_msgs, 3);
        assert_string_equal(mgr.texts[0], "m0");
        assert_string_equal(mgr.texts[1], "m1");
        assert_string_equal(mgr.texts[2], "m2");
        assert_int_equal(mgr.closed_error, 0);
        assert_int_equal(tun.closed_error, 0);
        assert_false(speaker_is_open(mgr.s));

        /* With nothing queued it closes at once. */
        drop(&mgr);
        drop(&tun);
        sd_event_unref(e);

        struct side a = {}, b = {};
        e = connected(&a, &b);
        speaker_close_after_flush(b.s);
        assert_int_equal(b.n_closed, 1);
        assert_int_equal(b.closed_error, 0);
        assert_true(RUN_UNTIL(e, a.n_closed == 1));
        assert_int_equal(a.closed_error, 0);
        assert_int_equal(a.n_msgs, 0);
        drop(&a);
        drop(&b);
        sd_event_unref(e);
}

static void test_pending_fail_on_peer_close(void **state) {
        struct side mgr = {}, tun = {};
        struct reply_rec recs[2] = {};
        sd_event *e = connected(&mgr, &tun);

        assert_int_equal(mgr_request(mgr.s, VPN__MANAGER_MESSAGE__MSG_STOP, &recs[0]), 0);
        assert_int_equal(mgr_request(mgr.s, VPN__MANAGER_MESSAGE__MSG_WAKE, &recs[1]), 0);
        assert_true(RUN_UNTIL(e, tun.n_msgs == 2));

        speaker_close(tun.s, 0);
        assert_int_equal(tun.n_closed, 1);
        speaker_close(tun.s, -EIO);           /* idempotent: no second callback */
        assert_int_equal(tun.n_closed, 1);
        assert_int_equal(tun.closed_error, 0);

        assert_true(RUN_UNTIL(e, mgr.n_closed == 1));
        assert_int_equal(mgr.closed_error, 0);   /* EOF at a frame boundary */
        for (unsigned i = 0; i < 2; i++) {
                assert_int_equal(recs[i].n, 1);
                assert_int_equal(recs[i].error, -EPIPE);
                assert_true(recs[i].was_null);
        }
        assert_int_equal(mgr_request(mgr.s, VPN__MANAGER_MESSAGE__MSG_STOP, &recs[0]), -ENOTCONN);

        drop(&mgr);
        drop(&tun);
        assert_int_equal(recs[0].n, 1);
        sd_event_unref(e);
}

/* A local close fails our own pending requests with -EPIPE and reports the given error. */
static void test_local_close(void **state) {
        struct side mgr = {}, tun = {};
        struct reply_rec rec = {};
        sd_event *e = connected(&mgr, &tun);

        assert_int_equal(mgr_request(mgr.s, VPN__MANAGER_MESSAGE__MSG_STOP, &rec), 0);
        speaker_close(mgr.s, -ECANCELED);
        assert_int_equal(rec.n, 1);
        assert_int_equal(rec.error, -EPIPE);
        assert_int_equal(mgr.n_closed, 1);
        assert_int_equal(mgr.closed_error, -ECANCELED);
        assert_true(RUN_UNTIL(e, tun.n_closed == 1));
        assert_int_equal(tun.closed_error, 0);

        drop(&mgr);
        drop(&tun);
        sd_event_unref(e);
}

/* Owners may drop their reference from inside callbacks. */
static void test_unref_in_callbacks(void **state) {
        struct side mgr = {}, tun = {};
        sd_event *e = connected(&mgr, &tun);

        tun.unref_on_message = true;
        mgr.unref_on_close = true;
        struct reply_rec rec = {};
        assert_int_equal(mgr_request(mgr.s, VPN__MANAGER_MESSAGE__MSG_STOP, &rec), 0);
        assert_true(RUN_UNTIL(e, tun.n_msgs == 1 && mgr.n_closed == 1));
        assert_null(tun.s);
        assert_int_equal(tun.n_closed, 1);     /* the final unref closed it */
        assert_null(mgr.s);                    /* dropped from its closed callback */
        assert_int_equal(rec.n, 1);
        assert_int_equal(rec.error, -EPIPE);
        run_idle(e);
        sd_event_unref(e);
}

/* A peer that does not read is dropped once SPEAKER_QUEUE_MAX bytes are queued. */
static void test_queue_limit(void **state) {
        struct side mgr = {}, tun = {};
        sd_event *e = connected(&mgr, &tun);
        const size_t big = 8u * 1024 * 1024;
        char *text = malloc(big + 1);
        unsigned sent = 0;
        int r = 0;

        assert_non_null(text);
        memset(text, 'x', big);
        text[big] = '\0';
        /* Nothing is written while the loop does not run. */
        for (unsigned i = 0; i < 16 && r == 0; i++)
                if ((r = send_log(tun.s, text)) == 0)
                        sent++;
        free(text);
        assert_int_equal(r, -ENOBUFS);
        assert_int_equal(sent, SPEAKER_QUEUE_MAX / big - 1);   /* the last one would pass the limit */
        assert_false(speaker_is_open(tun.s));
        assert_int_equal(tun.n_closed, 0);                       /* reported from the loop, not here */
        assert_int_equal(send_log(tun.s, "small"), -ENOTCONN);
        assert_true(RUN_UNTIL(e, tun.n_closed == 1 && mgr.n_closed == 1));
        assert_int_equal(tun.closed_error, -ENOBUFS);
        drop(&mgr);
        drop(&tun);
        sd_event_unref(e);
}

/* ---- Raw peers ------------------------------------------------------------------------ */

static void raw_write_str(int fd, const char *s) {
        write_all(fd, s, strlen(s));
}

/* Reads the speaker's header line from the raw end and compares it. */
static void raw_expect_header(sd_event *e, int fd, const char *want) {
        char buf[VPN_HEADER_MAX + 2] = {};
        size_t n = strlen(want);
        assert_int_equal(read_exact_loop(e, fd, buf, n), (ssize_t) n);
        assert_string_equal(buf, want);
}

/* Reads one frame from the raw end, returns its payload as hex. */
static void raw_expect_frame(sd_event *e, int fd, const char *want_hex) {
        uint8_t len[4], payload[1024];
        char hex[2049];
        assert_int_equal(read_exact_loop(e, fd, len, 4), 4);
        uint32_t n = (uint32_t) len[0] << 24 | (uint32_t) len[1] << 16 | (uint32_t) len[2] << 8 | len[3];
        assert_true(n <= sizeof(payload));
        assert_int_equal(read_exact_loop(e, fd, payload, n), (ssize_t) n);
        hex_encode(payload, n, hex);
        assert_string_equal(hex, want_hex);
}

static void raw_write_frame_hex(int fd, const char *hex) {
        uint8_t b[1024];
        size_t n = hex_decode(hex, b + 4, sizeof(b) - 4);
        frame_put_len(b, (uint32_t) n);
        write_all(fd, b, n + 4);
}

/* Writes @input to a fresh tunnel speaker and expects it to close with @error. */
static void expect_raw_close(const char *input, size_t len, unsigned roles, bool ready, int error) {
        struct side tun = {};
        sd_event *e = NULL;
        assert_true(sd_event_new(&e) >= 0);
        int raw = new_raw(e, &tun, roles);

        write_all(raw, input, len);
        assert_true(RUN_UNTIL(e, tun.n_closed == 1));
        assert_int_equal(tun.n_ready, ready ? 1 : 0);
        assert_int_equal(tun.closed_error, error);
        assert_int_equal(tun.n_msgs, 0);
        assert_false(speaker_is_open(tun.s));
        /* Nothing but (for a single-role speaker) its header, then the end. */
        if (roles == TUNNEL)
                raw_expect_header(e, raw, "codervpn tunnel 1.3\n");
        assert_raw_eof(e, raw);

        drop(&tun);
        close(raw);
        sd_event_unref(e);
}

static void test_raw_garbage_header(void **state) {
        expect_raw_close("ssh manager 1.1\n", strlen("ssh manager 1.1\n"), TUNNEL, false, -EINVAL);
        expect_raw_close("GET / HTTP/1.1\r\n", strlen("GET / HTTP/1.1\r\n"), TUNNEL, false, -EINVAL);
        expect_raw_close("codervpn manager 1.3\r\n", strlen("codervpn manager 1.3\r\n"), TUNNEL, false, -EINVAL);
        expect_raw_close("\n", 1, TUNNEL, false, -EINVAL);
        /* Roles it cannot talk to. */
        expect_raw_close("codervpn tunnel 1.3\n", strlen("codervpn tunnel 1.3\n"), TUNNEL, false, -EPROTO);
        expect_raw_close("codervpn client 1.0\n", strlen("codervpn client 1.0\n"), TUNNEL, false, -EPROTO);
        expect_raw_close("codervpn 1.1 tunnel\n", strlen("codervpn 1.1 tunnel\n"), TUNNEL, false, -EPROTO);
        expect_raw_close("codervpn tunnel 1.3\n", strlen("codervpn tunnel 1.3\n"), TUNNEL | SERVICE, false, -EPROTO);
        expect_raw_close("codervpn service 1.0\n", strlen("codervpn service 1.0\n"), TUNNEL | SERVICE, false, -EPROTO);
}

static void test_raw_header_too_large(void **state) {
        char bad[768];
        for (size_t i = 0; i < sizeof(bad); i += 3)
                memcpy(bad + i, "bad", 3);
        expect_raw_close(bad, sizeof(bad), TUNNEL, false, -EPROTO);
        expect_raw_close(bad, sizeof(bad), TUNNEL | SERVICE, false, -EPROTO);
}

/* "codervpn manager 1.3,<more versions>" of exactly @len bytes, plus '\n'. Leading
 * zeros pad the numbers ("0000000002.0000000000" is version 2.0). */
static void build_long_header(char *buf, size_t len) {
        strcpy(buf, "codervpn manager 1.3");
        for (unsigned major = 2; strlen(buf) < len; major++) {
                size_t left = len - strlen(buf);
                size_t w = left < 22 ? left : 22;   /* ",MMMMMMMMMM.mmmmmmmmmm" */
                if (left - w > 0 && left - w < 4)
                        w = left - 4;               /* leave room for one last ",M.m" */
                int w_major = (int) (w - 3 < 10 ? w - 3 : 10);
                int w_minor = (int) w - 2 - w_major;
                char item[32];
                assert_true(w >= 4 && w_minor >= 1 && w_minor <= 10);
                assert_true(major < VPN_MAX_VERSIONS);
                snprintf(item, sizeof(item), ",%0*u.%0*u", w_major, major, w_minor, 0u);
                assert_int_equal(strlen(item), w);
                strcat(buf, item);
        }
        assert_int_equal(strlen(buf), len);
        strcat(buf, "\n");
}

static void test_raw_header_limit(void **state) {
        char buf[VPN_HEADER_MAX + 64];
        struct side tun = {};
        sd_event *e = NULL;

        /* Exactly VPN_HEADER_MAX bytes before the '\n': accepted. Written in two pieces. */
        build_long_header(buf, VPN_HEADER_MAX);
        assert_true(sd_event_new(&e) >= 0);
        int raw = new_raw(e, &tun, TUNNEL);
        write_all(raw, buf, 100);
        run_idle(e);
        assert_int_equal(tun.n_ready + tun.n_closed, 0);
        write_all(raw, buf + 100, strlen(buf) - 100);
        assert_true(RUN_UNTIL(e, tun.n_ready == 1));
        assert_int_equal(tun.version.major, 1);
        assert_int_equal(tun.version.minor, 3);
        assert_int_equal(tun.n_closed, 0);
        drop(&tun);
        close(raw);
        sd_event_unref(e);

        /* One more: "too large". */
        build_long_header(buf, VPN_HEADER_MAX + 1);
        expect_raw_close(buf, strlen(buf), TUNNEL, false, -EPROTO);
}

static void test_raw_oversize_frame(void **state) {
        static const char in[] = "codervpn manager 1.3\n\x01\x00\x00\x01";
        expect_raw_close(in, sizeof(in) - 1, TUNNEL, true, -EMSGSIZE);
        static const char in2[] = "codervpn manager 1.3\n\xff\xff\xff\xff";
        expect_raw_close(in2, sizeof(in2) - 1, TUNNEL, true, -EMSGSIZE);
}

static void test_raw_undecodable(void **state) {
        static const char ten[] = "codervpn manager 1.3\n\x00\x00\x00\x0a\0\0\0\0\0\0\0\0\0\0";
        expect_raw_close(ten, sizeof(ten) - 1, TUNNEL, true, -EBADMSG);
        static const char one[] = "codervpn manager 1.3\n\x00\x00\x00\x01\x00";
        expect_raw_close(one, sizeof(one) - 1, TUNNEL, true, -EBADMSG);
}

static void test_raw_no_common_major(void **state) {
        static const char in[] = "codervpn manager 2.0,3.0\n";
        expect_raw_close(in, strlen(in), TUNNEL, false, -EPROTONOSUPPORT);
        static const char in2[] = "codervpn client 2.0\n";
        expect_raw_close(in2, strlen(in2), TUNNEL | SERVICE, false, -EPROTONOSUPPORT);
}

static void test_raw_eof(void **state) {
        /* During the handshake. */
        static const char half[] = "codervpn man";
        struct side tun = {};
        sd_event *e = NULL;
        assert_true(sd_event_new(&e) >= 0);
        int raw = new_raw(e, &tun, TUNNEL);
        write_all(raw, half, strlen(half));
        assert_int_equal(shutdown(raw, SHUT_WR), 0);
        assert_true(RUN_UNTIL(e, tun.n_closed == 1));
        assert_true(tun.closed_error < 0);
        assert_int_equal(tun.n_ready, 0);
        drop(&tun);
        close(raw);

        /* Inside a frame: an error. */
        struct side t2 = {};
        raw = new_raw(e, &t2, TUNNEL);
        raw_write_str(raw, "codervpn manager 1.3\n");
        write_all(raw, "\x00\x00\x00\x05\x0a\x02", 6);
        assert_int_equal(shutdown(raw, SHUT_WR), 0);
        assert_true(RUN_UNTIL(e, t2.n_closed == 1));
        assert_int_equal(t2.closed_error, -EPIPE);
        assert_int_equal(t2.n_msgs, 0);
        drop(&t2);
        close(raw);

        /* At a frame boundary: a clean close, after the frame was delivered. */
        struct side t3 = {};
        raw = new_raw(e, &t3, TUNNEL);
        raw_write_str(raw, "codervpn manager 1.3\n");
        raw_write_frame_hex(raw, "0a0208022a00");
        assert_int_equal(shutdown(raw, SHUT_WR), 0);
        assert_true(RUN_UNTIL(e, t3.n_closed == 1));
        assert_int_equal(t3.closed_error, 0);
        assert_int_equal(t3.n_msgs, 1);
        assert_int_equal(t3.msg_ids[0], 2);
        assert_int_equal(t3.cases[0], VPN__MANAGER_MESSAGE__MSG_STOP);
        drop(&t3);
        close(raw);
        sd_event_unref(e);
}

/* Header and frames in one write; a zero-length frame and an empty message are ignored. */
static void test_raw_stream(void **state) {
        struct side tun = {};
        sd_event *e = NULL;
        uint8_t buf[256];
        size_t n = 0;

        assert_true(sd_event_new(&e) >= 0);
        int raw = new_raw(e, &tun, TUNNEL);

        memcpy(buf, "codervpn manager 1.1\n", 21);
        n = 21;
        n += hex_decode("00000006 0a0208022a00", buf + n, sizeof(buf) - n);   /* stop, id 2 */
        n += hex_decode("00000000", buf + n, sizeof(buf) - n);                 /* zero-length */
        n += hex_decode("00000004 0a020807", buf + n, sizeof(buf) - n);       /* rpc only, no arm */
        n += hex_decode("00000002 2a00", buf + n, sizeof(buf) - n);           /* stop, no rpc */
        n += hex_decode("00000006 0a0208041200", buf + n, sizeof(buf) - n);   /* get_peer_update, id 4 */
        write_all(raw, buf, n);

        assert_true(RUN_UNTIL(e, tun.n_msgs == 3));
        run_idle(e);
        assert_int_equal(tun.n_ready, 1);
        assert_int_equal(tun.version.major, 1);
        assert_int_equal(tun.version.minor, 1);   /* min(1.3, 1.1) */
        assert_int_equal(tun.n_msgs, 3);
        assert_int_equal(tun.msg_ids[0], 2);
        assert_int_equal(tun.cases[0], VPN__MANAGER_MESSAGE__MSG_STOP);
        assert_int_equal(tun.msg_ids[1], 0);      /* unsolicited */
        assert_false(tun.had_rpc[1]);
        assert_int_equal(tun.cases[1], VPN__MANAGER_MESSAGE__MSG_STOP);
        assert_int_equal(tun.msg_ids[2], 4);
        assert_int_equal(tun.cases[2], VPN__MANAGER_MESSAGE__MSG_GET_PEER_UPDATE);
        assert_true(speaker_is_open(tun.s));
        assert_int_equal(tun.n_closed, 0);

        drop(&tun);
        close(raw);
        sd_event_unref(e);
}

/* What the speaker puts on the wire is exactly the spec's bytes. */
static void test_raw_wire_bytes(void **state) {
        struct side tun = {};
        struct reply_rec rec = {};
        sd_event *e = NULL;

        assert_true(sd_event_new(&e) >= 0);
        int raw = new_raw(e, &tun, TUNNEL);
        raw_expect_header(e, raw, "codervpn tunnel 1.3\n");   /* written before reading theirs */
        raw_write_str(raw, "codervpn manager 1.3\n");
        assert_true(RUN_UNTIL(e, tun.n_ready == 1));

        /* Unsolicited: no rpc field at all. */
        Vpn__TunnelMessage m = VPN__TUNNEL_MESSAGE__INIT;
        Vpn__StartResponse start = VPN__START_RESPONSE__INIT;
        m.msg_case = VPN__TUNNEL_MESSAGE__MSG_START;
        m.start = &start;
        assert_int_equal(speaker_send(tun.s, &m.base), 0);
        raw_expect_frame(e, raw, "2a00");

        /* A request from us: msg_id 1. */
        assert_int_equal(tun_request_mtu(tun.s, 1200, &rec), 0);
        raw_expect_frame(e, raw, "0a020801220310b009");

        /* A reply: response_to, no msg_id. */
        raw_write_frame_hex(raw, "0a0208022a00");
        assert_true(RUN_UNTIL(e, tun.n_msgs == 1));
        assert_int_equal(tun_reply_stop(tun.s, tun.msg_ids[0], NULL), 0);
        raw_expect_frame(e, raw, "0a02100232020801");

        /* The manager answers our request. */
        raw_write_frame_hex(raw, "0a0210011a020801");
        assert_true(RUN_UNTIL(e, rec.n == 1));
        assert_int_equal(rec.error, 0);
        assert_int_equal(rec.msg_case, VPN__MANAGER_MESSAGE__MSG_NETWORK_SETTINGS);
        assert_int_equal(tun.n_msgs, 1);

        drop(&tun);
        assert_raw_eof(e, raw);
        close(raw);
        sd_event_unref(e);
}

/* The spec's handshake vectors, through a real tunnel speaker. */
static void test_raw_spec_vectors(void **state) {
        static const struct {
                const char *header;
                bool ok;
                unsigned minor;
        } v[] = {
                { "codervpn manager 1.3\n", true, 3 },
                { "codervpn manager 1.3,2.1\n", true, 3 },
                { "codervpn manager 1.0\n", true, 0 },
                { "codervpn manager 1.1\n", true, 1 },
                { "ssh manager 1.1\n", false, 0 },
                { "ssh manager\n", false, 0 },
                { "codervpn manager 2.0,3.0\n", false, 0 },
                { "codervpn 0.1 manager\n", false, 0 },
                { "codervpn 1.1 supervisor\n", false, 0 },
                { "codervpn 1.1 tunnel\n", false, 0 },
        };
        sd_event *e = NULL;
        assert_true(sd_event_new(&e) >= 0);

        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                struct side tun = {};
                int raw = new_raw(e, &tun, TUNNEL);
                raw_write_str(raw, v[i].header);
                if (!RUN_UNTIL(e, tun.n_ready + tun.n_closed > 0))
                        fail_msg("no outcome for %s", v[i].header);
                if (v[i].ok) {
                        if (tun.n_ready != 1 || tun.n_closed != 0)
                                fail_msg("%s: expected to be accepted", v[i].header);
                        assert_int_equal(tun.version.major, 1);
                        assert_int_equal(tun.version.minor, v[i].minor);
                } else {
                        if (tun.n_ready != 0 || tun.n_closed != 1 || tun.closed_error >= 0)
                                fail_msg("%s: expected to be rejected", v[i].header);
                }
                drop(&tun);
                close(raw);
        }
        sd_event_unref(e);
}

/* ---- Several roles on one socket ------------------------------------------------------ */

static void test_multi_role_raw(void **state) {
        struct side svc = {};
        sd_event *e = NULL;
        uint8_t b;

        assert_true(sd_event_new(&e) >= 0);
        int raw = new_raw(e, &svc, TUNNEL | SERVICE);
        /* It waits for ours before writing anything. */
        run_idle(e);
        assert_true(read(raw, &b, 1) < 0 && errno == EAGAIN);
        raw_write_str(raw, "codervpn manager 1.3\n");
        raw_expect_header(e, raw, "codervpn tunnel 1.3\n");
        assert_true(RUN_UNTIL(e, svc.n_ready == 1));
        assert_int_equal(speaker_role(svc.s), VPN_ROLE_TUNNEL);
        drop(&svc);
        close(raw);

        struct side s2 = {};
        raw = new_raw(e, &s2, TUNNEL | SERVICE);
        raw_write_str(raw, "codervpn client 1.0\n");
        raw_expect_header(e, raw, "codervpn service 1.0\n");
        assert_true(RUN_UNTIL(e, s2.n_ready == 1));
        assert_int_equal(speaker_role(s2.s), VPN_ROLE_SERVICE);
        assert_int_equal(s2.version.major, 1);
        assert_int_equal(s2.version.minor, 0);
        drop(&s2);
        close(raw);
        sd_event_unref(e);
}

static void test_multi_role_speakers(void **state) {
        sd_event *e = NULL;
        assert_true(sd_event_new(&e) >= 0);

        /* A manager. */
        struct side mgr = {}, svc = {};
        new_pair(e, &mgr, MANAGER, &svc, TUNNEL | SERVICE);
        assert_true(RUN_UNTIL(e, mgr.n_ready == 1 && svc.n_ready == 1));
        assert_int_equal(speaker_role(svc.s), VPN_ROLE_TUNNEL);
        assert_int_equal(svc.version.major, 1);
        assert_int_equal(svc.version.minor, 3);
        assert_int_equal(mgr.version.minor, 3);
        struct reply_rec rec = {};
        assert_int_equal(mgr_request(mgr.s, VPN__MANAGER_MESSAGE__MSG_GET_PEER_UPDATE, &rec), 0);
        assert_true(RUN_UNTIL(e, svc.n_msgs == 1));
        assert_int_equal(svc.msg_ids[0], 1);
        assert_int_equal(svc.cases[0], VPN__MANAGER_MESSAGE__MSG_GET_PEER_UPDATE);
        drop(&mgr);
        drop(&svc);

        /* A desktop client. */
        struct side cli = {}, svc2 = {};
        new_pair(e, &cli, CLIENT, &svc2, TUNNEL | SERVICE);
        assert_true(RUN_UNTIL(e, cli.n_ready == 1 && svc2.n_ready == 1));
        assert_int_equal(speaker_role(svc2.s), VPN_ROLE_SERVICE);
        assert_int_equal(speaker_role(cli.s), VPN_ROLE_CLIENT);
        assert_int_equal(svc2.version.major, 1);
        assert_int_equal(svc2.version.minor, 0);
        assert_int_equal(cli.version.minor, 0);

        Vpn__ClientMessage cm = VPN__CLIENT_MESSAGE__INIT;
        Vpn__StatusRequest sr = VPN__STATUS_REQUEST__INIT;
        cm.msg_case = VPN__CLIENT_MESSAGE__MSG_STATUS;
        cm.status = &sr;
        struct reply_rec st = {};
        assert_int_equal(speaker_request(cli.s, &cm.base, on_reply, &st), 0);
        assert_true(RUN_UNTIL(e, svc2.n_msgs == 1));
        assert_int_equal(svc2.msg_ids[0], 1);
        assert_int_equal(svc2.cases[0], VPN__CLIENT_MESSAGE__MSG_STATUS);

        /* The service answers with a ServiceMessage; a TunnelMessage is the wrong type there. */
        Vpn__ServiceMessage sm = VPN__SERVICE_MESSAGE__INIT;
        Vpn__Status status = VPN__STATUS__INIT;
        status.lifecycle = VPN__STATUS__LIFECYCLE__STOPPED;
        sm.msg_case = VPN__SERVICE_MESSAGE__MSG_STATUS;
        sm.status = &status;
        assert_int_equal(send_log(svc2.s, "wrong type"), -EINVAL);
        assert_int_equal(speaker_reply(svc2.s, 1, &sm.base), 0);
        assert_true(RUN_UNTIL(e, st.n == 1));
        assert_int_equal(st.error, 0);
        assert_int_equal(st.msg_case, VPN__SERVICE_MESSAGE__MSG_STATUS);
        drop(&cli);
        drop(&svc2);
        sd_event_unref(e);
}

/* ---- Handshake timeout (one real 5 s wait) -------------------------------------------- */

static void test_handshake_timeout(void **state) {
        struct side tun = {}, mgr = {}, tun2 = {};
        sd_event *e = NULL;

        assert_true(sd_event_new(&e) >= 0);
        /* A pair that completes its handshake first: its deadline comes earlier, and must not fire. */
        new_pair(e, &mgr, MANAGER, &tun2, TUNNEL);
        int raw = new_raw(e, &tun, TUNNEL);
        uint64_t start = now_usec();
        raw_write_str(raw, "codervpn manager 1.");   /* a partial header does not extend it */
        assert_true(RUN_UNTIL(e, mgr.n_ready == 1 && tun2.n_ready == 1));

        assert_true(RUN_UNTIL_USEC(e, SPEAKER_HANDSHAKE_USEC + 2000000ULL, tun.n_closed == 1));
        uint64_t took = now_usec() - start;
        assert_int_equal(tun.closed_error, -ETIMEDOUT);
        assert_int_equal(tun.n_ready, 0);
        assert_true(took >= SPEAKER_HANDSHAKE_USEC - 200000ULL);
        raw_expect_header(e, raw, "codervpn tunnel 1.3\n");
        assert_raw_eof(e, raw);

        /* After the handshake the timeout no longer applies. */
        assert_false(RUN_UNTIL_USEC(e, 300000ULL, mgr.n_closed + tun2.n_closed > 0));
        assert_true(speaker_is_open(mgr.s) && speaker_is_open(tun2.s));

        drop(&tun);
        drop(&mgr);
        drop(&tun2);
        close(raw);
        sd_event_unref(e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_handshake_ready),
                cmocka_unit_test(test_new_invalid),
                cmocka_unit_test(test_request_ids),
                cmocka_unit_test(test_replies_out_of_order),
                cmocka_unit_test(test_unknown_response_dropped),
                cmocka_unit_test(test_unsolicited_has_no_rpc),
                cmocka_unit_test(test_send_invalid),
                cmocka_unit_test(test_send_before_handshake),
                cmocka_unit_test(test_close_after_flush),
                cmocka_unit_test(test_pending_fail_on_peer_close),
                cmocka_unit_test(test_local_close),
                cmocka_unit_test(test_unref_in_callbacks),
                cmocka_unit_test(test_queue_limit),
                cmocka_unit_test(test_raw_garbage_header),
                cmocka_unit_test(test_raw_header_too_large),
                cmocka_unit_test(test_raw_header_limit),
                cmocka_unit_test(test_raw_oversize_frame),
                cmocka_unit_test(test_raw_undecodable),
                cmocka_unit_test(test_raw_no_common_major),
                cmocka_unit_test(test_raw_eof),
                cmocka_unit_test(test_raw_stream),
                cmocka_unit_test(test_raw_wire_bytes),
                cmocka_unit_test(test_raw_spec_vectors),
                cmocka_unit_test(test_multi_role_raw),
                cmocka_unit_test(test_multi_role_speakers),
                cmocka_unit_test(test_handshake_timeout),
        };

        signal(SIGPIPE, SIG_IGN);   /* as codervpnd does */
        log_open(LOG_TARGET_STDERR, LOG_CRIT);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
