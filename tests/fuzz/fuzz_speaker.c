/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for what a CoderVPN speaker does with the bytes a peer sends:
 * the handshake header, then length-prefixed protobuf frames.
 *
 * Input layout: a header line up to the first '\n' (looked for in the first
 * VPN_HEADER_MAX + 1 bytes, as the speaker never reads further; without one, the
 * first min(size, VPN_HEADER_MAX + 1) bytes are the "line"), then the frame stream.
 *
 * The header goes through vpn_header_parse and, if it parses, vpn_version_negotiate
 * against what a tunnel advertises. The frame stream goes through a frame_reader twice:
 * once in a single frame_reader_feed call and once in chunks whose sizes come from the
 * input (each chunk's size is taken from the stream byte where it starts, salted by the
 * header bytes). Both passes must see the same frames and end the same way.
 * Every complete frame is unpacked as each of the four incoming message types, inspected
 * with vpn_message_rpc / vpn_message_case / vpn_message_case_name, repacked, and freed.
 *
 * Violated invariants abort (so libFuzzer reports them as crashes).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "fuzz-check.h"
#include "frame.h"
#include "handshake.h"
#include "message.h"
#include "vpn.pb-c.h"


static void fuzz_header(const char *line, size_t len) {
        struct vpn_header h;
        int r = vpn_header_parse(line, len, &h);

        CHECK(r == 0 || r == -EINVAL || r == -EPROTO);
        if (r < 0)
                return;
        CHECK(h.role < _VPN_ROLE_MAX);
        CHECK(h.n_versions >= 1 && h.n_versions <= VPN_MAX_VERSIONS);
        for (size_t i = 0; i < h.n_versions; i++) {
                CHECK(h.versions[i].major >= 1);
                CHECK(i == 0 || h.versions[i].major > h.versions[i - 1].major);
        }

        /* What we would write back parses to the same header (it is never longer). */
        char buf[VPN_HEADER_MAX + 2];
        int n = vpn_header_format(&h, buf, sizeof(buf));
        CHECK(n > 0 && (size_t) n <= len + 1 && buf[n - 1] == '\n');
        struct vpn_header again;
        CHECK(vpn_header_parse(buf, (size_t) n - 1, &again) == 0);
        CHECK(again.role == h.role && again.n_versions == h.n_versions);
        CHECK(memcmp(again.versions, h.versions, h.n_versions * sizeof(h.versions[0])) == 0);

        size_t n_ours;
        const struct vpn_version *ours = vpn_role_versions(VPN_ROLE_TUNNEL, &n_ours);
        struct vpn_version v;
        r = vpn_version_negotiate(ours, n_ours, h.versions, h.n_versions, &v);
        CHECK(r == 0 || r == -EPROTONOSUPPORT);
        bool common = false;
        for (size_t i = 0; i < n_ours; i++)
                for (size_t j = 0; j < h.n_versions; j++)
                        if (ours[i].major == h.versions[j].major) {
                                common = true;
                                if (r == 0 && v.major == ours[i].major)
                                        CHECK(v.minor <= ours[i].minor && v.minor <= h.versions[j].minor &&
                                              (v.minor == ours[i].minor || v.minor == h.versions[j].minor));
                        }
        CHECK(common == (r == 0));
        if (r == 0)
                for (size_t j = 0; j < h.n_versions; j++)
                        for (size_t i = 0; i < n_ours; i++)
                                if (ours[i].major == h.versions[j].major)
                                        CHECK(h.versions[j].major <= v.major);
}

/*
 * protobuf-c 1.4.1 rejects a tag whose first byte says field 0 ("00".."07"), but
 * accepts field 0 in an over-long tag varint ("80 00", "82 00", "80 80 00"...): it keeps
 * it as an unknown field, repacks it as "00"/"02" and then refuses its own output.
 * Go and Python reject field 0 however it is encoded. Known; the fuzzer would otherwise
 * stop on it at once. True when @m or a message inside it holds such a field.
 */
static bool has_field_zero(const ProtobufCMessage *m) {
        const ProtobufCMessageDescriptor *d = m->descriptor;

        for (unsigned i = 0; i < m->n_unknown_fields; i++)
                if (m->unknown_fields[i].tag == 0)
                        return true;
        for (unsigned i = 0; i < d->n_fields; i++) {
                const ProtobufCFieldDescriptor *f = &d->fields[i];
                const char *base = (const char *) m;
                if (f->type != PROTOBUF_C_TYPE_MESSAGE)
                        continue;
                if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                        size_t n = *(const size_t *) (base + f->quantifier_offset);
                        ProtobufCMessage *const *arr = *(ProtobufCMessage *const *const *) (base + f->offset);
                        for (size_t k = 0; k < n; k++)
                                if (has_field_zero(arr[k]))
                                        return true;
                        continue;
                }
                if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                    *(const uint32_t *) (base + f->quantifier_offset) != f->id)
                        continue;
                const ProtobufCMessage *sub = *(ProtobufCMessage *const *) (base + f->offset);
                if (sub && has_field_zero(sub))
                        return true;
        }
        return false;
}

static void fuzz_message(const ProtobufCMessageDescriptor *d, const uint8_t *payload, size_t len) {
        ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, payload);
        if (!m)
                return;
        CHECK(m->descriptor == d);

        const Vpn__RPC *rpc = vpn_message_rpc(m);
        volatile uint64_t sink = rpc ? rpc->msg_id ^ rpc->response_to : 0;
        (void) sink;

        uint32_t c = vpn_message_case(m);
        const char *name = vpn_message_case_name(m);
        CHECK(name != NULL);
        if (c == 0)
                CHECK(strcmp(name, "(none)") == 0);
        else {
                const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, c);
                CHECK(f && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && strcmp(f->name, name) == 0);
        }

        size_t packed = protobuf_c_message_get_packed_size(m);
        uint8_t *buf = malloc(packed ? packed : 1);
        CHECK(buf);
        CHECK(protobuf_c_message_pack(m, buf) == packed);

        /* What we pack, we can read back, and it packs to the same bytes. */
        ProtobufCMessage *m2 = protobuf_c_message_unpack(d, NULL, packed, buf);
        if (!m2 && has_field_zero(m)) {
                /* protobuf-c bug, see has_field_zero: not an agent/ problem. */
                free(buf);
                protobuf_c_message_free_unpacked(m, NULL);
                return;
        }
        CHECK(m2);
        CHECK(vpn_message_case(m2) == c);
        size_t packed2 = protobuf_c_message_get_packed_size(m2);
        CHECK(packed2 == packed);
        uint8_t *buf2 = malloc(packed2 ? packed2 : 1);
        CHECK(buf2);
        CHECK(protobuf_c_message_pack(m2, buf2) == packed2);
        CHECK(memcmp(buf, buf2, packed) == 0);

        free(buf2);
        free(buf);
        protobuf_c_message_free_unpacked(m2, NULL);
        protobuf_c_message_free_unpacked(m, NULL);
}

/* A summary of what a pass over the stream saw, to compare the two passes. */
struct pass {
        size_t frames;
        uint64_t hash;   /* FNV-1a over lengths and payloads */
        int end;         /* 0, or the error that ended the stream */
        size_t left;     /* bytes not consumed when the stream ended */
        size_t partial;  /* bytes buffered in an incomplete frame at the end */
};

static void hash_bytes(uint64_t *h, const void *p, size_t n) {
        const uint8_t *b = p;
        for (size_t i = 0; i < n; i++) {
                *h ^= b[i];
                *h *= 0x100000001b3ull;
        }
}

static void on_frame(struct pass *p, struct frame_reader *r, bool decode) {
        size_t len;
        const uint8_t *payload = frame_reader_payload(r, &len);

        CHECK(len <= VPN_FRAME_MAX);
        CHECK(len == 0 || payload != NULL);
        p->frames++;
        hash_bytes(&p->hash, &len, sizeof(len));
        if (len)
                hash_bytes(&p->hash, payload, len);
        if (decode)
                for (enum vpn_role role = 0; role < _VPN_ROLE_MAX; role++)
                        fuzz_message(vpn_role_incoming(role), payload, len);
        frame_reader_reset(r);
}

/* Feeds @n bytes in chunks; @salt 0 means a single chunk. */
static struct pass run_stream(const uint8_t *data, size_t n, unsigned salt, bool decode) {
        struct frame_reader r = {};
        struct pass p = { .hash = 0xcbf29ce484222325ull };
        const uint8_t *cur = data;
        size_t left = n;

        while (left > 0) {
                size_t chunk = left;
                if (salt)
                        chunk = 1 + (size_t) ((cur[0] + salt) % 23u);
                if (chunk > left)
                        chunk = left;

                const uint8_t *q = cur;
                size_t k = chunk;
                while (k > 0) {
                        int ret = frame_reader_feed(&r, &q, &k);
                        CHECK(ret == 0 || ret == 1 || ret == -EMSGSIZE || ret == -ENOMEM);
                        if (ret == 1) {
                                on_frame(&p, &r, decode);
                                continue;
                        }
                        if (ret < 0) {
                                CHECK(r.len > VPN_FRAME_MAX || ret == -ENOMEM);
                                p.end = ret;
                                p.left = left - (chunk - k);
                                goto out;
                        }
                        CHECK(k == 0);
                }
                cur += chunk;
                left -= chunk;
        }
out:
        p.partial = r.len_have + r.have;
        CHECK(r.len_have <= 4);
        CHECK(r.len_have < 4 || r.have <= r.len);
        frame_reader_done(&r);
        return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        size_t scan = size < VPN_HEADER_MAX + 1 ? size : VPN_HEADER_MAX + 1;
        const uint8_t *nl = memchr(data, '\n', scan);
        size_t line_len = nl ? (size_t) (nl - data) : scan;
        size_t skip = nl ? line_len + 1 : line_len;

        fuzz_header((const char *) data, line_len);

        unsigned salt = 1;
        for (size_t i = 0; i < line_len; i++)
                salt += data[i];

        const uint8_t *stream = data + skip;
        size_t stream_len = size - skip;
        struct pass whole = run_stream(stream, stream_len, 0, true);
        struct pass chunked = run_stream(stream, stream_len, salt, false);

        CHECK(whole.frames == chunked.frames);
        CHECK(whole.hash == chunked.hash);
        CHECK(whole.end == chunked.end);
        /* An oversize length is seen at the same byte however the stream is cut. */
        if (whole.end == -EMSGSIZE)
                CHECK(whole.left == chunked.left);
        else
                CHECK(whole.partial == chunked.partial);
        return 0;
}
