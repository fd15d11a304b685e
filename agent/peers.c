/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "macro.h"
#include "peers.h"

/* Go's zero time.Time, which the Go tunnel sends for "no handshake yet". */
#define HANDSHAKE_UNHEALTHY_SEC 300

const char *peers_workspace_status_name(Vpn__Workspace__Status status) {
        const ProtobufCEnumValue *v =
                protobuf_c_enum_descriptor_get_value(&vpn__workspace__status__descriptor, (int) status);
        return v ? v->name : "UNKNOWN";
}

static void format_uuid(const ProtobufCBinaryData *id, char out[static 37]) {
        if (id->len != 16) {
                strcpy(out, "-");
                return;
        }
        const uint8_t *b = id->data;
        snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
                 b[14], b[15]);
}

static const Vpn__Workspace *find_workspace(const Vpn__PeerUpdate *u, const ProtobufCBinaryData *id) {
        for (size_t i = 0; i < u->n_upserted_workspaces; i++) {
                const ProtobufCBinaryData *w = &u->upserted_workspaces[i]->id;
                if (w->len == id->len && memcmp(w->data, id->data, id->len) == 0)
                        return u->upserted_workspaces[i];
        }
        return NULL;
}

void peers_format_age(const Google__Protobuf__Timestamp *ts, time_t now, char *buf, size_t size) {
        if (!ts || ts->seconds <= 0) {
                snprintf(buf, size, "never");
                return;
        }
        int64_t age = (int64_t) now - ts->seconds;
        if (age < 0)
                age = 0;
        if (age < 120)
                snprintf(buf, size, "%" PRId64 "s ago", age);
        else if (age < 7200)
                snprintf(buf, size, "%" PRId64 "m ago", age / 60);
        else
                snprintf(buf, size, "%" PRId64 "h ago", age / 3600);
}

static double duration_ms(const Google__Protobuf__Duration *d) {
        return (double) d->seconds * 1e3 + (double) d->nanos / 1e6;
}

void peers_print_table(FILE *f, const Vpn__PeerUpdate *u, time_t now) {
        if (u->n_upserted_agents == 0) {
                fprintf(f, "No agents (%zu workspaces).\n", u->n_upserted_workspaces);
                return;
        }
        fprintf(f, "%-20s %-16s %-9s %-28s %-10s %-9s %s\n",
                "WORKSPACE", "AGENT", "STATUS", "ADDRESS", "HANDSHAKE", "LATENCY", "PATH");
        for (size_t i = 0; i < u->n_upserted_agents; i++) {
                const Vpn__Agent *a = u->upserted_agents[i];
                const Vpn__Workspace *w = find_workspace(u, &a->workspace_id);
                char age[32], latency[32] = "-", path[64] = "-";
                const char *status = "connecting";

                peers_format_age(a->last_handshake, now, age, sizeof(age));
                if (a->last_handshake && a->last_handshake->seconds > 0)
                        status = now - a->last_handshake->seconds > HANDSHAKE_UNHEALTHY_SEC ? "unhealthy" : "healthy";
                if (a->last_ping) {
                        if (a->last_ping->latency)
                                snprintf(latency, sizeof(latency), "%.1fms", duration_ms(a->last_ping->latency));
                        if (a->last_ping->did_p2p)
                                snprintf(path, sizeof(path), "direct");
                        else
                                snprintf(path, sizeof(path), "DERP %s",
                                         a->last_ping->preferred_derp && *a->last_ping->preferred_derp ?
                                         a->last_ping->preferred_derp : "?");
                }
                fprintf(f, "%-20s %-16s %-9s %-28s %-10s %-9s %s\n",
                        w && w->name ? w->name : "?", a->name ? a->name : "?", status,
                        a->n_ip_addrs ? a->ip_addrs[0] : "-", age, latency, path);
                for (size_t j = 0; j < a->n_fqdn; j++)
                        fprintf(f, "    %s\n", a->fqdn[j]);
        }
}

static json_object *strings_to_json(char **v, size_t n) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; a && i < n; i++)
                json_object_array_add(a, json_object_new_string(v[i]));
        return a;
}

static json_object *workspace_to_json(const Vpn__Workspace *w) {
        char id[37];
        json_object *o = json_object_new_object();

        format_uuid(&w->id, id);
        json_object_object_add(o, "id", json_object_new_string(id));
        json_object_object_add(o, "name", json_object_new_string(w->name ?: ""));
        json_object_object_add(o, "status", json_object_new_string(peers_workspace_status_name(w->status)));
        return o;
}

static json_object *agent_to_json(const Vpn__Agent *a) {
        char id[37], ws[37];
        json_object *o = json_object_new_object();

        format_uuid(&a->id, id);
        format_uuid(&a->workspace_id, ws);
        json_object_object_add(o, "id", json_object_new_string(id));
        json_object_object_add(o, "name", json_object_new_string(a->name ?: ""));
        json_object_object_add(o, "workspace_id", json_object_new_string(ws));
        json_object_object_add(o, "fqdn", strings_to_json(a->fqdn, a->n_fqdn));
        json_object_object_add(o, "ip_addrs", strings_to_json(a->ip_addrs, a->n_ip_addrs));
        json_object_object_add(o, "last_handshake_unix",
                               a->last_handshake && a->last_handshake->seconds > 0 ?
                               json_object_new_int64(a->last_handshake->seconds) : NULL);
        if (a->last_ping) {
                json_object *p = json_object_new_object();
                json_object_object_add(p, "latency_ms", a->last_ping->latency ?
                                       json_object_new_double(duration_ms(a->last_ping->latency)) : NULL);
                json_object_object_add(p, "did_p2p", json_object_new_boolean(a->last_ping->did_p2p));
                json_object_object_add(p, "preferred_derp", json_object_new_string(a->last_ping->preferred_derp ?: ""));
                json_object_object_add(o, "last_ping", p);
        }
        return o;
}

json_object *peers_to_json(const Vpn__PeerUpdate *u) {
        json_object *o = json_object_new_object(), *a;

        if (!o)
                return NULL;
#define ADD_LIST(key, n, v, fn) do {                            \
                a = json_object_new_array();                    \
                for (size_t i = 0; i < (n); i++)                \
                        json_object_array_add(a, fn((v)[i]));   \
                json_object_object_add(o, key, a);              \
        } while (0)
        ADD_LIST("workspaces", u->n_upserted_workspaces, u->upserted_workspaces, workspace_to_json);
        ADD_LIST("agents", u->n_upserted_agents, u->upserted_agents, agent_to_json);
        if (u->n_deleted_workspaces)
                ADD_LIST("deleted_workspaces", u->n_deleted_workspaces, u->deleted_workspaces, workspace_to_json);
        if (u->n_deleted_agents)
                ADD_LIST("deleted_agents", u->n_deleted_agents, u->deleted_agents, agent_to_json);
#undef ADD_LIST
        return o;
}
