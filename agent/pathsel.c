/* SPDX-License-Identifier: MIT */
#include "pathsel.h"

static void schedule_probe(struct pathsel *ps, uint64_t now) {
        uint64_t wait = PATHMGR_PROBE_USEC;
        for (unsigned i = 0; i < ps->probe_failures && wait < PATHSEL_PROBE_MAX_USEC; i++)
                wait *= 2;
        if (wait > PATHSEL_PROBE_MAX_USEC)
                wait = PATHSEL_PROBE_MAX_USEC;
        /* Jitter, so that both ends of many peers do not probe in lockstep. */
        ps->next_probe = now + wait - PATHSEL_PROBE_JITTER_USEC + ps->random(2 * PATHSEL_PROBE_JITTER_USEC);
}

static void enter(struct pathsel *ps, enum pathsel_state state, uint64_t now) {
        if (state == PATHSEL_DIRECT)
                ps->probe_failures = 0;
        else if (state == PATHSEL_DERP && ps->state == PATHSEL_PROBING)
                ps->probe_failures++;
        ps->state = state;
        ps->unanswered_since = 0;
        ps->first_tx_at = 0;
        if (state == PATHSEL_DERP)
                schedule_probe(ps, now);
}

void pathsel_init(struct pathsel *ps, bool has_direct, uint64_t now, uint32_t (*random)(uint32_t)) {
        *ps = (struct pathsel) { .has_direct = has_direct, .random = random };
        enter(ps, has_direct ? PATHSEL_DIRECT : PATHSEL_DERP, now);
}

void pathsel_failed(struct pathsel *ps) {
        ps->repoint = true;
}

/* Counters start again from zero when the peer is re-created in WireGuard. */
static uint64_t delta(uint64_t now, uint64_t before) {
        return now >= before ? now - before : now;
}

enum pathsel_action pathsel_tick(struct pathsel *ps, uint64_t now, const struct pathsel_sample *s) {
        uint64_t tx_d = 0, rx_d = 0, rel_d = 0;

        if (ps->sampled) {
                tx_d = delta(s->tx_bytes, ps->tx);
                rx_d = delta(s->rx_bytes, ps->rx);
                rel_d = delta(s->relayed_in_bytes, ps->relayed);
        }
        ps->tx = s->tx_bytes;
        ps->rx = s->rx_bytes;
        ps->relayed = s->relayed_in_bytes;
        ps->sampled = true;

        int64_t direct = (int64_t) rx_d - (int64_t) rel_d + ps->carry;
        bool heard = direct > 0, sent = tx_d > 0;
        /* What WireGuard has not counted yet is at most what this tick relayed; relayed
         * garbage it never counts must not hide direct bytes for longer than that. */
        ps->carry = heard ? 0 : (direct > -(int64_t) rel_d ? direct : -(int64_t) rel_d);

        if (heard)
                ps->unanswered_since = 0;
        else if (sent && !ps->unanswered_since)
                ps->unanswered_since = now;
        if (sent && !ps->first_tx_at)
                ps->first_tx_at = now;
        bool silent = (ps->unanswered_since && now - ps->unanswered_since >= PATHMGR_DIRECT_SILENCE_USEC) ||
                      (s->last_handshake_sec == 0 && ps->first_tx_at &&
                       now - ps->first_tx_at >= PATHMGR_DIRECT_SILENCE_USEC);

        if (ps->repoint) {
                ps->repoint = false;
                return ps->state == PATHSEL_DERP ? PATHSEL_POINT_RELAY : PATHSEL_POINT_DIRECT;
        }

        switch (ps->state) {
        case PATHSEL_DIRECT:
                if (silent) {
                        enter(ps, PATHSEL_DERP, now);
                        return PATHSEL_POINT_RELAY;
                }
                if (s->endpoint == PATHSEL_EP_OTHER)
                        return PATHSEL_ADOPT;   /* the peer's address changed (NAT) */
                if (s->endpoint != PATHSEL_EP_DIRECT)
                        return PATHSEL_POINT_DIRECT;   /* a late relayed packet roamed it */
                return PATHSEL_KEEP;

        case PATHSEL_PROBING:
                if (s->endpoint == PATHSEL_EP_OTHER) {
                        enter(ps, PATHSEL_DIRECT, now);
                        return PATHSEL_ADOPT;
                }
                if (heard) {
                        enter(ps, PATHSEL_DIRECT, now);
                        return s->endpoint == PATHSEL_EP_DIRECT ? PATHSEL_KEEP : PATHSEL_POINT_DIRECT;
                }
                /* A whole tick of our packets down the direct path and nothing back is
                 * enough: an answer takes one round trip, and every tick more would be
                 * traffic lost to a path that may still be dead. */
                if (silent || (sent && !heard)) {
                        enter(ps, PATHSEL_DERP, now);
                        return s->endpoint == PATHSEL_EP_RELAY ? PATHSEL_KEEP : PATHSEL_POINT_RELAY;
                }
                /* Packets the peer still sends through DERP roam WireGuard back to the
                 * relay socket; point it at the direct path again for the rest of the tick. */
                return s->endpoint == PATHSEL_EP_DIRECT ? PATHSEL_KEEP : PATHSEL_POINT_DIRECT;

        case PATHSEL_DERP:
                /* WireGuard roamed to the source of an authenticated direct packet. */
                if (s->endpoint == PATHSEL_EP_OTHER) {
                        ps->has_direct = true;
                        enter(ps, PATHSEL_DIRECT, now);
                        return PATHSEL_ADOPT;
                }
                /* Direct bytes, with WireGuard roamed back to the relay by a later relayed
                 * packet: direct as well. */
                if (s->endpoint == PATHSEL_EP_DIRECT || (heard && ps->has_direct)) {
                        enter(ps, PATHSEL_DIRECT, now);
                        return s->endpoint == PATHSEL_EP_DIRECT ? PATHSEL_KEEP : PATHSEL_POINT_DIRECT;
                }
                if (s->endpoint == PATHSEL_EP_NONE)
                        return PATHSEL_POINT_RELAY;
                if (ps->has_direct && now >= ps->next_probe) {
                        enter(ps, PATHSEL_PROBING, now);
                        return PATHSEL_POINT_DIRECT;
                }
                return PATHSEL_KEEP;
        }
        return PATHSEL_KEEP;
}

const char *pathsel_state_name(enum pathsel_state s) {
        switch (s) {
        case PATHSEL_DIRECT: return "direct";
        case PATHSEL_DERP: return "derp";
        case PATHSEL_PROBING: return "probing";
        }
        return "?";
}
