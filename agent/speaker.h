/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * A CoderVPN speaker: one connection, driven by sd-event, speaking one role.
 *
 * It writes its header and reads the peer's (byte by byte, never past '\n',
 * VPN_HEADER_MAX bytes at most, within SPEAKER_HANDSHAKE_USEC), negotiates a
 * version, then exchanges length-prefixed protobuf frames. Outgoing messages are
 * queued (at most SPEAKER_QUEUE_MAX bytes) and written when the fd is writable.
 * RPC ids come from a per-connection counter starting at 1; responses are routed
 * to the callback of their request. Protocol errors close the connection and are
 * logged here, once; the owner learns of it through ops->closed.
 *
 * Reference counted: the creator holds one reference. Callbacks may drop it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>
#include <systemd/sd-event.h>

#include "handshake.h"

#define SPEAKER_HANDSHAKE_USEC (5ULL * 1000 * 1000)
#define SPEAKER_QUEUE_MAX (64u * 1024 * 1024)

struct speaker;

struct speaker_ops {
        /* Handshake complete; speaker_role()/speaker_version() are valid. */
        void (*ready)(struct speaker *s, void *userdata);
        /*
         * A request (@msg_id != 0, answer with speaker_reply) or an unsolicited
         * message (@msg_id == 0). Takes ownership of @msg.
         */
        void (*message)(struct speaker *s, ProtobufCMessage *msg, uint64_t msg_id, void *userdata);
        /* Called once. @error is 0 for EOF at a frame boundary or a local close. */
        void (*closed)(struct speaker *s, int error, void *userdata);
};

/* Called once with the response (ownership passes) or with @error < 0 and NULL. */
typedef void (*speaker_reply_fn)(struct speaker *s, int error, ProtobufCMessage *reply, void *userdata);

struct speaker_config {
        /*
         * Roles we may play. With one role we write our header at once; with
         * several (a socket serving managers and desktop clients) we read the
         * peer's header first and play the counterpart of the role it names.
         */
        unsigned roles;      /* bit mask of 1u << enum vpn_role */
        const char *description; /* for logs, e.g. "manager pid 42" */
};

/*
 * Takes ownership of @read_fd and @write_fd (which may not be equal: dup() a
 * socket). Both are made non-blocking.
 */
int speaker_new(struct speaker **ret, sd_event *event, int read_fd, int write_fd,
                const struct speaker_config *config, const struct speaker_ops *ops, void *userdata);
struct speaker *speaker_ref(struct speaker *s);
struct speaker *speaker_unref(struct speaker *s);
static inline void speaker_unrefp(struct speaker **s) {
        if (*s)
                speaker_unref(*s);
}

enum vpn_role speaker_role(const struct speaker *s);
struct vpn_version speaker_version(const struct speaker *s);
bool speaker_is_open(const struct speaker *s);
const char *speaker_description(const struct speaker *s);
void *speaker_get_userdata(const struct speaker *s);

/* Unsolicited message: sent without an `rpc` field. */
int speaker_send(struct speaker *s, ProtobufCMessage *msg);
int speaker_request(struct speaker *s, ProtobufCMessage *msg, speaker_reply_fn cb, void *userdata);
int speaker_reply(struct speaker *s, uint64_t request_id, ProtobufCMessage *msg);

/* Closes now; pending requests fail with -EPIPE. Idempotent. */
void speaker_close(struct speaker *s, int error);
/* Writes what is queued, then closes; nothing more is accepted for sending. */
void speaker_close_after_flush(struct speaker *s);
