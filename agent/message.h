/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * Generic access to the four top-level CoderVPN messages (Manager, Tunnel,
 * Client, Service). Each has `RPC rpc = 1` and one `oneof msg`; these helpers
 * find both through the protobuf-c descriptor so the speaker stays role-agnostic.
 */
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "handshake.h"
#include "macro.h"
#include "vpn.pb-c.h"

/* What a speaker in @role receives and sends. */
const ProtobufCMessageDescriptor *vpn_role_incoming(enum vpn_role role);
const ProtobufCMessageDescriptor *vpn_role_outgoing(enum vpn_role role);

/* The versions a speaker in @role advertises, lowest major first. */
const struct vpn_version *vpn_role_versions(enum vpn_role role, size_t *n);

Vpn__RPC *vpn_message_rpc(const ProtobufCMessage *m);
void vpn_message_set_rpc(ProtobufCMessage *m, Vpn__RPC *rpc);
/* Field number of the set `msg` arm, 0 when unset. */
uint32_t vpn_message_case(const ProtobufCMessage *m);
/* Name of the set arm ("start", "stop", ...) or "(none)". */
const char *vpn_message_case_name(const ProtobufCMessage *m);

static inline void vpn_message_freep(void *p) {
        ProtobufCMessage **m = p;
        if (*m)
                protobuf_c_message_free_unpacked(*m, NULL);
}
#define _cleanup_message_ _cleanup_(vpn_message_freep)
