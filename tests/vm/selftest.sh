#!/bin/bash
# tests/vm/selftest.sh — checks the vm-run guest can do kernel WireGuard: two network
# namespaces joined by a veth pair (10.99.0.0/24), a wg interface in each (10.98.0.1/24 and
# 10.98.0.2/24), a ping through the tunnel and a completed handshake. Uses only ip, wg and
# ping (busybox ping if iputils is absent). Runs INSIDE the VM:
#
#   tests/vm/vm-run -t 120 -- tests/vm/selftest.sh
#
# Exits 0 on success, non-zero with a message on failure. Touches nothing outside the
# namespaces it creates (and removes).
set -euo pipefail

fail() { echo "selftest: FAIL: $*" >&2; exit 1; }
step() { echo "selftest: $*"; }

[ "$(id -u)" = 0 ] || fail "must run as root (inside tests/vm/vm-run)"
for t in ip wg; do command -v $t >/dev/null || fail "$t not found"; done
if command -v ping >/dev/null; then ping=(ping); elif command -v busybox >/dev/null; then ping=(busybox ping)
else fail "no ping (iputils-ping or busybox)"; fi
[ -d /sys/module/wireguard ] || modprobe wireguard 2>/dev/null || fail "no wireguard module"

a=vmst-a-$$ b=vmst-b-$$
tmp=$(mktemp -d)
cleanup() { ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

step "kernel $(uname -r), wireguard module $(cat /sys/module/wireguard/version 2>/dev/null || echo '?')"
ip netns add "$a"
ip netns add "$b"
for n in "$a" "$b"; do ip -n "$n" link set lo up; done
ip link add veth-a netns "$a" type veth peer name veth-b netns "$b"
ip -n "$a" addr add 10.99.0.1/24 dev veth-a
ip -n "$b" addr add 10.99.0.2/24 dev veth-b
ip -n "$a" link set veth-a up
ip -n "$b" link set veth-b up

umask 077
for n in a b; do wg genkey > "$tmp/$n.key"; wg pubkey < "$tmp/$n.key" > "$tmp/$n.pub"; done
# Created with -n, so each wg device's UDP socket lives in its own namespace.
ip -n "$a" link add wg0 type wireguard
ip -n "$b" link add wg0 type wireguard
ip netns exec "$a" wg set wg0 listen-port 51820 private-key "$tmp/a.key" \
  peer "$(cat "$tmp/b.pub")" allowed-ips 10.98.0.2/32 endpoint 10.99.0.2:51820
ip netns exec "$b" wg set wg0 listen-port 51820 private-key "$tmp/b.key" \
  peer "$(cat "$tmp/a.pub")" allowed-ips 10.98.0.1/32 endpoint 10.99.0.1:51820
ip -n "$a" addr add 10.98.0.1/24 dev wg0
ip -n "$b" addr add 10.98.0.2/24 dev wg0
ip -n "$a" link set wg0 up
ip -n "$b" link set wg0 up

step "ping 10.99.0.2 over veth"
ip netns exec "$a" timeout 10 "${ping[@]}" -c 1 -W 2 10.99.0.2 >/dev/null || fail "no ping over the veth pair"

step "ping 10.98.0.2 through the tunnel"
ok=
for _ in 1 2 3 4 5; do   # the first packet waits for the handshake; allow a few tries
  if ip netns exec "$a" timeout 10 "${ping[@]}" -c 3 -W 2 10.98.0.2; then ok=1; break; fi
  sleep 1
done
[ -n "$ok" ] || fail "no ping through the WireGuard tunnel"

hs=$(ip netns exec "$a" wg show wg0 latest-handshakes | awk '{ print $2 }')
[ -n "$hs" ] && [ "$hs" -gt 0 ] || fail "wg show reports no handshake"
rx=$(ip netns exec "$b" wg show wg0 transfer | awk '{ print $2 }')
[ "${rx:-0}" -gt 0 ] || fail "peer b received no bytes"

ip netns exec "$a" wg show wg0
step "handshake at $(date -d "@$hs" '+%H:%M:%S' 2>/dev/null || echo "$hs"), peer b received $rx bytes"
step "PASS"
