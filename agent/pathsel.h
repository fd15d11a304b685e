/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * The per-peer path decision behind agent/pathmgr (pathmgr.h states the rules), as a
 * pure state machine: no I/O, no clock of its own. pathmgr feeds it one sample of the
 * peer's WireGuard counters per tick and carries out the action it returns; the unit
 * tests feed it a fake clock.
 *
 * "Something came back" means bytes WireGuard received that did not come through our
 * relay socket: rx_bytes grows by more than the relayed bytes pathmgr wrote. Both count
 * whole WireGuard messages (kernel and wireguard-go alike), so on a peer that hears from
 * us only through DERP the two grow together. WireGuard may count a relayed packet a
 * moment after pathmgr wrote it (decryption is asynchronous); the shortfall is carried
 * into the next tick so that the late count is not mistaken for a direct packet.
 */
#include <stdbool.h>
#include <stdint.h>

#include "pathmgr.h"

enum pathsel_state {
        PATHSEL_DIRECT,      /* endpoint: the direct one */
        PATHSEL_DERP,        /* endpoint: the relay socket */
        PATHSEL_PROBING,     /* on DERP, endpoint pointed at the direct one to try it */
};

/* What WireGuard's endpoint for the peer is at the sample. */
enum pathsel_endpoint {
        PATHSEL_EP_NONE,
        PATHSEL_EP_RELAY,    /* our relay socket */
        PATHSEL_EP_DIRECT,   /* the direct endpoint we know */
        PATHSEL_EP_OTHER,    /* any other address: WireGuard roamed there */
};

enum pathsel_action {
        PATHSEL_KEEP,
        PATHSEL_POINT_DIRECT,   /* set the endpoint to the direct one */
        PATHSEL_POINT_RELAY,    /* set it to the relay socket */
        PATHSEL_ADOPT,          /* the address WireGuard roamed to is the direct endpoint now */
};

struct pathsel_sample {
        uint64_t tx_bytes, rx_bytes;
        uint64_t relayed_in_bytes;      /* cumulative bytes the relay socket wrote to WireGuard */
        int64_t last_handshake_sec;     /* 0: never */
        enum pathsel_endpoint endpoint;
};

struct pathsel {
        enum pathsel_state state;
        bool has_direct;
        bool sampled;                   /* tx/rx/relayed hold a previous sample */
        bool repoint;                   /* the last action failed: redo it */
        uint64_t tx, rx, relayed;
        int64_t carry;                  /* <= 0: relayed bytes WireGuard has not counted yet */
        uint64_t unanswered_since;      /* first tick that saw tx with nothing back; 0: none */
        uint64_t first_tx_at;           /* first tick that saw tx on this attempt (handshake rule) */
        uint64_t next_probe;
        unsigned probe_failures;        /* since the peer was last direct */
        uint32_t (*random)(uint32_t upper);     /* uniform in [0, upper) */
};

/*
 * Probes are PATHMGR_PROBE_USEC apart, +- this. Every probe that fails doubles the wait,
 * up to PATHSEL_PROBE_MAX_USEC, until the peer is direct again: a probe sends a tick of
 * traffic down the direct path, so a direct path that stays dead (a peer behind a NAT
 * that never lets it through) must not cost that every 10 s forever.
 */
#define PATHSEL_PROBE_JITTER_USEC (PATHMGR_PROBE_USEC / 5)
#define PATHSEL_PROBE_MAX_USEC (8 * PATHMGR_PROBE_USEC)

/* Starts direct when @has_direct, else on DERP. @now and every later time: monotonic usec. */
void pathsel_init(struct pathsel *ps, bool has_direct, uint64_t now, uint32_t (*random)(uint32_t));

/*
 * One tick. The caller does what the result says, and pathsel_failed() if that fails.
 * Then, if pathsel_wants_check(), it sends the peer something through the tunnel that the
 * peer's stack answers: the direct path went unanswered this tick but is not given up
 * yet, and a flow that only goes one way (a stream, a single packet) must not look like
 * a dead path. The answer counts as direct bytes like any other.
 */
enum pathsel_action pathsel_tick(struct pathsel *ps, uint64_t now, const struct pathsel_sample *s);

/* The endpoint change pathsel_tick asked for did not happen; the next tick asks again. */
void pathsel_failed(struct pathsel *ps);

/* After a tick: the direct path went unanswered and is not given up yet (above). */
static inline bool pathsel_wants_check(const struct pathsel *ps) {
        return ps->state == PATHSEL_DIRECT && ps->unanswered_since;
}

/* Whether traffic is (meant to be) direct: probing still counts as DERP until proven. */
static inline bool pathsel_is_direct(const struct pathsel *ps) {
        return ps->state == PATHSEL_DIRECT;
}

const char *pathsel_state_name(enum pathsel_state s);
