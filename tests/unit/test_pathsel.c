/* SPDX-License-Identifier: MIT */
/* The per-peer path decision (agent/pathsel) on a fake clock. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "pathsel.h"

#define SEC 1000000ULL

static uint32_t random_value;   /* what the fake random source returns, clamped */

static uint32_t fake_random(uint32_t upper) {
        return random_value < upper ? random_value : upper - 1;
}

/* A peer as WireGuard would report it: cumulative counters and the current endpoint. */
struct sim {
        struct pathsel ps;
        uint64_t now;
        struct pathsel_sample s;
};

static void sim_init(struct sim *m, bool has_direct) {
        *m = (struct sim) { .now = 100 * SEC, .s.last_handshake_sec = 1, .s.endpoint = PATHSEL_EP_DIRECT };
        if (!has_direct)
                m->s.endpoint = PATHSEL_EP_RELAY;
        random_value = PATHSEL_PROBE_JITTER_USEC;   /* no jitter: probes exactly PROBE_USEC apart */
        pathsel_init(&m->ps, has_direct, m->now, fake_random);
}

/* One second passes with @tx bytes sent, @direct bytes received directly and @relayed
 * bytes received (and counted by WireGuard) through the relay; then a tick. */
static enum pathsel_action step(struct sim *m, uint64_t tx, uint64_t direct, uint64_t relayed) {
        m->now += SEC;
        m->s.tx_bytes += tx;
        m->s.rx_bytes += direct + relayed;
        m->s.relayed_in_bytes += relayed;
        return pathsel_tick(&m->ps, m->now, &m->s);
}

/* What pathmgr does with an action: the endpoint follows. */
static enum pathsel_action step_apply(struct sim *m, uint64_t tx, uint64_t direct, uint64_t relayed) {
        enum pathsel_action a = step(m, tx, direct, relayed);
        if (a == PATHSEL_POINT_DIRECT)
                m->s.endpoint = PATHSEL_EP_DIRECT;
        else if (a == PATHSEL_POINT_RELAY)
                m->s.endpoint = PATHSEL_EP_RELAY;
        else if (a == PATHSEL_ADOPT)
                m->s.endpoint = PATHSEL_EP_DIRECT;
        return a;
}

/* Blocks the direct path of a direct peer under traffic; returns the ticks it took. */
static int fall_back(struct sim *m) {
        for (int i = 1; i <= 10; i++)
                if (step_apply(m, 100, 0, 0) == PATHSEL_POINT_RELAY)
                        return i;
        fail_msg("never fell back to DERP");
        return -1;
}

static void test_start(void **state) {
        struct sim m;

        sim_init(&m, true);
        assert_int_equal(m.ps.state, PATHSEL_DIRECT);
        assert_true(pathsel_is_direct(&m.ps));
        sim_init(&m, false);
        assert_int_equal(m.ps.state, PATHSEL_DERP);
        assert_false(pathsel_is_direct(&m.ps));
}

/* An unanswered tick on the direct path asks for a check; the answer keeps it direct. */
static void test_unanswered_direct_asks_for_a_check(void **state) {
        struct sim m;

        sim_init(&m, true);
        assert_int_equal(step_apply(&m, 100, 50, 0), PATHSEL_KEEP);
        assert_false(pathsel_wants_check(&m.ps));
        /* A one-way flow: our packets, nothing back... */
        assert_int_equal(step_apply(&m, 100, 0, 0), PATHSEL_KEEP);
        assert_true(pathsel_wants_check(&m.ps));
        /* ...until the check's answer, which is direct bytes like any other. */
        for (int i = 0; i < 20; i++) {
                assert_int_equal(step_apply(&m, 100, i % 2 ? 60 : 0, 0), PATHSEL_KEEP);
                assert_int_equal(pathsel_wants_check(&m.ps), i % 2 == 0);
        }
        assert_int_equal(m.ps.state, PATHSEL_DIRECT);
        /* No answer to the checks either: the silence rule still ends the direct path, and
         * on DERP nothing asks for checks. */
        assert_int_equal(fall_back(&m), 4);      /* the first unanswered tick, then 3 s */
        assert_false(pathsel_wants_check(&m.ps));
        for (int i = 0; i < 5; i++) {
                step_apply(&m, 100, 0, 100);
                assert_false(pathsel_wants_check(&m.ps));
        }
}

static void test_direct_stays_direct(void **state) {
        struct sim m;

        sim_init(&m, true);
        for (int i = 0; i < 100; i++)
                assert_int_equal(step(&m, 100, 100, 0), PATHSEL_KEEP);
        /* Idle: nothing sent, nothing to decide. */
        for (int i = 0; i < 100; i++)
                assert_int_equal(step(&m, 0, 0, 0), PATHSEL_KEEP);
        /* A lull in the answers shorter than the silence rule. */
        assert_int_equal(step(&m, 100, 0, 0), PATHSEL_KEEP);
        assert_int_equal(step(&m, 100, 0, 0), PATHSEL_KEEP);
        assert_int_equal(step(&m, 100, 50, 0), PATHSEL_KEEP);
        assert_true(pathsel_is_direct(&m.ps));
}

static void test_silence_falls_back(void **state) {
        struct sim m;

        sim_init(&m, true);
        assert_int_equal(step(&m, 100, 100, 0), PATHSEL_KEEP);
        /* The first tick that sees unanswered tx starts the clock; SILENCE later: DERP. */
        int ticks = fall_back(&m);
        assert_int_equal(ticks, (int) (PATHMGR_DIRECT_SILENCE_USEC / SEC) + 1);
        assert_int_equal(m.ps.state, PATHSEL_DERP);
        assert_false(pathsel_is_direct(&m.ps));
        /* And stays there. */
        assert_int_equal(step(&m, 100, 0, 100), PATHSEL_KEEP);
}

static void test_relayed_answers_are_not_direct(void **state) {
        struct sim m;

        /* The peer answers, but only through DERP (the roam this causes is undone). */
        sim_init(&m, true);
        assert_int_equal(step(&m, 100, 0, 100), PATHSEL_KEEP);
        m.s.endpoint = PATHSEL_EP_RELAY;
        assert_int_equal(step_apply(&m, 100, 0, 100), PATHSEL_POINT_DIRECT);
        assert_int_equal(m.ps.state, PATHSEL_DIRECT);
        assert_int_equal(step_apply(&m, 100, 0, 100), PATHSEL_KEEP);
        assert_int_equal(step_apply(&m, 100, 0, 100), PATHSEL_KEEP);
        assert_int_equal(step_apply(&m, 100, 0, 100), PATHSEL_POINT_RELAY);
}

static void test_late_relayed_count_carried(void **state) {
        struct sim m;

        sim_init(&m, true);
        assert_int_equal(step(&m, 100, 100, 0), PATHSEL_KEEP);
        /* pathmgr wrote 200 relayed bytes that WireGuard counts only a tick later: that is
         * not a direct answer, so the silence clock (started at tick 2) keeps running. */
        m.s.relayed_in_bytes += 200;
        assert_int_equal(step(&m, 100, 0, 0), PATHSEL_KEEP);
        m.s.rx_bytes += 200;
        assert_int_equal(step(&m, 100, 0, 0), PATHSEL_KEEP);
        assert_int_equal(step(&m, 100, 0, 0), PATHSEL_KEEP);
        assert_int_equal(step(&m, 100, 0, 0), PATHSEL_POINT_RELAY);
}

static void test_relayed_garbage_does_not_hide_direct(void **state) {
        struct sim m;

        sim_init(&m, true);
        /* 500 relayed bytes WireGuard never counts (not authenticated). */
        m.s.relayed_in_bytes += 500;
        assert_int_equal(step(&m, 100, 0, 0), PATHSEL_KEEP);
        assert_int_equal(step(&m, 100, 0, 0), PATHSEL_KEEP);
        /* The shortfall is forgotten after a tick: direct bytes count again. */
        for (int i = 0; i < 10; i++)
                assert_int_equal(step(&m, 100, 100, 0), PATHSEL_KEEP);
        assert_true(pathsel_is_direct(&m.ps));
}

static void test_no_handshake(void **state) {
        struct sim m;

        /* Packets come in (the peer's initiations) but no handshake ever completes. */
        sim_init(&m, true);
        m.s.last_handshake_sec = 0;
        assert_int_equal(step(&m, 0, 0, 0), PATHSEL_KEEP);
        assert_int_equal(step(&m, 148, 92, 0), PATHSEL_KEEP);
        assert_int_equal(step(&m, 148, 92, 0), PATHSEL_KEEP);
        assert_int_equal(step(&m, 148, 92, 0), PATHSEL_KEEP);
        assert_int_equal(step(&m, 148, 92, 0), PATHSEL_POINT_RELAY);
}

static void test_probe_schedule_and_failure(void **state) {
        struct sim m;

        sim_init(&m, true);
        fall_back(&m);
        uint64_t derp_at = m.now;
        /* Traffic through DERP; the probe comes PROBE_USEC later (no jitter here). */
        enum pathsel_action a;
        while ((a = step_apply(&m, 100, 0, 100)) == PATHSEL_KEEP)
                assert_true(m.now - derp_at < PATHMGR_PROBE_USEC);
        assert_int_equal(a, PATHSEL_POINT_DIRECT);
        assert_int_equal(m.now - derp_at, PATHMGR_PROBE_USEC);
        assert_int_equal(m.ps.state, PATHSEL_PROBING);
        assert_false(pathsel_is_direct(&m.ps));
        /* Direct is still dead: one tick of our packets down it with nothing direct back
         * ends the probe. The peer's relayed packets had already roamed WireGuard back. */
        m.s.endpoint = PATHSEL_EP_RELAY;
        assert_int_equal(step_apply(&m, 100, 0, 100), PATHSEL_KEEP);
        assert_int_equal(m.ps.state, PATHSEL_DERP);
        /* The same when only we send: the probe costs one tick, not the silence window. */
        m.ps.next_probe = m.now;
        m.ps.probe_failures--;
        assert_int_equal(step_apply(&m, 100, 0, 0), PATHSEL_POINT_DIRECT);
        assert_int_equal(step_apply(&m, 100, 0, 0), PATHSEL_POINT_RELAY);
        assert_int_equal(m.ps.state, PATHSEL_DERP);
        /* Every failed probe doubles the wait for the next, up to the maximum. */
        uint64_t expect = 2 * PATHMGR_PROBE_USEC;
        for (int k = 0; k < 6; k++) {
                uint64_t failed_at = m.now;
                while ((a = step_apply(&m, 100, 0, 100)) == PATHSEL_KEEP)
                        ;
                assert_int_equal(a, PATHSEL_POINT_DIRECT);
                assert_int_equal(m.now - failed_at, expect);
                assert_int_equal(step_apply(&m, 100, 0, 0), PATHSEL_POINT_RELAY);
                expect = expect * 2 > PATHSEL_PROBE_MAX_USEC ? PATHSEL_PROBE_MAX_USEC : expect * 2;
        }
        /* Direct again (the peer's probe reached us) resets the wait. */
        m.s.endpoint = PATHSEL_EP_DIRECT;
        assert_int_equal(step_apply(&m, 100, 100, 0), PATHSEL_KEEP);
        assert_true(pathsel_is_direct(&m.ps));
        assert_int_equal(m.ps.probe_failures, 0);
        fall_back(&m);
        derp_at = m.now;
        while (step_apply(&m, 100, 0, 100) == PATHSEL_KEEP)
                ;
        assert_int_equal(m.now - derp_at, PATHMGR_PROBE_USEC);
}

static void test_probe_jitter(void **state) {
        uint64_t seen[2];

        for (int k = 0; k < 2; k++) {
                struct pathsel ps;
                random_value = k == 0 ? 0 : 2 * PATHSEL_PROBE_JITTER_USEC;
                pathsel_init(&ps, false, 0, fake_random);
                ps.has_direct = true;   /* so that it probes */
                seen[k] = ps.next_probe;
        }
        assert_int_equal(seen[0], PATHMGR_PROBE_USEC - PATHSEL_PROBE_JITTER_USEC);
        assert_int_equal(seen[1], PATHMGR_PROBE_USEC + PATHSEL_PROBE_JITTER_USEC - 1);
}

static void test_probe_success(void **state) {
        struct sim m;

        sim_init(&m, true);
        fall_back(&m);
        while (step_apply(&m, 100, 0, 100) == PATHSEL_KEEP)
                ;
        assert_int_equal(m.ps.state, PATHSEL_PROBING);
        /* Answers arrive directly: direct again. */
        assert_int_equal(step_apply(&m, 100, 100, 0), PATHSEL_KEEP);
        assert_int_equal(m.ps.state, PATHSEL_DIRECT);
        assert_true(pathsel_is_direct(&m.ps));
}

static void test_probe_success_then_roamed_back(void **state) {
        struct sim m;

        sim_init(&m, true);
        fall_back(&m);
        while (step_apply(&m, 100, 0, 100) == PATHSEL_KEEP)
                ;
        /* Direct answers, but a relayed packet still in flight roamed WireGuard back. */
        m.s.endpoint = PATHSEL_EP_RELAY;
        assert_int_equal(step_apply(&m, 100, 100, 30), PATHSEL_POINT_DIRECT);
        assert_true(pathsel_is_direct(&m.ps));
}

static void test_roam_to_direct_while_on_derp(void **state) {
        struct sim m;

        sim_init(&m, true);
        fall_back(&m);
        /* The peer's probe reached us: WireGuard roamed to the direct endpoint. */
        m.s.endpoint = PATHSEL_EP_DIRECT;
        assert_int_equal(step_apply(&m, 100, 100, 0), PATHSEL_KEEP);
        assert_true(pathsel_is_direct(&m.ps));
}

static void test_no_direct_endpoint(void **state) {
        struct sim m;

        sim_init(&m, false);
        /* Never probes: there is nothing to probe. */
        for (int i = 0; i < 60; i++)
                assert_int_equal(step_apply(&m, 100, 0, 100), PATHSEL_KEEP);
        /* Until the peer reaches us directly from some address: adopted. */
        m.s.endpoint = PATHSEL_EP_OTHER;
        assert_int_equal(step(&m, 100, 100, 0), PATHSEL_ADOPT);
        assert_true(pathsel_is_direct(&m.ps));
        assert_true(m.ps.has_direct);
}

static void test_direct_roams_elsewhere(void **state) {
        struct sim m;

        sim_init(&m, true);
        m.s.endpoint = PATHSEL_EP_OTHER;   /* the peer's NAT mapping changed */
        assert_int_equal(step(&m, 100, 100, 0), PATHSEL_ADOPT);
        assert_true(pathsel_is_direct(&m.ps));
}

static void test_failed_action_is_repeated(void **state) {
        struct sim m;

        sim_init(&m, true);
        /* The first sample has nothing to compare with; the next three are silent. */
        for (int i = 0; i < 4; i++)
                assert_int_equal(step(&m, 100, 0, 0), PATHSEL_KEEP);
        assert_int_equal(step(&m, 100, 0, 0), PATHSEL_POINT_RELAY);
        pathsel_failed(&m.ps);   /* wg_set failed: the endpoint is still the direct one */
        assert_int_equal(step(&m, 100, 0, 0), PATHSEL_POINT_RELAY);
        assert_int_equal(m.ps.state, PATHSEL_DERP);
        m.s.endpoint = PATHSEL_EP_RELAY;
        assert_int_equal(step(&m, 100, 0, 100), PATHSEL_KEEP);
}

static void test_counters_restart(void **state) {
        struct sim m;

        sim_init(&m, true);
        assert_int_equal(step(&m, 1000, 1000, 0), PATHSEL_KEEP);
        /* The peer was re-created: its counters start again from zero. */
        m.s.tx_bytes = 10;
        m.s.rx_bytes = 10;
        assert_int_equal(step(&m, 0, 0, 0), PATHSEL_KEEP);
        for (int i = 0; i < 10; i++)
                assert_int_equal(step(&m, 100, 100, 0), PATHSEL_KEEP);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_start),
                cmocka_unit_test(test_direct_stays_direct),
                cmocka_unit_test(test_unanswered_direct_asks_for_a_check),
                cmocka_unit_test(test_silence_falls_back),
                cmocka_unit_test(test_relayed_answers_are_not_direct),
                cmocka_unit_test(test_late_relayed_count_carried),
                cmocka_unit_test(test_relayed_garbage_does_not_hide_direct),
                cmocka_unit_test(test_no_handshake),
                cmocka_unit_test(test_probe_schedule_and_failure),
                cmocka_unit_test(test_probe_jitter),
                cmocka_unit_test(test_probe_success),
                cmocka_unit_test(test_probe_success_then_roamed_back),
                cmocka_unit_test(test_roam_to_direct_while_on_derp),
                cmocka_unit_test(test_no_direct_endpoint),
                cmocka_unit_test(test_direct_roams_elsewhere),
                cmocka_unit_test(test_failed_action_is_repeated),
                cmocka_unit_test(test_counters_restart),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
