/* SPDX-License-Identifier: MIT */
#include <stddef.h>

#include "message.h"

static const ProtobufCMessageDescriptor *const incoming[_VPN_ROLE_MAX] = {
        [VPN_ROLE_MANAGER] = &vpn__tunnel_message__descriptor,
        [VPN_ROLE_TUNNEL] = &vpn__manager_message__descriptor,
        [VPN_ROLE_CLIENT] = &vpn__service_message__descriptor,
        [VPN_ROLE_SERVICE] = &vpn__client_message__descriptor,
};

const ProtobufCMessageDescriptor *vpn_role_incoming(enum vpn_role role) {
        return incoming[role];
}

const ProtobufCMessageDescriptor *vpn_role_outgoing(enum vpn_role role) {
        return incoming[vpn_role_peer(role)];
}

/* Coder's tunnel and the macOS manager speak 1.3; the client/service pair is at 1.0. */
static const struct vpn_version versions_vpn[] = { { 1, 3 } };
static const struct vpn_version versions_desktop[] = { { 1, 0 } };

const struct vpn_version *vpn_role_versions(enum vpn_role role, size_t *n) {
        if (role == VPN_ROLE_MANAGER || role == VPN_ROLE_TUNNEL) {
                *n = ELEMENTSOF(versions_vpn);
                return versions_vpn;
        }
        *n = ELEMENTSOF(versions_desktop);
        return versions_desktop;
}

static Vpn__RPC **rpc_slot(const ProtobufCMessage *m) {
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(m->descriptor, 1);
        return (Vpn__RPC **) ((char *) m + f->offset);
}

Vpn__RPC *vpn_message_rpc(const ProtobufCMessage *m) {
        return *rpc_slot(m);
}

void vpn_message_set_rpc(ProtobufCMessage *m, Vpn__RPC *rpc) {
        *rpc_slot(m) = rpc;
}

static const ProtobufCFieldDescriptor *set_arm(const ProtobufCMessage *m) {
        const ProtobufCMessageDescriptor *d = m->descriptor;

        for (unsigned i = 0; i < d->n_fields; i++) {
                const ProtobufCFieldDescriptor *f = &d->fields[i];
                if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
                        continue;
                uint32_t which = *(const uint32_t *) ((const char *) m + f->quantifier_offset);
                return which ? protobuf_c_message_descriptor_get_field(d, which) : NULL;
        }
        return NULL;
}

uint32_t vpn_message_case(const ProtobufCMessage *m) {
        const ProtobufCFieldDescriptor *f = set_arm(m);
        return f ? f->id : 0;
}

const char *vpn_message_case_name(const ProtobufCMessage *m) {
        const ProtobufCFieldDescriptor *f = set_arm(m);
        return f ? f->name : "(none)";
}
