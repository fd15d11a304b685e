/* SPDX-License-Identifier: MIT */
/*
 * pbcodec: protobuf-c on the command line, for cross-checking against another
 * protobuf runtime (tests/proto/test_crosscheck.py uses Python's).
 *
 *   pbcodec decode TYPE   hex on stdin  -> canonical JSON on stdout
 *   pbcodec encode TYPE   canonical JSON on stdin -> hex on stdout
 *   pbcodec repack TYPE   hex on stdin  -> protobuf_c unpack + pack -> hex on stdout
 *   pbcodec list          the TYPE names known
 *
 * TYPE is a message of vpn.proto ("ManagerMessage", "vpn.ManagerMessage",
 * "NetworkSettingsRequest.DNSSettings", or an unambiguous short name such as
 * "DNSSettings"), or google.protobuf.Timestamp / Duration.
 *
 * Canonical JSON, walked generically over the protobuf-c descriptors:
 *   - an object keyed by the .proto field name, holding only the fields that
 *     are present: proto3 scalars when non-default, message fields when set,
 *     the set arm of a oneof (even when it holds a default value), repeated
 *     fields when non-empty. This is what Python's Message.ListFields() gives.
 *   - integers (all widths, signed and unsigned) and enums as JSON numbers,
 *     bools as true/false, strings as JSON strings, bytes as lowercase hex,
 *     float/double as JSON numbers, nested messages as objects, repeated
 *     fields as arrays.
 *   - unknown fields are not represented (decode warns on stderr).
 *
 * Exit status: 0 ok, 1 undecodable/unencodable input, 2 usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <protobuf-c/protobuf-c.h>

#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "vpn.pb-c.h"

static const ProtobufCMessageDescriptor *const descriptors[] = {
        &vpn__rpc__descriptor,
        &vpn__manager_message__descriptor,
        &vpn__tunnel_message__descriptor,
        &vpn__client_message__descriptor,
        &vpn__service_message__descriptor,
        &vpn__log__descriptor,
        &vpn__log__field__descriptor,
        &vpn__get_peer_update__descriptor,
        &vpn__peer_update__descriptor,
        &vpn__workspace__descriptor,
        &vpn__agent__descriptor,
        &vpn__last_ping__descriptor,
        &vpn__network_settings_request__descriptor,
        &vpn__network_settings_request__dnssettings__descriptor,
        &vpn__network_settings_request__ipv4_settings__descriptor,
        &vpn__network_settings_request__ipv4_settings__ipv4_route__descriptor,
        &vpn__network_settings_request__ipv6_settings__descriptor,
        &vpn__network_settings_request__ipv6_settings__ipv6_route__descriptor,
        &vpn__network_settings_response__descriptor,
        &vpn__start_request__descriptor,
        &vpn__start_request__header__descriptor,
        &vpn__start_response__descriptor,
        &vpn__stop_request__descriptor,
        &vpn__stop_response__descriptor,
        &vpn__wake_request__descriptor,
        &vpn__wake_response__descriptor,
        &vpn__status_request__descriptor,
        &vpn__status__descriptor,
        &vpn__start_progress__descriptor,
        &vpn__start_progress_download_progress__descriptor,
        &google__protobuf__timestamp__descriptor,
        &google__protobuf__duration__descriptor,
};
#define N_DESCRIPTORS (sizeof(descriptors) / sizeof(descriptors[0]))

static void fail(int code, const char *what, const char *detail) {
        fprintf(stderr, "pbcodec: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
        exit(code);
}

static const ProtobufCMessageDescriptor *lookup(const char *type) {
        const ProtobufCMessageDescriptor *by_short = NULL;
        unsigned n_short = 0;

        for (size_t i = 0; i < N_DESCRIPTORS; i++) {
                const ProtobufCMessageDescriptor *d = descriptors[i];
                const char *name = d->name;
                if (strcmp(type, name) == 0)
                        return d;
                if (strncmp(name, "vpn.", 4) == 0 && strcmp(type, name + 4) == 0)
                        return d;
                if (strcmp(type, d->short_name) == 0) {
                        by_short = d;
                        n_short++;
                }
        }
        return n_short == 1 ? by_short : NULL;
}

/* ---- input ---- */

static char *read_all(FILE *f, size_t *len) {
        size_t cap = 4096, n = 0;
        char *buf = malloc(cap + 1);

        if (!buf)
                fail(1, "out of memory", NULL);
        for (;;) {
                size_t k = fread(buf + n, 1, cap - n, f);
                n += k;
                if (n < cap) {
                        if (ferror(f))
                                fail(1, "read error", strerror(errno));
                        break;
                }
                cap *= 2;
                char *p = realloc(buf, cap + 1);
                if (!p)
                        fail(1, "out of memory", NULL);
                buf = p;
        }
        buf[n] = '\0';
        *len = n;
        return buf;
}

static int hexval(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Hex digits, whitespace ignored. Returns a malloc'd buffer, or NULL on bad hex. */
static uint8_t *unhex(const char *s, size_t len, size_t *out_len, bool allow_space) {
        uint8_t *out = malloc(len / 2 + 1);
        size_t n = 0;
        int hi = -1;

        if (!out)
                fail(1, "out of memory", NULL);
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (allow_space && (c == ' ' || c == '\n' || c == '\t' || c == '\r'))
                        continue;
                int v = hexval(c);
                if (v < 0) {
                        free(out);
                        return NULL;
                }
                if (hi < 0)
                        hi = v;
                else {
                        out[n++] = (uint8_t) (hi << 4 | v);
                        hi = -1;
                }
        }
        if (hi >= 0) {
                free(out);
                return NULL;
        }
        *out_len = n;
        return out;
}

static void print_hex(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                printf("%02x", p[i]);
        putchar('\n');
}

/* ---- decode: message -> JSON ---- */

static size_t elt_size(ProtobufCType t) {
        switch (t) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
        case PROTOBUF_C_TYPE_FLOAT:
        case PROTOBUF_C_TYPE_ENUM:
                return 4;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
        case PROTOBUF_C_TYPE_DOUBLE:
                return 8;
        case PROTOBUF_C_TYPE_BOOL:
                return sizeof(protobuf_c_boolean);
        case PROTOBUF_C_TYPE_STRING:
                return sizeof(char *);
        case PROTOBUF_C_TYPE_BYTES:
                return sizeof(ProtobufCBinaryData);
        case PROTOBUF_C_TYPE_MESSAGE:
                return sizeof(ProtobufCMessage *);
        }
        fail(1, "unknown field type", NULL);
        return 0;
}

static struct json_object *message_to_json(const ProtobufCMessage *m);

static struct json_object *value_to_json(const ProtobufCFieldDescriptor *f, const void *p) {
        switch (f->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_ENUM:
                return json_object_new_int64(*(const int32_t *) p);
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
                return json_object_new_int64(*(const uint32_t *) p);
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
                return json_object_new_int64(*(const int64_t *) p);
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
                return json_object_new_uint64(*(const uint64_t *) p);
        case PROTOBUF_C_TYPE_FLOAT:
                return json_object_new_double(*(const float *) p);
        case PROTOBUF_C_TYPE_DOUBLE:
                return json_object_new_double(*(const double *) p);
        case PROTOBUF_C_TYPE_BOOL:
                return json_object_new_boolean(*(const protobuf_c_boolean *) p ? 1 : 0);
        case PROTOBUF_C_TYPE_STRING: {
                const char *s = *(char *const *) p;
                return json_object_new_string(s ? s : "");
        }
        case PROTOBUF_C_TYPE_BYTES: {
                const ProtobufCBinaryData *b = p;
                char *hex = malloc(b->len * 2 + 1);
                if (!hex)
                        fail(1, "out of memory", NULL);
                for (size_t i = 0; i < b->len; i++)
                        snprintf(hex + 2 * i, 3, "%02x", b->data[i]);
                hex[b->len * 2] = '\0';
                struct json_object *o = json_object_new_string(hex);
                free(hex);
                return o;
        }
        case PROTOBUF_C_TYPE_MESSAGE:
                return message_to_json(*(ProtobufCMessage *const *) p);
        }
        fail(1, "unknown field type", f->name);
        return NULL;
}

static bool nonzero(const void *p, size_t n) {
        const uint8_t *b = p;
        for (size_t i = 0; i < n; i++)
                if (b[i])
                        return true;
        return false;
}

static bool field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f) {
        const char *base = (const char *) m;
        const void *member = base + f->offset;

        if (f->label == PROTOBUF_C_LABEL_REPEATED)
                return *(const size_t *) (base + f->quantifier_offset) > 0;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
                return *(const uint32_t *) (base + f->quantifier_offset) == f->id;
        if (f->label == PROTOBUF_C_LABEL_REQUIRED)
                return true;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE)
                return *(ProtobufCMessage *const *) member != NULL;
        if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
                if (f->type == PROTOBUF_C_TYPE_STRING)
                        return *(char *const *) member != NULL &&
                               *(char *const *) member != (const char *) f->default_value;
                if (f->quantifier_offset)
                        return *(const protobuf_c_boolean *) (base + f->quantifier_offset);
        }
        /* proto3 implicit presence: present when not the zero value */
        switch (f->type) {
        case PROTOBUF_C_TYPE_STRING: {
                const char *s = *(char *const *) member;
                return s && *s;
        }
        case PROTOBUF_C_TYPE_BYTES:
                return ((const ProtobufCBinaryData *) member)->len > 0;
        default:
                return nonzero(member, elt_size(f->type));
        }
}

static struct json_object *message_to_json(const ProtobufCMessage *m) {
        const ProtobufCMessageDescriptor *d = m->descriptor;
        struct json_object *obj = json_object_new_object();

        if (!obj)
                fail(1, "out of memory", NULL);
        for (unsigned i = 0; i < d->n_fields; i++) {
                const ProtobufCFieldDescriptor *f = &d->fields[i];
                const char *member = (const char *) m + f->offset;
                struct json_object *v;

                if (!field_present(m, f))
                        continue;
                if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                        size_t n = *(const size_t *) ((const char *) m + f->quantifier_offset);
                        const char *arr = *(char *const *) member;
                        size_t sz = elt_size(f->type);
                        v = json_object_new_array();
                        for (size_t k = 0; k < n; k++)
                                json_object_array_add(v, value_to_json(f, arr + k * sz));
                } else
                        v = value_to_json(f, member);
                json_object_object_add(obj, f->name, v);
        }
        if (m->n_unknown_fields > 0)
                fprintf(stderr, "pbcodec: warning: %s has %u unknown field(s), not shown\n",
                        d->name, m->n_unknown_fields);
        return obj;
}

/* ---- encode: JSON -> message ---- */

/* Error path: report where, exit 1. Leaks on exit are of no concern there. */
static void bad(const char *msgname, const char *field, const char *why) {
        fprintf(stderr, "pbcodec: %s.%s: %s\n", msgname, field, why);
        exit(1);
}

static ProtobufCMessage *json_to_message(const ProtobufCMessageDescriptor *d, struct json_object *obj);

static int64_t get_signed(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f,
                          struct json_object *v, int64_t lo, int64_t hi) {
        if (!json_object_is_type(v, json_type_int))
                bad(d->name, f->name, "expected an integer");
        int64_t x = json_object_get_int64(v);
        if (x >= 0 && json_object_get_uint64(v) > (uint64_t) INT64_MAX)
                bad(d->name, f->name, "integer out of range");
        if (x < lo || x > hi)
                bad(d->name, f->name, "integer out of range");
        return x;
}

static uint64_t get_unsigned(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f,
                             struct json_object *v, uint64_t hi) {
        if (!json_object_is_type(v, json_type_int))
                bad(d->name, f->name, "expected an integer");
        if (json_object_get_int64(v) < 0)
                bad(d->name, f->name, "negative value for an unsigned field");
        uint64_t x = json_object_get_uint64(v);
        if (x > hi)
                bad(d->name, f->name, "integer out of range");
        return x;
}

static void json_to_value(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f,
                          struct json_object *v, void *p) {
        switch (f->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_ENUM:
                *(int32_t *) p = (int32_t) get_signed(d, f, v, INT32_MIN, INT32_MAX);
                return;
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
                *(uint32_t *) p = (uint32_t) get_unsigned(d, f, v, UINT32_MAX);
                return;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
                *(int64_t *) p = get_signed(d, f, v, INT64_MIN, INT64_MAX);
                return;
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
                *(uint64_t *) p = get_unsigned(d, f, v, UINT64_MAX);
                return;
        case PROTOBUF_C_TYPE_FLOAT:
        case PROTOBUF_C_TYPE_DOUBLE: {
                if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
                        bad(d->name, f->name, "expected a number");
                double x = json_object_get_double(v);
                if (f->type == PROTOBUF_C_TYPE_FLOAT)
                        *(float *) p = (float) x;
                else
                        *(double *) p = x;
                return;
        }
        case PROTOBUF_C_TYPE_BOOL:
                if (!json_object_is_type(v, json_type_boolean))
                        bad(d->name, f->name, "expected true or false");
                *(protobuf_c_boolean *) p = json_object_get_boolean(v) ? 1 : 0;
                return;
        case PROTOBUF_C_TYPE_STRING: {
                if (!json_object_is_type(v, json_type_string))
                        bad(d->name, f->name, "expected a string");
                size_t len = (size_t) json_object_get_string_len(v);
                const char *s = json_object_get_string(v);
                if (memchr(s, '\0', len))
                        bad(d->name, f->name, "NUL in a string (protobuf-c strings are C strings)");
                char *copy = strndup(s, len);
                if (!copy)
                        fail(1, "out of memory", NULL);
                *(char **) p = copy;
                return;
        }
        case PROTOBUF_C_TYPE_BYTES: {
                if (!json_object_is_type(v, json_type_string))
                        bad(d->name, f->name, "expected a hex string");
                ProtobufCBinaryData *b = p;
                size_t n;
                uint8_t *data = unhex(json_object_get_string(v), (size_t) json_object_get_string_len(v),
                                      &n, false);
                if (!data)
                        bad(d->name, f->name, "bad hex");
                if (n == 0) {
                        free(data);
                        data = NULL;
                }
                b->data = data;
                b->len = n;
                return;
        }
        case PROTOBUF_C_TYPE_MESSAGE:
                if (!json_object_is_type(v, json_type_object))
                        bad(d->name, f->name, "expected an object");
                *(ProtobufCMessage **) p = json_to_message(f->descriptor, v);
                return;
        }
        bad(d->name, f->name, "unknown field type");
}

static ProtobufCMessage *json_to_message(const ProtobufCMessageDescriptor *d, struct json_object *obj) {
        ProtobufCMessage *m = calloc(1, d->sizeof_message);

        if (!m)
                fail(1, "out of memory", NULL);
        protobuf_c_message_init(d, m);

        struct json_object_iterator it = json_object_iter_begin(obj);
        struct json_object_iterator end = json_object_iter_end(obj);
        for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
                const char *key = json_object_iter_peek_name(&it);
                struct json_object *v = json_object_iter_peek_value(&it);
                const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, key);
                char *base = (char *) m;

                if (!f)
                        bad(d->name, key, "no such field");
                if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                        if (!json_object_is_type(v, json_type_array))
                                bad(d->name, key, "expected an array");
                        size_t n = json_object_array_length(v);
                        size_t sz = elt_size(f->type);
                        char *arr = n ? calloc(n, sz) : NULL;
                        if (n && !arr)
                                fail(1, "out of memory", NULL);
                        for (size_t k = 0; k < n; k++)
                                json_to_value(d, f, json_object_array_get_idx(v, k), arr + k * sz);
                        *(void **) (base + f->offset) = arr;
                        *(size_t *) (base + f->quantifier_offset) = n;
                        continue;
                }
                if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                        uint32_t *which = (uint32_t *) (base + f->quantifier_offset);
                        if (*which != 0)
                                bad(d->name, key, "a second member of the same oneof");
                        *which = f->id;
                } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
                           f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING)
                        *(protobuf_c_boolean *) (base + f->quantifier_offset) = 1;
                json_to_value(d, f, v, base + f->offset);
        }
        return m;
}

/* ---- commands ---- */

static ProtobufCMessage *unpack_stdin(const ProtobufCMessageDescriptor *d) {
        size_t len, n;
        char *text = read_all(stdin, &len);
        uint8_t *bin = unhex(text, len, &n, true);

        free(text);
        if (!bin)
                fail(2, "input is not hex", NULL);
        ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, n, bin);
        free(bin);
        if (!m)
                fail(1, "undecodable input for", d->name);
        return m;
}

static void pack_print(const ProtobufCMessage *m) {
        size_t size = protobuf_c_message_get_packed_size(m);
        uint8_t *buf = malloc(size ? size : 1);

        if (!buf)
                fail(1, "out of memory", NULL);
        size_t n = protobuf_c_message_pack(m, buf);
        if (n != size)
                fail(1, "packed size mismatch", NULL);
        print_hex(buf, n);
        free(buf);
}

static int cmd_decode(const ProtobufCMessageDescriptor *d) {
        ProtobufCMessage *m = unpack_stdin(d);
        struct json_object *obj = message_to_json(m);

        puts(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(obj);
        protobuf_c_message_free_unpacked(m, NULL);
        return 0;
}

static int cmd_repack(const ProtobufCMessageDescriptor *d) {
        ProtobufCMessage *m = unpack_stdin(d);

        pack_print(m);
        protobuf_c_message_free_unpacked(m, NULL);
        return 0;
}

static int cmd_encode(const ProtobufCMessageDescriptor *d) {
        size_t len;
        char *text = read_all(stdin, &len);
        struct json_tokener *tok = json_tokener_new();

        if (!tok)
                fail(1, "out of memory", NULL);
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        struct json_object *obj = json_tokener_parse_ex(tok, text, (int) len);
        enum json_tokener_error err = json_tokener_get_error(tok);
        if (!obj || err != json_tokener_success)
                fail(1, "bad JSON", json_tokener_error_desc(err));
        for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
                if (text[i] != ' ' && text[i] != '\n' && text[i] != '\t' && text[i] != '\r')
                        fail(1, "bad JSON", "trailing data");
        json_tokener_free(tok);
        free(text);
        if (!json_object_is_type(obj, json_type_object))
                fail(1, "bad JSON", "expected an object");

        ProtobufCMessage *m = json_to_message(d, obj);
        json_object_put(obj);
        if (!protobuf_c_message_check(m))
                fail(1, "message fails protobuf_c_message_check", d->name);
        pack_print(m);
        protobuf_c_message_free_unpacked(m, NULL);
        return 0;
}

static void usage(void) {
        fputs("usage: pbcodec decode|encode|repack TYPE   (hex or canonical JSON on stdin)\n"
              "       pbcodec list\n", stderr);
        exit(2);
}

int main(int argc, char **argv) {
        if (argc == 2 && strcmp(argv[1], "list") == 0) {
                for (size_t i = 0; i < N_DESCRIPTORS; i++)
                        puts(descriptors[i]->name);
                return 0;
        }
        if (argc != 3)
                usage();

        const ProtobufCMessageDescriptor *d = lookup(argv[2]);
        if (!d)
                fail(2, "unknown or ambiguous message type", argv[2]);
        if (strcmp(argv[1], "decode") == 0)
                return cmd_decode(d);
        if (strcmp(argv[1], "encode") == 0)
                return cmd_encode(d);
        if (strcmp(argv[1], "repack") == 0)
                return cmd_repack(d);
        usage();
        return 2;
}
