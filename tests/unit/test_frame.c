/* SPDX-License-Identifier: MIT */
/* Framing (spec §3) and the message byte vectors (spec §5), plus the message helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "frame.h"
#include "log.h"
#include "message.h"
#include "unit-helpers.h"

/* ---- frame_reader --------------------------------------------------------------------- */

static void test_put_len(void **state) {
        uint8_t b[4];

        frame_put_len(b, 0x01020304);
        assert_int_equal(b[0], 0x01);
        assert_int_equal(b[1], 0x02);
        assert_int_equal(b[2], 0x03);
        assert_int_equal(b[3], 0x04);
        frame_put_len(b, VPN_FRAME_MAX);
        assert_memory_equal(b, "\x01\x00\x00\x00", 4);
        frame_put_len(b, 6);
        assert_memory_equal(b, "\x00\x00\x00\x06", 4);
}

static void test_max_length_accepted(void **state) {
        struct frame_reader r = {};
        uint8_t len[4];
        const uint8_t *p = len;
        size_t n = sizeof(len);

        frame_put_len(len, VPN_FRAME_MAX);
        assert_int_equal(frame_reader_feed(&r, &p, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(r.len, VPN_FRAME_MAX);

        /* And the whole 16 MiB payload arrives as one frame. */
        uint8_t *payload = malloc(VPN_FRAME_MAX);
        assert_non_null(payload);
        for (size_t i = 0; i < VPN_FRAME_MAX; i++)
                payload[i] = (uint8_t) (i * 7 + (i >> 13));
        p = payload;
        n = VPN_FRAME_MAX - 1;
        assert_int_equal(frame_reader_feed(&r, &p, &n), 0);   /* one byte short */
        n = 1;
        assert_int_equal(frame_reader_feed(&r, &p, &n), 1);
        assert_int_equal(n, 0);

        size_t got_len;
        const uint8_t *got = frame_reader_payload(&r, &got_len);
        assert_int_equal(got_len, VPN_FRAME_MAX);
        assert_memory_equal(got, payload, VPN_FRAME_MAX);
        free(payload);
        frame_reader_done(&r);
}

static void test_oversize_rejected(void **state) {
        static const uint32_t lens[] = { VPN_FRAME_MAX + 1, 0x7fffffff, 0xffffffff };

        for (size_t i = 0; i < ELEMENTSOF(lens); i++) {
                struct frame_reader r = {};
                uint8_t b[8] = { 0 };
                const uint8_t *p = b;
                size_t n = sizeof(b);

                frame_put_len(b, lens[i]);
                assert_int_equal(frame_reader_feed(&r, &p, &n), -EMSGSIZE);
                assert_int_equal(n, 4);   /* stopped right after the length */
                frame_reader_done(&r);
        }

        /* The same through space/advance one byte at a time: the error comes on the 4th byte. */
        struct frame_reader r = {};
        uint8_t b[4];
        frame_put_len(b, VPN_FRAME_MAX + 1);
        for (size_t i = 0; i < 4; i++) {
                uint8_t *dst;
                size_t room;
                assert_int_equal(frame_reader_space(&r, &dst, &room), 0);
                assert_int_equal(room, 4 - i);
                *dst = b[i];
                assert_int_equal(frame_reader_advance(&r, 1), i < 3 ? 0 : -EMSGSIZE);
        }
        frame_reader_done(&r);
}

static void test_zero_length(void **state) {
        struct frame_reader r = {};
        static const uint8_t b[] = { 0, 0, 0, 0, 0, 0, 0, 2, 0xaa, 0xbb };
        const uint8_t *p = b;
        size_t n = sizeof(b), len;

        assert_int_equal(frame_reader_feed(&r, &p, &n), 1);   /* complete at once */
        assert_int_equal(n, sizeof(b) - 4);
        frame_reader_payload(&r, &len);
        assert_int_equal(len, 0);
        frame_reader_reset(&r);

        assert_int_equal(frame_reader_feed(&r, &p, &n), 1);
        assert_int_equal(n, 0);
        const uint8_t *payload = frame_reader_payload(&r, &len);
        assert_int_equal(len, 2);
        assert_int_equal(payload[0], 0xaa);
        assert_int_equal(payload[1], 0xbb);
        frame_reader_done(&r);
}

/* Frames of these sizes, each filled with a pattern derived from its index. */
static const size_t stream_sizes[] = { 5, 0, 1, 70000, 3, 200000, 0, 64 * 1024, 64 * 1024 + 1, 17 };

static uint8_t *make_stream(size_t *ret_len) {
        size_t total = 0;
        for (size_t i = 0; i < ELEMENTSOF(stream_sizes); i++)
                total += 4 + stream_sizes[i];
        uint8_t *buf = malloc(total), *p = buf;
        assert_non_null(buf);
        for (size_t i = 0; i < ELEMENTSOF(stream_sizes); i++) {
                frame_put_len(p, (uint32_t) stream_sizes[i]);
                p += 4;
                for (size_t j = 0; j < stream_sizes[i]; j++)
                        *p++ = (uint8_t) (i * 31 + j);
        }
        *ret_len = total;
        return buf;
}

static void check_frame(size_t index, const uint8_t *payload, size_t len) {
        assert_true(index < ELEMENTSOF(stream_sizes));
        assert_int_equal(len, stream_sizes[index]);
        for (size_t j = 0; j < len; j++)
                if (payload[j] != (uint8_t) (index * 31 + j))
                        fail_msg("frame %zu byte %zu: %u", index, j, payload[j]);
}

/* Feeds @buf in pieces of @chunk bytes; returns the number of frames seen. */
static size_t feed_stream(const uint8_t *buf, size_t total, size_t chunk) {
        struct frame_reader r = {};
        size_t frames = 0;

        for (size_t off = 0; off < total; ) {
                size_t n = total - off < chunk ? total - off : chunk;
                const uint8_t *p = buf + off;
                size_t left = n;
                while (left > 0) {
                        int k = frame_reader_feed(&r, &p, &left);
                        assert_true(k >= 0);
                        if (k == 0)
                                break;
                        size_t len;
                        const uint8_t *payload = frame_reader_payload(&r, &len);
                        check_frame(frames++, payload, len);
                        frame_reader_reset(&r);
                }
                assert_int_equal(left, 0);
                off += n;
        }
        /* A zero-length frame at the very end of a chunk completes with left == 0,
         * so nothing is pending in any case. */
        assert_int_equal(r.len_have, 0);
        frame_reader_done(&r);
        return frames;
}

static void test_bytewise_equals_bulk(void **state) {
        size_t total;
        uint8_t *buf = make_stream(&total);

        assert_int_equal(feed_stream(buf, total, total), ELEMENTSOF(stream_sizes));   /* bulk */
        assert_int_equal(feed_stream(buf, total, 1), ELEMENTSOF(stream_sizes));       /* byte by byte */
        assert_int_equal(feed_stream(buf, total, 3), ELEMENTSOF(stream_sizes));
        assert_int_equal(feed_stream(buf, total, 4096), ELEMENTSOF(stream_sizes));
        assert_int_equal(feed_stream(buf, total, 65537), ELEMENTSOF(stream_sizes));
        free(buf);
}

/* Several frames in one buffer: each feed stops exactly at a frame boundary. */
static void test_several_frames_one_buffer(void **state) {
        static const uint8_t b[] = {
                0, 0, 0, 1, 'a',
                0, 0, 0, 3, 'b', 'c', 'd',
                0, 0, 0, 0,
                0, 0, 0, 2, 'e', 'f',
                0, 0,          /* half a length */
        };
        struct frame_reader r = {};
        const uint8_t *p = b;
        size_t n = sizeof(b), len;
        const uint8_t *payload;

        assert_int_equal(frame_reader_feed(&r, &p, &n), 1);
        assert_ptr_equal(p, b + 5);
        payload = frame_reader_payload(&r, &len);
        assert_int_equal(len, 1);
        assert_memory_equal(payload, "a", 1);
        frame_reader_reset(&r);

        assert_int_equal(frame_reader_feed(&r, &p, &n), 1);
        assert_ptr_equal(p, b + 12);
        payload = frame_reader_payload(&r, &len);
        assert_int_equal(len, 3);
        assert_memory_equal(payload, "bcd", 3);
        frame_reader_reset(&r);

        assert_int_equal(frame_reader_feed(&r, &p, &n), 1);
        assert_ptr_equal(p, b + 16);
        frame_reader_payload(&r, &len);
        assert_int_equal(len, 0);
        frame_reader_reset(&r);

        assert_int_equal(frame_reader_feed(&r, &p, &n), 1);
        payload = frame_reader_payload(&r, &len);
        assert_int_equal(len, 2);
        assert_memory_equal(payload, "ef", 2);
        frame_reader_reset(&r);

        assert_int_equal(frame_reader_feed(&r, &p, &n), 0);   /* incomplete */
        assert_int_equal(n, 0);
        static const uint8_t rest[] = { 0, 1, 'g' };
        p = rest;
        n = sizeof(rest);
        assert_int_equal(frame_reader_feed(&r, &p, &n), 1);
        payload = frame_reader_payload(&r, &len);
        assert_int_equal(len, 1);
        assert_memory_equal(payload, "g", 1);
        frame_reader_done(&r);
}

/* space() never offers room past the end of the current frame. */
static void test_space_respects_boundary(void **state) {
        struct frame_reader r = {};
        uint8_t *dst;
        size_t room;

        assert_int_equal(frame_reader_space(&r, &dst, &room), 0);
        assert_int_equal(room, 4);
        frame_put_len(dst, 10);
        assert_int_equal(frame_reader_advance(&r, 4), 0);
        assert_int_equal(frame_reader_space(&r, &dst, &room), 0);
        assert_int_equal(room, 10);
        memcpy(dst, "0123", 4);
        assert_int_equal(frame_reader_advance(&r, 4), 0);
        assert_int_equal(frame_reader_space(&r, &dst, &room), 0);
        assert_int_equal(room, 6);
        memcpy(dst, "456789", 6);
        assert_int_equal(frame_reader_advance(&r, 6), 1);
        size_t len;
        const uint8_t *payload = frame_reader_payload(&r, &len);
        assert_int_equal(len, 10);
        assert_memory_equal(payload, "0123456789", 10);
        frame_reader_reset(&r);

        /* A big announced frame is not offered more than it needs either. */
        assert_int_equal(frame_reader_space(&r, &dst, &room), 0);
        assert_int_equal(room, 4);
        frame_put_len(dst, 100000);
        assert_int_equal(frame_reader_advance(&r, 4), 0);
        size_t total = 0;
        for (unsigned i = 0; i < 100 && total < 100000; i++) {
                assert_int_equal(frame_reader_space(&r, &dst, &room), 0);
                assert_true(room > 0);
                assert_true(total + room <= 100000);
                memset(dst, 0x5a, room);
                total += room;
                assert_int_equal(frame_reader_advance(&r, room), total == 100000);
        }
        assert_int_equal(total, 100000);
        frame_reader_done(&r);
}

/* After reset, the reader is as good as new, for small and large frames alike. */
static void test_reset_reuse(void **state) {
        struct frame_reader r = {};

        for (unsigned round = 0; round < 6; round++) {
                size_t size = round % 2 ? 150000 + round : 7 + round;
                uint8_t *buf = malloc(4 + size);
                assert_non_null(buf);
                frame_put_len(buf, (uint32_t) size);
                for (size_t j = 0; j < size; j++)
                        buf[4 + j] = (uint8_t) (round + j);
                const uint8_t *p = buf;
                size_t n = 4 + size, len;
                assert_int_equal(frame_reader_feed(&r, &p, &n), 1);
                assert_int_equal(n, 0);
                const uint8_t *payload = frame_reader_payload(&r, &len);
                assert_int_equal(len, size);
                assert_memory_equal(payload, buf + 4, size);
                frame_reader_reset(&r);
                assert_int_equal(r.len_have, 0);
                assert_int_equal(r.have, 0);
                free(buf);
        }

        /* Reset in the middle of a frame forgets it. */
        static const uint8_t partial[] = { 0, 0, 0, 9, 1, 2, 3 };
        const uint8_t *p = partial;
        size_t n = sizeof(partial), len;
        assert_int_equal(frame_reader_feed(&r, &p, &n), 0);
        frame_reader_reset(&r);
        static const uint8_t whole[] = { 0, 0, 0, 2, 8, 9 };
        p = whole;
        n = sizeof(whole);
        assert_int_equal(frame_reader_feed(&r, &p, &n), 1);
        const uint8_t *payload = frame_reader_payload(&r, &len);
        assert_int_equal(len, 2);
        assert_memory_equal(payload, "\x08\x09", 2);
        frame_reader_done(&r);
        frame_reader_done(&r);   /* idempotent on a cleared reader */
}

/* ---- Undecodable payloads (spec §3) ---------------------------------------------------- */

static void test_undecodable(void **state) {
        uint8_t b[64];
        size_t n = hex_decode("0000000a 00000000000000000000", b, sizeof(b)), len;
        struct frame_reader r = {};
        const uint8_t *p = b;

        assert_int_equal(n, 14);
        assert_int_equal(frame_reader_feed(&r, &p, &n), 1);
        const uint8_t *payload = frame_reader_payload(&r, &len);
        assert_int_equal(len, 10);
        assert_null(protobuf_c_message_unpack(&vpn__manager_message__descriptor, NULL, len, payload));
        assert_null(protobuf_c_message_unpack(&vpn__tunnel_message__descriptor, NULL, len, payload));
        frame_reader_done(&r);

        static const uint8_t one_zero[] = { 0 };
        assert_null(protobuf_c_message_unpack(&vpn__manager_message__descriptor, NULL, 1, one_zero));
        assert_null(protobuf_c_message_unpack(&vpn__tunnel_message__descriptor, NULL, 1, one_zero));

        /* A truncated spec vector fails too. */
        n = hex_decode("0a0208022a", b, sizeof(b));
        assert_null(protobuf_c_message_unpack(&vpn__manager_message__descriptor, NULL, n, b));
}

/* ---- Spec §5 message vectors ----------------------------------------------------------- */

static ProtobufCMessage *unpack_hex(const ProtobufCMessageDescriptor *d, const char *hex) {
        uint8_t b[1024];
        size_t n = hex_decode(hex, b, sizeof(b));
        ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, n, b);
        assert_non_null(m);
        /* Re-packing what was decoded gives the same bytes. */
        assert_packs_to(m, hex);
        return m;
}

#define V_MGR_STOP "0a0208022a00"
#define V_TUN_STOP "0a02100232020801"
#define V_MGR_WAKE "0a0208033200"
#define V_TUN_WAKE "0a0210033a00"
#define V_MGR_GPU "0a0208041200"
#define V_TUN_START_NORPC "2a00"
#define V_TUN_NS_MTU "0a020801220310b009"
#define V_MGR_NS_RESP "0a0210011a020801"
#define V_TUN_DNS "0a02080222241a220a12666436303a363237613a613432623a3a35331a05636f6465722205636f646572"
#define V_TUN_ROUTER6 "0a020801223632340a18666436303a363237613a613432623a313a323a333a343a35120280011a140a10666436303a363237613a613432623a3a1030"
#define V_MGR_START "0a02080122590802121968747470733a2f2f636f6465722e6578616d706c652e636f6d1a0966616b65546f6b656e22150a0d582d546573742d4865616465721204746573742a0964657669636530303132056d61634f533a06302e32342e38"

static void test_vec_manager_stop(void **state) {
        Vpn__ManagerMessage *m = (Vpn__ManagerMessage *) unpack_hex(&vpn__manager_message__descriptor, V_MGR_STOP);
        assert_non_null(m->rpc);
        assert_int_equal(m->rpc->msg_id, 2);
        assert_int_equal(m->rpc->response_to, 0);
        assert_int_equal(m->msg_case, VPN__MANAGER_MESSAGE__MSG_STOP);
        assert_non_null(m->stop);
        assert_ptr_equal(vpn_message_rpc(&m->base), m->rpc);
        assert_int_equal(vpn_message_case(&m->base), 5);
        assert_string_equal(vpn_message_case_name(&m->base), "stop");
        protobuf_c_message_free_unpacked(&m->base, NULL);

        Vpn__ManagerMessage b = VPN__MANAGER_MESSAGE__INIT;
        Vpn__RPC rpc = VPN__RPC__INIT;
        Vpn__StopRequest stop = VPN__STOP_REQUEST__INIT;
        rpc.msg_id = 2;
        b.rpc = &rpc;
        b.msg_case = VPN__MANAGER_MESSAGE__MSG_STOP;
        b.stop = &stop;
        assert_packs_to(&b.base, V_MGR_STOP);
}

static void test_vec_tunnel_stop(void **state) {
        Vpn__TunnelMessage *m = (Vpn__TunnelMessage *) unpack_hex(&vpn__tunnel_message__descriptor, V_TUN_STOP);
        assert_non_null(m->rpc);
        assert_int_equal(m->rpc->msg_id, 0);
        assert_int_equal(m->rpc->response_to, 2);
        assert_int_equal(m->msg_case, VPN__TUNNEL_MESSAGE__MSG_STOP);
        assert_true(m->stop->success);
        assert_string_equal(m->stop->error_message, "");
        assert_int_equal(vpn_message_case(&m->base), 6);
        assert_string_equal(vpn_message_case_name(&m->base), "stop");
        protobuf_c_message_free_unpacked(&m->base, NULL);

        Vpn__TunnelMessage b = VPN__TUNNEL_MESSAGE__INIT;
        Vpn__RPC rpc = VPN__RPC__INIT;
        Vpn__StopResponse stop = VPN__STOP_RESPONSE__INIT;
        rpc.response_to = 2;
        stop.success = true;
        b.rpc = &rpc;
        b.msg_case = VPN__TUNNEL_MESSAGE__MSG_STOP;
        b.stop = &stop;
        assert_packs_to(&b.base, V_TUN_STOP);
        /* An error_message of "" (not protobuf_c_empty_string) is not emitted either. */
        stop.error_message = (char *) "";
        assert_packs_to(&b.base, V_TUN_STOP);
}

static void test_vec_manager_wake(void **state) {
        Vpn__ManagerMessage *m = (Vpn__ManagerMessage *) unpack_hex(&vpn__manager_message__descriptor, V_MGR_WAKE);
        assert_int_equal(m->rpc->msg_id, 3);
        assert_int_equal(m->msg_case, VPN__MANAGER_MESSAGE__MSG_WAKE);
        assert_non_null(m->wake);
        assert_int_equal(vpn_message_case(&m->base), 6);
        assert_string_equal(vpn_message_case_name(&m->base), "wake");
        protobuf_c_message_free_unpacked(&m->base, NULL);

        Vpn__ManagerMessage b = VPN__MANAGER_MESSAGE__INIT;
        Vpn__RPC rpc = VPN__RPC__INIT;
        Vpn__WakeRequest wake = VPN__WAKE_REQUEST__INIT;
        rpc.msg_id = 3;
        b.rpc = &rpc;
        b.msg_case = VPN__MANAGER_MESSAGE__MSG_WAKE;
        b.wake = &wake;
        assert_packs_to(&b.base, V_MGR_WAKE);
}

static void test_vec_tunnel_wake(void **state) {
        Vpn__TunnelMessage *m = (Vpn__TunnelMessage *) unpack_hex(&vpn__tunnel_message__descriptor, V_TUN_WAKE);
        assert_int_equal(m->rpc->response_to, 3);
        assert_int_equal(m->rpc->msg_id, 0);
        assert_int_equal(m->msg_case, VPN__TUNNEL_MESSAGE__MSG_WAKE);
        assert_non_null(m->wake);
        assert_int_equal(vpn_message_case(&m->base), 7);
        assert_string_equal(vpn_message_case_name(&m->base), "wake");
        protobuf_c_message_free_unpacked(&m->base, NULL);

        Vpn__TunnelMessage b = VPN__TUNNEL_MESSAGE__INIT;
        Vpn__RPC rpc = VPN__RPC__INIT;
        Vpn__WakeResponse wake = VPN__WAKE_RESPONSE__INIT;
        rpc.response_to = 3;
        b.rpc = &rpc;
        b.msg_case = VPN__TUNNEL_MESSAGE__MSG_WAKE;
        b.wake = &wake;
        assert_packs_to(&b.base, V_TUN_WAKE);
}

static void test_vec_get_peer_update(void **state) {
        Vpn__ManagerMessage *m = (Vpn__ManagerMessage *) unpack_hex(&vpn__manager_message__descriptor, V_MGR_GPU);
        assert_int_equal(m->rpc->msg_id, 4);
        assert_int_equal(m->msg_case, VPN__MANAGER_MESSAGE__MSG_GET_PEER_UPDATE);
        assert_non_null(m->get_peer_update);
        assert_int_equal(vpn_message_case(&m->base), 2);
        assert_string_equal(vpn_message_case_name(&m->base), "get_peer_update");
        protobuf_c_message_free_unpacked(&m->base, NULL);

        Vpn__ManagerMessage b = VPN__MANAGER_MESSAGE__INIT;
        Vpn__RPC rpc = VPN__RPC__INIT;
        Vpn__GetPeerUpdate gpu = VPN__GET_PEER_UPDATE__INIT;
        rpc.msg_id = 4;
        b.rpc = &rpc;
        b.msg_case = VPN__MANAGER_MESSAGE__MSG_GET_PEER_UPDATE;
        b.get_peer_update = &gpu;
        assert_packs_to(&b.base, V_MGR_GPU);
}

static void test_vec_tunnel_start_no_rpc(void **state) {
        Vpn__TunnelMessage *m = (Vpn__TunnelMessage *) unpack_hex(&vpn__tunnel_message__descriptor, V_TUN_START_NORPC);
        assert_null(m->rpc);
        assert_null(vpn_message_rpc(&m->base));
        assert_int_equal(m->msg_case, VPN__TUNNEL_MESSAGE__MSG_START);
        assert_false(m->start->success);
        assert_int_equal(vpn_message_case(&m->base), 5);
        assert_string_equal(vpn_message_case_name(&m->base), "start");
        protobuf_c_message_free_unpacked(&m->base, NULL);

        Vpn__TunnelMessage b = VPN__TUNNEL_MESSAGE__INIT;
        Vpn__StartResponse start = VPN__START_RESPONSE__INIT;
        b.msg_case = VPN__TUNNEL_MESSAGE__MSG_START;
        b.start = &start;
        assert_packs_to(&b.base, V_TUN_START_NORPC);

        /* An empty RPC{} is present on the wire as 0a 00: that is why unsolicited
         * messages must carry no rpc at all. */
        Vpn__RPC empty = VPN__RPC__INIT;
        b.rpc = &empty;
        assert_packs_to(&b.base, "0a00" V_TUN_START_NORPC);
}

static void test_vec_network_settings_mtu(void **state) {
        Vpn__TunnelMessage *m = (Vpn__TunnelMessage *) unpack_hex(&vpn__tunnel_message__descriptor, V_TUN_NS_MTU);
        assert_int_equal(m->rpc->msg_id, 1);
        assert_int_equal(m->msg_case, VPN__TUNNEL_MESSAGE__MSG_NETWORK_SETTINGS);
        assert_int_equal(m->network_settings->mtu, 1200);
        assert_int_equal(m->network_settings->tunnel_overhead_bytes, 0);
        assert_null(m->network_settings->dns_settings);
        assert_null(m->network_settings->ipv4_settings);
        assert_null(m->network_settings->ipv6_settings);
        assert_string_equal(vpn_message_case_name(&m->base), "network_settings");
        assert_int_equal(vpn_message_case(&m->base), 4);
        protobuf_c_message_free_unpacked(&m->base, NULL);

        Vpn__TunnelMessage b = VPN__TUNNEL_MESSAGE__INIT;
        Vpn__RPC rpc = VPN__RPC__INIT;
        Vpn__NetworkSettingsRequest ns = VPN__NETWORK_SETTINGS_REQUEST__INIT;
        rpc.msg_id = 1;
        ns.mtu = 1200;
        b.rpc = &rpc;
        b.msg_case = VPN__TUNNEL_MESSAGE__MSG_NETWORK_SETTINGS;
        b.network_settings = &ns;
        assert_packs_to(&b.base, V_TUN_NS_MTU);
}

static void test_vec_network_settings_response(void **state) {
        Vpn__ManagerMessage *m = (Vpn__ManagerMessage *) unpack_hex(&vpn__manager_message__descriptor, V_MGR_NS_RESP);
        assert_int_equal(m->rpc->response_to, 1);
        assert_int_equal(m->rpc->msg_id, 0);
        assert_int_equal(m->msg_case, VPN__MANAGER_MESSAGE__MSG_NETWORK_SETTINGS);
        assert_true(m->network_settings->success);
        assert_string_equal(m->network_settings->error_message, "");
        assert_int_equal(vpn_message_case(&m->base), 3);
        assert_string_equal(vpn_message_case_name(&m->base), "network_settings");
        protobuf_c_message_free_unpacked(&m->base, NULL);

        Vpn__ManagerMessage b = VPN__MANAGER_MESSAGE__INIT;
        Vpn__RPC rpc = VPN__RPC__INIT;
        Vpn__NetworkSettingsResponse resp = VPN__NETWORK_SETTINGS_RESPONSE__INIT;
        rpc.response_to = 1;
        resp.success = true;
        b.rpc = &rpc;
        b.msg_case = VPN__MANAGER_MESSAGE__MSG_NETWORK_SETTINGS;
        b.network_settings = &resp;
        assert_packs_to(&b.base, V_MGR_NS_RESP);
}

static void test_vec_dns(void **state) {
        Vpn__TunnelMessage *m = (Vpn__TunnelMessage *) unpack_hex(&vpn__tunnel_message__descriptor, V_TUN_DNS);
        assert_int_equal(m->rpc->msg_id, 2);
        assert_int_equal(m->msg_case, VPN__TUNNEL_MESSAGE__MSG_NETWORK_SETTINGS);
        const Vpn__NetworkSettingsRequest__DNSSettings *dns = m->network_settings->dns_settings;
        assert_non_null(dns);
        assert_int_equal(m->network_settings->mtu, 0);
        assert_int_equal(dns->n_servers, 1);
        assert_string_equal(dns->servers[0], "fd60:627a:a42b::53");
        assert_int_equal(dns->n_search_domains, 0);
        assert_string_equal(dns->domain_name, "coder");
        assert_int_equal(dns->n_match_domains, 1);
        assert_string_equal(dns->match_domains[0], "coder");
        assert_false(dns->match_domains_no_search);
        assert_null(m->network_settings->ipv4_settings);
        assert_null(m->network_settings->ipv6_settings);
        protobuf_c_message_free_unpacked(&m->base, NULL);

        Vpn__TunnelMessage b = VPN__TUNNEL_MESSAGE__INIT;
        Vpn__RPC rpc = VPN__RPC__INIT;
        Vpn__NetworkSettingsRequest ns = VPN__NETWORK_SETTINGS_REQUEST__INIT;
        Vpn__NetworkSettingsRequest__DNSSettings d = VPN__NETWORK_SETTINGS_REQUEST__DNSSETTINGS__INIT;
        char *servers[] = { (char *) "fd60:627a:a42b::53" };
        char *match[] = { (char *) "coder" };
        d.n_servers = 1;
        d.servers = servers;
        d.domain_name = (char *) "coder";
        d.n_match_domains = 1;
        d.match_domains = match;
        ns.dns_settings = &d;
        rpc.msg_id = 2;
        b.rpc = &rpc;
        b.msg_case = VPN__TUNNEL_MESSAGE__MSG_NETWORK_SETTINGS;
        b.network_settings = &ns;
        assert_packs_to(&b.base, V_TUN_DNS);
}

static void test_vec_router_v6(void **state) {
        Vpn__TunnelMessage *m = (Vpn__TunnelMessage *) unpack_hex(&vpn__tunnel_message__descriptor, V_TUN_ROUTER6);
        assert_int_equal(m->rpc->msg_id, 1);
        const Vpn__NetworkSettingsRequest__IPv6Settings *v6 = m->network_settings->ipv6_settings;
        assert_non_null(v6);
        assert_null(m->network_settings->ipv4_settings);
        assert_null(m->network_settings->dns_settings);
        assert_int_equal(v6->n_addrs, 1);
        assert_string_equal(v6->addrs[0], "fd60:627a:a42b:1:2:3:4:5");
        assert_int_equal(v6->n_prefix_lengths, 1);
        assert_int_equal(v6->prefix_lengths[0], 128);
        assert_int_equal(v6->n_included_routes, 1);
        assert_string_equal(v6->included_routes[0]->destination, "fd60:627a:a42b::");
        assert_int_equal(v6->included_routes[0]->prefix_length, 48);
        assert_string_equal(v6->included_routes[0]->router, "");
        assert_int_equal(v6->n_excluded_routes, 0);
        protobuf_c_message_free_unpacked(&m->base, NULL);

        /* Receivers must accept the unpacked encoding of prefix_lengths too (10 80 01). */
        uint8_t alt[256];
        size_t n = hex_decode("0a020801223532330a18666436303a363237613a613432623a313a323a333a343a351080011a140a10666436303a363237613a613432623a3a1030",
                              alt, sizeof(alt));
        m = (Vpn__TunnelMessage *) protobuf_c_message_unpack(&vpn__tunnel_message__descriptor, NULL, n, alt);
        assert_non_null(m);
        assert_int_equal(m->network_settings->ipv6_settings->n_prefix_lengths, 1);
        assert_int_equal(m->network_settings->ipv6_settings->prefix_lengths[0], 128);
        protobuf_c_message_free_unpacked(&m->base, NULL);

        Vpn__TunnelMessage b = VPN__TUNNEL_MESSAGE__INIT;
        Vpn__RPC rpc = VPN__RPC__INIT;
        Vpn__NetworkSettingsRequest ns = VPN__NETWORK_SETTINGS_REQUEST__INIT;
        Vpn__NetworkSettingsRequest__IPv6Settings s6 = VPN__NETWORK_SETTINGS_REQUEST__IPV6_SETTINGS__INIT;
        Vpn__NetworkSettingsRequest__IPv6Settings__IPv6Route route =
                VPN__NETWORK_SETTINGS_REQUEST__IPV6_SETTINGS__IPV6_ROUTE__INIT;
        Vpn__NetworkSettingsRequest__IPv6Settings__IPv6Route *routes[] = { &route };
        char *addrs[] = { (char *) "fd60:627a:a42b:1:2:3:4:5" };
        uint32_t prefixes[] = { 128 };
        route.destination = (char *) "fd60:627a:a42b::";
        route.prefix_length = 48;
        s6.n_addrs = 1;
        s6.addrs = addrs;
        s6.n_prefix_lengths = 1;
        s6.prefix_lengths = prefixes;
        s6.n_included_routes = 1;
        s6.included_routes = routes;
        ns.ipv6_settings = &s6;
        rpc.msg_id = 1;
        b.rpc = &rpc;
        b.msg_case = VPN__TUNNEL_MESSAGE__MSG_NETWORK_SETTINGS;
        b.network_settings = &ns;
        assert_packs_to(&b.base, V_TUN_ROUTER6);
}

static void test_vec_start_request(void **state) {
        Vpn__ManagerMessage *m = (Vpn__ManagerMessage *) unpack_hex(&vpn__manager_message__descriptor, V_MGR_START);
        assert_int_equal(m->rpc->msg_id, 1);
        assert_int_equal(m->msg_case, VPN__MANAGER_MESSAGE__MSG_START);
        const Vpn__StartRequest *s = m->start;
        assert_int_equal(s->tunnel_file_descriptor, 2);
        assert_string_equal(s->coder_url, "https://coder.example.com");
        assert_string_equal(s->api_token, "fakeToken");
        assert_int_equal(s->n_headers, 1);
        assert_string_equal(s->headers[0]->name, "X-Test-Header");
        assert_string_equal(s->headers[0]->value, "test");
        assert_string_equal(s->device_id, "device001");
        assert_string_equal(s->device_os, "macOS");
        assert_string_equal(s->coder_desktop_version, "0.24.8");
        assert_int_equal(vpn_message_case(&m->base), 4);
        assert_string_equal(vpn_message_case_name(&m->base), "start");
        protobuf_c_message_free_unpacked(&m->base, NULL);

        Vpn__ManagerMessage b = VPN__MANAGER_MESSAGE__INIT;
        Vpn__RPC rpc = VPN__RPC__INIT;
        Vpn__StartRequest start = VPN__START_REQUEST__INIT;
        Vpn__StartRequest__Header h = VPN__START_REQUEST__HEADER__INIT;
        Vpn__StartRequest__Header *headers[] = { &h };
        h.name = (char *) "X-Test-Header";
        h.value = (char *) "test";
        start.tunnel_file_descriptor = 2;
        start.coder_url = (char *) "https://coder.example.com";
        start.api_token = (char *) "fakeToken";
        start.n_headers = 1;
        start.headers = headers;
        start.device_id = (char *) "device001";
        start.device_os = (char *) "macOS";
        start.coder_desktop_version = (char *) "0.24.8";
        rpc.msg_id = 1;
        b.rpc = &rpc;
        b.msg_case = VPN__MANAGER_MESSAGE__MSG_START;
        b.start = &start;
        assert_packs_to(&b.base, V_MGR_START);
}

/* Receivers must not depend on field order: msg before rpc decodes the same. */
static void test_field_order(void **state) {
        uint8_t b[16];
        size_t n = hex_decode("2a00 0a020802", b, sizeof(b));
        Vpn__ManagerMessage *m = (Vpn__ManagerMessage *) protobuf_c_message_unpack(&vpn__manager_message__descriptor,
                                                                                  NULL, n, b);
        assert_non_null(m);
        assert_int_equal(m->rpc->msg_id, 2);
        assert_int_equal(m->msg_case, VPN__MANAGER_MESSAGE__MSG_STOP);
        assert_packs_to(&m->base, V_MGR_STOP);   /* we write canonical order */
        protobuf_c_message_free_unpacked(&m->base, NULL);
}

/* Agent.last_handshake for "never": Go's zero time. */
static void test_vec_zero_timestamp(void **state) {
        static const char hex[] = "320b088092b8c398feffffff01";
        Vpn__Agent a = VPN__AGENT__INIT;
        Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

        ts.seconds = -62135596800LL;
        a.last_handshake = &ts;
        assert_packs_to(&a.base, hex);

        uint8_t b[32];
        size_t n = hex_decode(hex, b, sizeof(b));
        Vpn__Agent *back = (Vpn__Agent *) protobuf_c_message_unpack(&vpn__agent__descriptor, NULL, n, b);
        assert_non_null(back);
        assert_non_null(back->last_handshake);
        assert_true(back->last_handshake->seconds == -62135596800LL);
        assert_int_equal(back->last_handshake->nanos, 0);
        assert_null(back->last_ping);
        assert_int_equal(back->n_fqdn, 0);
        protobuf_c_message_free_unpacked(&back->base, NULL);

        /* Inside a PeerUpdate inside a TunnelMessage, with no rpc (unsolicited). */
        Vpn__PeerUpdate pu = VPN__PEER_UPDATE__INIT;
        Vpn__Agent *agents[] = { &a };
        Vpn__TunnelMessage tm = VPN__TUNNEL_MESSAGE__INIT;
        pu.n_upserted_agents = 1;
        pu.upserted_agents = agents;
        tm.msg_case = VPN__TUNNEL_MESSAGE__MSG_PEER_UPDATE;
        tm.peer_update = &pu;
        assert_packs_to(&tm.base, "1a0f 120d 320b088092b8c398feffffff01");
        assert_null(vpn_message_rpc(&tm.base));
        assert_string_equal(vpn_message_case_name(&tm.base), "peer_update");
        assert_int_equal(vpn_message_case(&tm.base), 3);
}

/* ---- message.h helpers ----------------------------------------------------------------- */

static void test_message_helpers(void **state) {
        Vpn__ManagerMessage m = VPN__MANAGER_MESSAGE__INIT;
        Vpn__TunnelMessage t = VPN__TUNNEL_MESSAGE__INIT;
        Vpn__ClientMessage c = VPN__CLIENT_MESSAGE__INIT;
        Vpn__ServiceMessage s = VPN__SERVICE_MESSAGE__INIT;
        Vpn__RPC rpc = VPN__RPC__INIT;
        Vpn__StatusRequest status = VPN__STATUS_REQUEST__INIT;
        Vpn__StartProgress progress = VPN__START_PROGRESS__INIT;

        /* Unset oneof. */
        assert_int_equal(vpn_message_case(&m.base), 0);
        assert_string_equal(vpn_message_case_name(&m.base), "(none)");
        assert_int_equal(vpn_message_case(&t.base), 0);
        assert_string_equal(vpn_message_case_name(&t.base), "(none)");
        assert_null(vpn_message_rpc(&m.base));

        vpn_message_set_rpc(&m.base, &rpc);
        assert_ptr_equal(m.rpc, &rpc);
        assert_ptr_equal(vpn_message_rpc(&m.base), &rpc);
        vpn_message_set_rpc(&m.base, NULL);
        assert_null(m.rpc);

        vpn_message_set_rpc(&c.base, &rpc);
        assert_ptr_equal(c.rpc, &rpc);
        vpn_message_set_rpc(&s.base, &rpc);
        assert_ptr_equal(s.rpc, &rpc);

        c.msg_case = VPN__CLIENT_MESSAGE__MSG_STATUS;
        c.status = &status;
        assert_int_equal(vpn_message_case(&c.base), 4);
        assert_string_equal(vpn_message_case_name(&c.base), "status");
        s.msg_case = VPN__SERVICE_MESSAGE__MSG_START_PROGRESS;
        s.start_progress = &progress;
        assert_int_equal(vpn_message_case(&s.base), 5);
        assert_string_equal(vpn_message_case_name(&s.base), "start_progress");

        /* Role <-> descriptor mapping. */
        assert_ptr_equal(vpn_role_incoming(VPN_ROLE_TUNNEL), &vpn__manager_message__descriptor);
        assert_ptr_equal(vpn_role_outgoing(VPN_ROLE_TUNNEL), &vpn__tunnel_message__descriptor);
        assert_ptr_equal(vpn_role_incoming(VPN_ROLE_MANAGER), &vpn__tunnel_message__descriptor);
        assert_ptr_equal(vpn_role_outgoing(VPN_ROLE_MANAGER), &vpn__manager_message__descriptor);
        assert_ptr_equal(vpn_role_incoming(VPN_ROLE_SERVICE), &vpn__client_message__descriptor);
        assert_ptr_equal(vpn_role_outgoing(VPN_ROLE_SERVICE), &vpn__service_message__descriptor);
        assert_ptr_equal(vpn_role_incoming(VPN_ROLE_CLIENT), &vpn__service_message__descriptor);
        assert_ptr_equal(vpn_role_outgoing(VPN_ROLE_CLIENT), &vpn__client_message__descriptor);

        size_t n;
        const struct vpn_version *v = vpn_role_versions(VPN_ROLE_SERVICE, &n);
        assert_int_equal(n, 1);
        assert_int_equal(v[0].major, 1);
        assert_int_equal(v[0].minor, 0);
        v = vpn_role_versions(VPN_ROLE_CLIENT, &n);
        assert_int_equal(n, 1);
        assert_int_equal(v[0].major, 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_put_len),
                cmocka_unit_test(test_max_length_accepted),
                cmocka_unit_test(test_oversize_rejected),
                cmocka_unit_test(test_zero_length),
                cmocka_unit_test(test_bytewise_equals_bulk),
                cmocka_unit_test(test_several_frames_one_buffer),
                cmocka_unit_test(test_space_respects_boundary),
                cmocka_unit_test(test_reset_reuse),
                cmocka_unit_test(test_undecodable),
                cmocka_unit_test(test_vec_manager_stop),
                cmocka_unit_test(test_vec_tunnel_stop),
                cmocka_unit_test(test_vec_manager_wake),
                cmocka_unit_test(test_vec_tunnel_wake),
                cmocka_unit_test(test_vec_get_peer_update),
                cmocka_unit_test(test_vec_tunnel_start_no_rpc),
                cmocka_unit_test(test_vec_network_settings_mtu),
                cmocka_unit_test(test_vec_network_settings_response),
                cmocka_unit_test(test_vec_dns),
                cmocka_unit_test(test_vec_router_v6),
                cmocka_unit_test(test_vec_start_request),
                cmocka_unit_test(test_field_order),
                cmocka_unit_test(test_vec_zero_timestamp),
                cmocka_unit_test(test_message_helpers),
        };

        log_open(LOG_TARGET_STDERR, LOG_WARNING);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
