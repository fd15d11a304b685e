/* SPDX-License-Identifier: MIT */
#define LOG_COMPONENT "speaker"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "log.h"
#include "macro.h"
#include "message.h"
#include "speaker.h"

/* Frames handled per wake-up, so one busy peer cannot starve the others. */
#define READ_BUDGET 64

struct chunk {
        struct chunk *next;
        size_t len, off;
        uint8_t data[];
};

struct pending {
        struct pending *next;
        uint64_t id;
        speaker_reply_fn cb;
        void *userdata;
};

enum speaker_state {
        STATE_HANDSHAKE,
        STATE_OPEN,
        STATE_DRAINING,   /* writing what is queued, then closing */
        STATE_FAILING,    /* closing from the event loop, not inside the caller's send */
        STATE_CLOSED,
};

struct speaker {
        unsigned n_ref;
        enum speaker_state state;
        int fail_error;
        sd_event *event;
        int read_fd, write_fd;
        sd_event_source *read_source, *write_source, *timeout_source, *fail_source;

        unsigned roles;
        bool role_chosen;
        enum vpn_role role;
        struct vpn_version version;
        char *description;

        char header[VPN_HEADER_MAX + 1];
        size_t header_len;
        struct frame_reader reader;

        struct chunk *out_head, **out_tail;
        size_t out_bytes;

        struct pending *pending;
        uint64_t next_id;

        const struct speaker_ops *ops;
        void *userdata;
};

enum vpn_role speaker_role(const struct speaker *s) { return s->role; }
struct vpn_version speaker_version(const struct speaker *s) { return s->version; }
bool speaker_is_open(const struct speaker *s) { return s->state == STATE_OPEN; }
const char *speaker_description(const struct speaker *s) { return s->description; }
void *speaker_get_userdata(const struct speaker *s) { return s->userdata; }

static const struct speaker_ops no_ops;

static void speaker_free(struct speaker *s) {
        frame_reader_done(&s->reader);
        sd_event_unref(s->event);
        free(s->description);
        free(s);
}

struct speaker *speaker_ref(struct speaker *s) {
        s->n_ref++;
        return s;
}

struct speaker *speaker_unref(struct speaker *s) {
        if (!s)
                return NULL;
        if (--s->n_ref > 0)
                return NULL;
        /* The last reference can only go once the connection is closed. */
        s->n_ref = 1;
        speaker_close(s, 0);
        speaker_free(s);
        return NULL;
}

void speaker_close(struct speaker *s, int error) {
        if (s->state == STATE_CLOSED)
                return;
        s->state = STATE_CLOSED;
        speaker_ref(s);

        s->read_source = sd_event_source_disable_unref(s->read_source);
        s->write_source = sd_event_source_disable_unref(s->write_source);
        s->timeout_source = sd_event_source_disable_unref(s->timeout_source);
        s->fail_source = sd_event_source_disable_unref(s->fail_source);
        closep(&s->read_fd);
        closep(&s->write_fd);
        s->read_fd = s->write_fd = -1;

        while (s->out_head) {
                struct chunk *c = s->out_head;
                s->out_head = c->next;
                free(c);
        }
        s->out_bytes = 0;

        while (s->pending) {
                struct pending *p = s->pending;
                s->pending = p->next;
                p->cb(s, -EPIPE, NULL, p->userdata);
                free(p);
        }

        if (s->ops->closed)
                s->ops->closed(s, error, s->userdata);
        speaker_unref(s);
}

static int on_fail(sd_event_source *source _unused_, void *userdata) {
        struct speaker *s = userdata;
        speaker_close(s, s->fail_error);
        return 0;
}

/* Stops the connection now and reports it from the event loop, so that a send
 * never runs the owner's closed callback underneath the owner. */
static void fail_later(struct speaker *s, int error) {
        s->state = STATE_FAILING;
        s->fail_error = error;
        sd_event_source_set_enabled(s->read_source, SD_EVENT_OFF);
        sd_event_source_set_enabled(s->write_source, SD_EVENT_OFF);
        if (sd_event_add_defer(s->event, &s->fail_source, on_fail, s) < 0)
                speaker_close(s, error);   /* out of memory: no better moment will come */
}

static int queue_bytes(struct speaker *s, struct chunk *c) {
        c->next = NULL;
        *s->out_tail = c;
        s->out_tail = &c->next;
        s->out_bytes += c->len;
        return sd_event_source_set_enabled(s->write_source, SD_EVENT_ON);
}

static int queue_header(struct speaker *s, enum vpn_role role) {
        struct vpn_header h = { .role = role };
        const struct vpn_version *v = vpn_role_versions(role, &h.n_versions);
        char line[VPN_HEADER_MAX + 2];

        memcpy(h.versions, v, h.n_versions * sizeof(*v));
        int n = vpn_header_format(&h, line, sizeof(line));
        if (n < 0)
                return n;
        struct chunk *c = malloc(sizeof(*c) + (size_t) n);
        if (!c)
                return -ENOMEM;
        c->len = (size_t) n;
        c->off = 0;
        memcpy(c->data, line, (size_t) n);
        s->role = role;
        s->role_chosen = true;
        return queue_bytes(s, c);
}

static int queue_message(struct speaker *s, ProtobufCMessage *m, Vpn__RPC *rpc) {
        if (s->state != STATE_OPEN)
                return -ENOTCONN;
        if (m->descriptor != vpn_role_outgoing(s->role) || vpn_message_case(m) == 0)
                return -EINVAL;   /* the peer would reject an unset oneof */

        Vpn__RPC *saved = vpn_message_rpc(m);
        vpn_message_set_rpc(m, rpc);
        size_t len = protobuf_c_message_get_packed_size(m);
        int r = 0;

        if (len == 0 || len > VPN_FRAME_MAX) {
                r = -EMSGSIZE;
                goto restore;
        }
        if (s->out_bytes + len + 4 > SPEAKER_QUEUE_MAX) {
                r = log_warning_errno(ENOBUFS, "Closing %s: it is not reading (%zu bytes queued)",
                                      s->description, s->out_bytes);
                fail_later(s, r);
                goto restore;
        }
        struct chunk *c = malloc(sizeof(*c) + 4 + len);
        if (!c) {
                r = -ENOMEM;
                goto restore;
        }
        c->len = 4 + len;
        c->off = 0;
        frame_put_len(c->data, (uint32_t) len);
        protobuf_c_message_pack(m, c->data + 4);
        r = queue_bytes(s, c);
restore:
        vpn_message_set_rpc(m, saved);
        return r;
}

int speaker_send(struct speaker *s, ProtobufCMessage *msg) {
        return queue_message(s, msg, NULL);
}

int speaker_reply(struct speaker *s, uint64_t request_id, ProtobufCMessage *msg) {
        Vpn__RPC rpc = VPN__RPC__INIT;

        if (request_id == 0)
                return -EINVAL;
        rpc.response_to = request_id;
        return queue_message(s, msg, &rpc);
}

int speaker_request(struct speaker *s, ProtobufCMessage *msg, speaker_reply_fn cb, void *userdata) {
        Vpn__RPC rpc = VPN__RPC__INIT;
        _cleanup_free_ struct pending *p = calloc(1, sizeof(*p));
        int r;

        if (!p)
                return -ENOMEM;
        rpc.msg_id = s->next_id;
        r = queue_message(s, msg, &rpc);
        if (r < 0)
                return r;
        *p = (struct pending) { .next = s->pending, .id = s->next_id++, .cb = cb, .userdata = userdata };
        s->pending = TAKE_PTR(p);
        return 0;
}

void speaker_close_after_flush(struct speaker *s) {
        if (s->state != STATE_OPEN && s->state != STATE_HANDSHAKE)
                return;
        s->state = STATE_DRAINING;
        sd_event_source_set_enabled(s->read_source, SD_EVENT_OFF);
        if (!s->out_head)
                speaker_close(s, 0);
}

static int on_writable(sd_event_source *source _unused_, int fd _unused_, uint32_t revents _unused_, void *userdata) {
        struct speaker *s = userdata;

        while (s->out_head) {
                struct chunk *c = s->out_head;
                ssize_t n = write(s->write_fd, c->data + c->off, c->len - c->off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        log_info_errno(errno, "Closing %s: write failed", s->description);
                        speaker_close(s, -errno);
                        return 0;
                }
                c->off += (size_t) n;
                if (c->off < c->len)
                        continue;
                s->out_head = c->next;
                if (!s->out_head)
                        s->out_tail = &s->out_head;
                s->out_bytes -= c->len;
                free(c);
        }
        if (s->state == STATE_DRAINING)
                speaker_close(s, 0);
        else
                sd_event_source_set_enabled(s->write_source, SD_EVENT_OFF);
        return 0;
}

static struct pending *take_pending(struct speaker *s, uint64_t id) {
        for (struct pending **p = &s->pending; *p; p = &(*p)->next)
                if ((*p)->id == id) {
                        struct pending *found = *p;
                        *p = found->next;
                        return found;
                }
        return NULL;
}

static void dispatch_frame(struct speaker *s) {
        size_t len;
        const uint8_t *payload = frame_reader_payload(&s->reader, &len);
        ProtobufCMessage *m = protobuf_c_message_unpack(vpn_role_incoming(s->role), NULL, len, payload);

        if (!m) {
                log_warning("Closing %s: undecodable %zu-byte message", s->description, len);
                speaker_close(s, -EBADMSG);
                return;
        }

        const Vpn__RPC *rpc = vpn_message_rpc(m);
        if (rpc && rpc->response_to != 0) {
                _cleanup_free_ struct pending *p = take_pending(s, rpc->response_to);
                if (!p) {
                        log_warning("Dropping %s's response to unknown request %llu", s->description,
                                    (unsigned long long) rpc->response_to);
                        protobuf_c_message_free_unpacked(m, NULL);
                        return;
                }
                p->cb(s, 0, m, p->userdata);
                return;
        }
        if (vpn_message_case(m) == 0) {
                log_warning("Ignoring message from %s with no payload we know", s->description);
                protobuf_c_message_free_unpacked(m, NULL);
                return;
        }
        s->ops->message(s, m, rpc ? rpc->msg_id : 0, s->userdata);
}

static int finish_handshake(struct speaker *s) {
        struct vpn_header peer;
        const struct vpn_version *ours;
        size_t n_ours;
        int r;

        r = vpn_header_parse(s->header, s->header_len, &peer);
        if (r < 0)
                return log_warning_errno(r, "Closing %s: header malformed", s->description);

        enum vpn_role want = vpn_role_peer(peer.role);
        if (!(s->roles & (1u << want)) || (s->role_chosen && s->role != want))
                return log_warning_errno(EPROTO, "Closing %s: unexpected role \"%s\"", s->description,
                                         vpn_role_name(peer.role));

        ours = vpn_role_versions(want, &n_ours);
        r = vpn_version_negotiate(ours, n_ours, peer.versions, peer.n_versions, &s->version);
        if (r < 0)
                return log_warning_errno(r, "Closing %s: no common protocol version", s->description);

        if (!s->role_chosen) {
                r = queue_header(s, want);
                if (r < 0)
                        return log_warning_errno(r, "Closing %s: cannot queue header", s->description);
        }
        s->state = STATE_OPEN;
        s->timeout_source = sd_event_source_disable_unref(s->timeout_source);
        log_debug("Connected %s as %s, version %u.%u", s->description, vpn_role_name(s->role),
                  s->version.major, s->version.minor);
        if (s->ops->ready)
                s->ops->ready(s, s->userdata);
        return 0;
}

/* Returns 1 when the header is complete, 0 on EAGAIN, -errno on failure. */
static int read_header(struct speaker *s) {
        for (;;) {
                char ch;
                ssize_t n = read(s->read_fd, &ch, 1);   /* never read past '\n' */
                if (n < 0)
                        return errno == EINTR ? 0 : errno == EAGAIN ? 0 : -errno;
                if (n == 0) {
                        log_info("Closing %s: end of file during handshake", s->description);
                        return -EPIPE;
                }
                if (ch == '\n')
                        return 1;
                if (s->header_len == VPN_HEADER_MAX)
                        return log_warning_errno(EPROTO, "Closing %s: header malformed or too large",
                                                 s->description);
                s->header[s->header_len++] = ch;
        }
}

static void read_frames(struct speaker *s) {
        for (unsigned budget = READ_BUDGET; budget > 0 && s->state == STATE_OPEN; ) {
                uint8_t *space;
                size_t room;
                int r = frame_reader_space(&s->reader, &space, &room);
                if (r < 0) {
                        log_error_errno(r, "Closing %s", s->description);
                        speaker_close(s, r);
                        return;
                }
                ssize_t n = read(s->read_fd, space, room);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN) {
                                log_info_errno(errno, "Closing %s: read failed", s->description);
                                speaker_close(s, -errno);
                        }
                        return;
                }
                if (n == 0) {
                        bool mid_frame = s->reader.len_have > 0;
                        if (mid_frame)
                                log_info("Closing %s: end of file inside a frame", s->description);
                        speaker_close(s, mid_frame ? -EPIPE : 0);
                        return;
                }
                r = frame_reader_advance(&s->reader, (size_t) n);
                if (r == -EMSGSIZE) {
                        log_full_errno(LOG_CRIT, 0, "Closing %s: frame of %u bytes exceeds the %u-byte limit",
                                  s->description, s->reader.len, VPN_FRAME_MAX);
                        speaker_close(s, r);
                        return;
                }
                if (r == 1) {
                        dispatch_frame(s);
                        frame_reader_reset(&s->reader);
                        budget--;
                }
        }
}

static int on_readable(sd_event_source *source _unused_, int fd _unused_, uint32_t revents _unused_, void *userdata) {
        _cleanup_(speaker_unrefp) struct speaker *s = speaker_ref(userdata);

        if (s->state == STATE_HANDSHAKE) {
                int r = read_header(s);
                if (r < 0) {
                        speaker_close(s, r);
                        return 0;
                }
                if (r == 0)
                        return 0;
                r = finish_handshake(s);
                if (r < 0) {
                        speaker_close(s, r);
                        return 0;
                }
        }
        if (s->state == STATE_OPEN)
                read_frames(s);
        return 0;
}

static int on_timeout(sd_event_source *source _unused_, uint64_t usec _unused_, void *userdata) {
        struct speaker *s = userdata;

        log_warning("Closing %s: no handshake within %llu s", s->description,
                    SPEAKER_HANDSHAKE_USEC / 1000000ULL);
        speaker_close(s, -ETIMEDOUT);
        return 0;
}

static int make_nonblocking(int fd) {
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        return 0;
}

int speaker_new(struct speaker **ret, sd_event *event, int read_fd, int write_fd,
                const struct speaker_config *config, const struct speaker_ops *ops, void *userdata) {
        _cleanup_(speaker_unrefp) struct speaker *s = NULL;
        int r;

        if (read_fd < 0 || write_fd < 0 || read_fd == write_fd || config->roles == 0 || !ops->message) {
                closep(&read_fd);
                if (write_fd != read_fd)
                        closep(&write_fd);
                return -EINVAL;
        }
        s = calloc(1, sizeof(*s));
        if (!s) {
                closep(&read_fd);
                closep(&write_fd);
                return -ENOMEM;
        }
        *s = (struct speaker) {
                .n_ref = 1,
                .read_fd = read_fd,
                .write_fd = write_fd,
                .roles = config->roles,
                .out_tail = &s->out_head,
                .next_id = 1,
                .ops = &no_ops,
                .userdata = userdata,
                .event = sd_event_ref(event),
        };
        s->description = strdup(config->description ?: "peer");
        if (!s->description)
                return -ENOMEM;

        if ((r = make_nonblocking(read_fd)) < 0 || (r = make_nonblocking(write_fd)) < 0)
                return r;
        r = sd_event_add_io(event, &s->read_source, read_fd, EPOLLIN, on_readable, s);
        if (r < 0)
                return r;
        r = sd_event_add_io(event, &s->write_source, write_fd, EPOLLOUT, on_writable, s);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(s->write_source, SD_EVENT_OFF);
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(event, &s->timeout_source, CLOCK_MONOTONIC,
                                       SPEAKER_HANDSHAKE_USEC, 0, on_timeout, s);
        if (r < 0)
                return r;

        /* With a single role our header goes out at once, concurrently with reading theirs. */
        if (__builtin_popcount(config->roles) == 1) {
                r = queue_header(s, (enum vpn_role) __builtin_ctz(config->roles));
                if (r < 0)
                        return r;
        }
        s->ops = ops;
        *ret = TAKE_PTR(s);
        return 0;
}
