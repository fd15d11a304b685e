/* SPDX-License-Identifier: MIT */
/* Standalone configuration (agent/config): codervpnd.conf(5), CODERVPND_*, key files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "macro.h"

#define K1 "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define K2 "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
#define K3 "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="
/* Stands for a private key pasted where it does not belong; must never be echoed. */
#define SECRET "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MDA="
#define SECRET_BAD "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MDA"   /* 43 chars: invalid */

static const char full[] =
        "# A full example\n"
        "[Interface]\n"
        "Name = wgtest1\n"
        "PrivateKeyFile = /etc/codervpnd/key\n"
        "ListenPort = 51820\n"
        "Address = fd7a:115c:a1e0::1/128, 100.64.0.1/32\n"
        "Address = 10.1.2.3\n"
        "MTU = 1420\n"
        "WireGuard = userspace\n"
        "FirewallMark = 0x1d4\n"
        "\n"
        "; DNS for the peers\n"
        "[DNS]\n"
        "Mode = resolvconf\n"
        "Address = fd60:627a:a42b::53\n"
        "Domain = coder, Example.COM.\n"
        "\n"
        "[DERP]\n"
        "URL = https://coder.example.com/derp   # trailing comment\n"
        "HomeRegion = 999\n"
        "ForceWebSocket = yes\n"
        "CAFile = /etc/ssl/certs/ca.pem\n"
        "\n"
        "[Peer]\n"
        "PublicKey = " K1 "\n"
        "AllowedIPs = fd7a:115c:a1e0::2/128,100.64.0.2/32\n"
        "AllowedIPs = 10.0.0.0/8\n"
        "Endpoint = 192.0.2.1:51820\n"
        "DERPRegion = 1\n"
        "PersistentKeepalive = 25\n"
        "Name = dev.main.me.coder, dev.coder\n"
        "Workspace = dev#1\n"
        "Agent = main\n"
        "WorkspaceID = 6BA7B810-9DAD-11D1-80B4-00C04FD430C8\n"
        "AgentID = 6ba7b811-9dad-11d1-80b4-00c04fd430c8\n"
        "\n"
        "[ peer ]\n"
        "publickey=" K2 "\r\n"
        "AllowedIPs = fd7a:115c:a1e0::3\n"
        "Endpoint = [2001:db8::1]:443\n"
        "PersistentKeepalive = off\n";

static int parse(const char *text, char *const *envp, struct config **c, char *err) {
        return config_parse_buffer(text, text ? strlen(text) : 0, text ? "t.conf" : NULL, envp, c, err,
                                   CONFIG_ERROR_MAX);
}

static void assert_prefix(const struct net_prefix *p, const char *want) {
        char buf[INET6_ADDRSTRLEN + 5];
        net_prefix_format(p, buf, sizeof(buf));
        assert_string_equal(buf, want);
}

static void assert_aip(const struct wg_allowedip *a, const char *addr, unsigned cidr) {
        char buf[INET6_ADDRSTRLEN];
        assert_non_null(inet_ntop(a->family, &a->ip6, buf, sizeof(buf)));
        assert_string_equal(buf, addr);
        assert_int_equal(a->cidr, cidr);
}

static void assert_key(const uint8_t *key, const char *b64) {
        char s[45];
        config_key_to_base64(key, s);
        assert_string_equal(s, b64);
}

static void test_full(void **state) {
        _cleanup_config_ struct config *c = NULL;
        char err[CONFIG_ERROR_MAX], addr[INET6_ADDRSTRLEN];

        assert_int_equal(parse(full, NULL, &c, err), 0);
        assert_string_equal(err, "");
        assert_string_equal(c->ifname, "wgtest1");
        assert_string_equal(c->private_key_file, "/etc/codervpnd/key");
        assert_int_equal(c->listen_port, 51820);
        assert_int_equal(c->n_addrs, 3);
        assert_prefix(&c->addrs[0], "fd7a:115c:a1e0::1/128");
        assert_prefix(&c->addrs[1], "100.64.0.1/32");
        assert_prefix(&c->addrs[2], "10.1.2.3/32");
        assert_int_equal(c->mtu, 1420);
        assert_int_equal(c->wg_mode, WG_MODE_USERSPACE);
        assert_int_equal(c->fwmark, 0x1d4);

        assert_int_equal(c->dns_mode, CONFIG_DNS_RESOLVCONF);
        assert_int_equal(c->n_dns_addrs, 1);
        assert_prefix(&c->dns_addrs[0], "fd60:627a:a42b::53/128");
        assert_int_equal(c->n_dns_domains, 2);
        assert_string_equal(c->dns_domains[0], "coder");
        assert_string_equal(c->dns_domains[1], "example.com");

        assert_null(c->derp_map_file);
        assert_string_equal(c->derp_url, "https://coder.example.com/derp");
        assert_int_equal(c->derp_home_region, 999);
        assert_true(c->derp_force_websocket);
        assert_string_equal(c->derp_ca_file, "/etc/ssl/certs/ca.pem");

        assert_int_equal(c->n_peers, 2);
        const struct config_peer *p = &c->peers[0];
        assert_key(p->public_key, K1);
        assert_int_equal(p->n_allowed_ips, 3);
        assert_aip(&p->allowed_ips[0], "fd7a:115c:a1e0::2", 128);
        assert_aip(&p->allowed_ips[1], "100.64.0.2", 32);
        assert_aip(&p->allowed_ips[2], "10.0.0.0", 8);
        assert_int_equal(p->endpoint.sa.sa_family, AF_INET);
        assert_int_equal(ntohs(p->endpoint.in.sin_port), 51820);
        assert_string_equal(inet_ntop(AF_INET, &p->endpoint.in.sin_addr, addr, sizeof(addr)), "192.0.2.1");
        assert_int_equal(p->derp_region, 1);
        assert_int_equal(p->persistent_keepalive, 25);
        assert_int_equal(p->n_names, 2);
        assert_string_equal(p->names[0], "dev.main.me.coder");
        assert_string_equal(p->names[1], "dev.coder");
        assert_string_equal(p->workspace, "dev#1");     /* '#' without whitespace before it stays */
        assert_string_equal(p->agent, "main");
        assert_string_equal(p->workspace_id, "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
        assert_string_equal(p->agent_id, "6ba7b811-9dad-11d1-80b4-00c04fd430c8");

        p = &c->peers[1];
        assert_key(p->public_key, K2);
        assert_int_equal(p->n_allowed_ips, 1);
        assert_aip(&p->allowed_ips[0], "fd7a:115c:a1e0::3", 128);
        assert_int_equal(p->endpoint.sa.sa_family, AF_INET6);
        assert_int_equal(ntohs(p->endpoint.in6.sin6_port), 443);
        assert_string_equal(inet_ntop(AF_INET6, &p->endpoint.in6.sin6_addr, addr, sizeof(addr)), "2001:db8::1");
        assert_int_equal(p->derp_region, 0);
        assert_int_equal(p->persistent_keepalive, 0);
        assert_int_equal(p->n_names, 0);
        assert_null(p->workspace);
        assert_null(p->agent);
        assert_null(p->workspace_id);
        assert_null(p->agent_id);

        uint8_t k[WG_KEY_LEN];
        assert_int_equal(config_key_from_base64(K2, k), 0);
        assert_ptr_equal(config_find_peer(c, k), &c->peers[1]);
        assert_int_equal(config_key_from_base64(K3, k), 0);
        assert_null(config_find_peer(c, k));
}

static void assert_defaults(const struct config *c) {
        assert_string_equal(c->ifname, CONFIG_DEFAULT_IFNAME);
        assert_string_equal(c->ifname, "coder0");
        assert_string_equal(c->private_key_file, "/var/lib/codervpnd/private.key");
        assert_int_equal(c->listen_port, 0);
        assert_int_equal(c->n_addrs, 0);
        assert_int_equal(c->mtu, 1280);
        assert_int_equal(c->wg_mode, WG_MODE_AUTO);
        assert_int_equal(c->fwmark, 0);
        assert_int_equal(c->dns_mode, CONFIG_DNS_AUTO);
        assert_int_equal(c->n_dns_addrs, 0);
        assert_int_equal(c->n_dns_domains, 0);
        assert_null(c->derp_map_file);
        assert_null(c->derp_url);
        assert_int_equal(c->derp_home_region, 0);
        assert_false(c->derp_force_websocket);
        assert_null(c->derp_ca_file);
        assert_int_equal(c->n_peers, 0);
}

static void test_defaults(void **state) {
        char *env[] = { "HOME=/root", "CODERVPN_SOCKET=/x", "CODERVPND_TEST_FOO=1", "CODERVPND_VM_KERNEL=x",
                        "CODERVPNDX=1", NULL };
        char err[CONFIG_ERROR_MAX];
        struct config *c = NULL;

        assert_int_equal(parse("", NULL, &c, err), 0);
        assert_defaults(c);
        c = config_free(c);
        assert_int_equal(parse(NULL, NULL, &c, err), 0);
        assert_defaults(c);
        c = config_free(c);
        /* Comments, blank lines, empty sections, a BOM; other programs' variables are not ours. */
        assert_int_equal(parse("\xef\xbb\xbf# x\n\n  ; y\n[Interface]\n[DNS]\n\t[DERP]\n", env, &c, err), 0);
        assert_defaults(c);
        config_free(c);
}

struct error_case {
        const char *text;
        const char *error;
};

static const struct error_case file_errors[] = {
        { "Name = x\n", "t.conf:1: key before any section; expected a [Section] header first" },
        { "[Interface\n", "t.conf:1: section header without ']'; expected [Interface], [DNS], [DERP] or [Peer]" },
        { "\n[Wireguard]\n", "t.conf:2: unknown section [Wireguard]; expected [Interface], [DNS], [DERP] or [Peer]" },
        { "[Interface]\nPrivateKey = " SECRET "\n",
          "t.conf:2: unknown key PrivateKey in [Interface]; expected one of Name, PrivateKeyFile, ListenPort, "
          "Address, MTU, WireGuard, FirewallMark" },
        { "[DERP]\nMapfile\n", "t.conf:2: not a Key = Value line; expected Key = Value, a [Section] header or a "
          "comment" },
        { "[Interface]\nMTU =\n", "t.conf:2: MTU has no value; expected a value, or no MTU line for the default" },
        { "[Interface]\nMTU = 1280\nMTU = 1400\n",
          "t.conf:3: MTU is already set on line 2; expected it once" },
        { "[Interface]\nMTU = 1280\n[Interface]\nmtu = 1400\n",
          "t.conf:4: MTU is already set on line 2; expected it once" },
        { "[Interface]\nName = 0123456789abcdef\n",
          "t.conf:2: invalid Name \"0123456789abcdef\"; expected a Linux interface name: 1 to 15 characters, no "
          "'/', ':' or whitespace" },
        { "[Interface]\nName = a/b\n",
          "t.conf:2: invalid Name \"a/b\"; expected a Linux interface name: 1 to 15 characters, no '/', ':' or "
          "whitespace" },
        { "[Interface]\nName = a b\n",
          "t.conf:2: invalid Name \"a b\"; expected a Linux interface name: 1 to 15 characters, no '/', ':' or "
          "whitespace" },
        { "[Interface]\nPrivateKeyFile = key\n",
          "t.conf:2: invalid PrivateKeyFile \"key\"; expected an absolute path" },
        { "[Interface]\nListenPort = 65536\n",
          "t.conf:2: invalid ListenPort \"65536\"; expected a port from 0 to 65535 (0: any)" },
        { "[Interface]\nListenPort = -1\n",
          "t.conf:2: invalid ListenPort \"-1\"; expected a port from 0 to 65535 (0: any)" },
        { "[Interface]\nListenPort = 1 2\n",
          "t.conf:2: invalid ListenPort \"1 2\"; expected a port from 0 to 65535 (0: any)" },
        { "[Interface]\nListenPort = 99999999999999999999999\n",
          "t.conf:2: invalid ListenPort \"99999999999999999999999\"; expected a port from 0 to 65535 (0: any)" },
        { "[Interface]\nAddress = 10.0.0.1/33\n",
          "t.conf:2: invalid Address \"10.0.0.1/33\"; expected an IPv4 or IPv6 address, optionally with "
          "/prefixlength" },
        { "[Interface]\nAddress = 10.0.0.1,,10.0.0.2\n",
          "t.conf:2: Address has an empty entry; expected a comma-separated list" },
        { "[Interface]\nAddress = 10.0.0.1,\n",
          "t.conf:2: Address has an empty entry; expected a comma-separated list" },
        { "[Interface]\nMTU = 575\n", "t.conf:2: invalid MTU \"575\"; expected a number from 576 to 65535" },
        { "[Interface]\nMTU = 65536\n", "t.conf:2: invalid MTU \"65536\"; expected a number from 576 to 65535" },
        { "[Interface]\nWireGuard = wg\n",
          "t.conf:2: invalid WireGuard \"wg\"; expected auto, kernel or userspace" },
        { "[Interface]\nFirewallMark = 0x100000000\n",
          "t.conf:2: invalid FirewallMark \"0x100000000\"; expected a 32-bit number, decimal or 0x hex, or off" },
        { "[Interface]\nFirewallMark = 0x\n",
          "t.conf:2: invalid FirewallMark \"0x\"; expected a 32-bit number, decimal or 0x hex, or off" },
        { "[DNS]\nMode = systemd\n",
          "t.conf:2: invalid Mode \"systemd\"; expected auto, resolved, resolvconf, file or off" },
        { "[DNS]\nAddress = fd60::53/64\n",
          "t.conf:2: invalid Address \"fd60::53/64\"; expected an IPv4 or IPv6 address without a prefix length" },
        { "[DNS]\nDomain = ~coder\n",
          "t.conf:2: invalid Domain \"~coder\"; expected a DNS name (letters, digits, '-' and '_' in dot-separated "
          "labels of up to 63 bytes)" },
        { "[DNS]\nDomain = a..b\n",
          "t.conf:2: invalid Domain \"a..b\"; expected a DNS name (letters, digits, '-' and '_' in dot-separated "
          "labels of up to 63 bytes)" },
        /* One trailing dot is dropped; a second is not a name (found by fuzz_config). */
        { "[DNS]\nDomain = coder..\n",
          "t.conf:2: invalid Domain \"coder..\"; expected a DNS name (letters, digits, '-' and '_' in dot-separated "
          "labels of up to 63 bytes)" },
        { "[DERP]\nURL = ftp://x\n",
          "t.conf:2: invalid URL \"ftp://x\"; expected an http:// or https:// URL without spaces" },
        { "[DERP]\nURL = https://\n",
          "t.conf:2: invalid URL \"https://\"; expected an http:// or https:// URL without spaces" },
        { "[DERP]\nForceWebSocket = maybe\n",
          "t.conf:2: invalid ForceWebSocket \"maybe\"; expected yes or no (true/false, on/off, 1/0)" },
        { "[DERP]\nHomeRegion = 0\n",
          "t.conf:2: invalid HomeRegion \"0\"; expected a DERP region ID from 1 to 2147483647" },
        { "[DERP]\nHomeRegion = 2147483648\n",
          "t.conf:2: invalid HomeRegion \"2147483648\"; expected a DERP region ID from 1 to 2147483647" },
        { "[DERP]\nMapFile = /etc/derp.json\n\nURL = https://x/derp\n",
          "t.conf:4: URL and MapFile (t.conf:2) are mutually exclusive; expected one of them" },
        { "[Peer]\nAllowedIPs = 10.0.0.1\n",
          "t.conf:1: peer has no PublicKey; expected the peer's public key (base64)" },
        { "[Peer]\nPublicKey = " K1 "\n[DNS]\n",
          "t.conf:1: peer has no AllowedIPs; expected at least one address or prefix the peer uses" },
        { "[Peer]\nPublicKey = " K1 "\nAllowedIPs = ::/0\n[Peer]\nAllowedIPs = ::/0\n\nPublicKey = " K1 "\n",
          "t.conf:7: PublicKey is the same as the peer's on line 2; expected a different key for each [Peer]" },
        { "[Peer]\nPublicKey = " K1 "\nPublicKey = " K2 "\n",
          "t.conf:3: PublicKey is already set on line 2; expected it once per [Peer]" },
        { "[Peer]\nPublicKey = " SECRET_BAD "\n",
          "t.conf:2: invalid PublicKey; expected 44 characters of base64, as wg pubkey prints" },
        { "[Peer]\nPublicKey = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
          "t.conf:2: invalid PublicKey; expected a key that is not all zeros" },
        { "[Peer]\nAllowedIPs = 10.0.0.0/8x\n",
          "t.conf:2: invalid AllowedIPs \"10.0.0.0/8x\"; expected an IPv4 or IPv6 address or prefix such as "
          "10.0.0.0/8 or fd00::/64" },
        { "[Peer]\nPersistentKeepalive = 65536\n",
          "t.conf:2: invalid PersistentKeepalive \"65536\"; expected seconds from 0 to 65535, or off" },
        { "[Peer]\nWorkspaceID = 6ba7b810-9dad-11d1-80b4-00c04fd430c\n",
          "t.conf:2: invalid WorkspaceID \"6ba7b810-9dad-11d1-80b4-00c04fd430c\"; expected a UUID such as "
          "6ba7b810-9dad-11d1-80b4-00c04fd430c8" },
        { "[Peer]\nName = a b\n",
          "t.conf:2: invalid Name \"a b\"; expected a DNS name (letters, digits, '-' and '_' in dot-separated "
          "labels of up to 63 bytes)" },
        { "[Peer]\nFoo = 1\n",
          "t.conf:2: unknown key Foo in [Peer]; expected one of PublicKey, AllowedIPs, Endpoint, DERPRegion, "
          "PersistentKeepalive, Name, Workspace, Agent, WorkspaceID, AgentID" },
        { "[Interface]\nName = a\x01" "b\n", "t.conf:2: control character or NUL byte; expected plain text" },
};

static void test_file_errors(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(file_errors); i++) {
                const char *t = file_errors[i].text;
                struct config *c = (void *) 0x1;
                char err[CONFIG_ERROR_MAX];

                print_message("%s\n", file_errors[i].error);
                assert_int_equal(config_parse_buffer(t, strlen(t), "t.conf", NULL, &c, err, sizeof(err)), -EINVAL);
                assert_ptr_equal(c, (void *) 0x1);      /* untouched on error */
                assert_string_equal(err, file_errors[i].error);
                assert_null(strstr(err, SECRET_BAD));
        }
}

static void test_nul_byte(void **state) {
        static const char t[] = "[Interface]\n\nName = a\0b\n";
        char err[CONFIG_ERROR_MAX];
        struct config *c = NULL;

        assert_int_equal(config_parse_buffer(t, sizeof(t) - 1, "t.conf", NULL, &c, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "t.conf:3: control character or NUL byte; expected plain text");
}

static void test_endpoints(void **state) {
        static const char *const bad[] = { "1.2.3.4", "[::1]", ":51820", "1.2.3.4:0", "1.2.3.4:65536",
                                           "[::1]:0", "[::1]:65536", "::1:51820", "host.example:51820",
                                           "1.2.3.4:+1", "1.2.3.4:", "[::1:51820" };
        char text[256], want[CONFIG_ERROR_MAX], err[CONFIG_ERROR_MAX];
        struct config *c = NULL;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                snprintf(text, sizeof(text), "[Peer]\nPublicKey = %s\nAllowedIPs = ::/0\nEndpoint = %s\n", K1, bad[i]);
                snprintf(want, sizeof(want), "t.conf:4: invalid Endpoint \"%s\"; expected IPv4:port or [IPv6]:port "
                         "with a port from 1 to 65535 (no host names)", bad[i]);
                assert_int_equal(parse(text, NULL, &c, err), -EINVAL);
                assert_string_equal(err, want);
        }
        snprintf(text, sizeof(text), "[Peer]\nPublicKey = %s\nAllowedIPs = ::/0\nEndpoint = 1.2.3.4:65535\n", K1);
        assert_int_equal(parse(text, NULL, &c, err), 0);
        assert_int_equal(ntohs(c->peers[0].endpoint.in.sin_port), 65535);
        config_free(c);
}

static void test_values(void **state) {
        static const char *const yes[] = { "yes", "true", "1", "on", "YES", "True" };
        static const char *const no[] = { "no", "false", "0", "off", "NO", "Off" };
        char text[128], err[CONFIG_ERROR_MAX];
        struct config *c = NULL;

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                snprintf(text, sizeof(text), "[DERP]\nForceWebSocket = %s\n", yes[i]);
                assert_int_equal(parse(text, NULL, &c, err), 0);
                assert_true(c->derp_force_websocket);
                c = config_free(c);
                snprintf(text, sizeof(text), "[DERP]\nForceWebSocket = %s\n", no[i]);
                assert_int_equal(parse(text, NULL, &c, err), 0);
                assert_false(c->derp_force_websocket);
                c = config_free(c);
        }
        assert_int_equal(parse("[Interface]\nFirewallMark = 4294967295\nWireGuard = Kernel\nListenPort = 0\n"
                               "Name = a.b-c_d@e\n[DNS]\nmode = OFF\n",
                               NULL, &c, err), 0);
        assert_int_equal(c->fwmark, UINT32_MAX);
        assert_int_equal(c->wg_mode, WG_MODE_KERNEL);
        assert_int_equal(c->dns_mode, CONFIG_DNS_OFF);
        assert_string_equal(c->ifname, "a.b-c_d@e");
        c = config_free(c);
        assert_int_equal(parse("[Interface]\nFirewallMark = off\nMTU = 65535\nWireGuard = auto\n[DNS]\nMode = file\n[DERP]\nMapFile = /m.json\n",
                               NULL, &c, err), 0);
        assert_int_equal(c->fwmark, 0);
        assert_int_equal(c->mtu, 65535);
        assert_int_equal(c->wg_mode, WG_MODE_AUTO);
        assert_int_equal(c->dns_mode, CONFIG_DNS_FILE);
        assert_string_equal(c->derp_map_file, "/m.json");
        config_free(c);
}

static void test_limits(void **state) {
        char err[CONFIG_ERROR_MAX];
        struct config *c = NULL;
        size_t n = 4096 + 64;
        _cleanup_free_ char *text = malloc(n + 1);

        /* 4096 bytes of line are fine, 4097 are not. */
        memcpy(text, "[Interface]\n#", 13);
        memset(text + 13, 'x', 4095);
        strcpy(text + 13 + 4095, "\n");
        assert_int_equal(parse(text, NULL, &c, err), 0);
        c = config_free(c);
        memcpy(text + 13 + 4095, "x\n", 3);
        assert_int_equal(parse(text, NULL, &c, err), -EINVAL);
        assert_string_equal(err, "t.conf:2: line longer than 4096 bytes; expected shorter lines");

        /* CONFIG_PEERS_MAX peers, then one more. */
        size_t size = (CONFIG_PEERS_MAX + 1) * 120 + 1, len = 0, len_max = 0;
        _cleanup_free_ char *big = malloc(size);
        for (unsigned i = 0; i <= CONFIG_PEERS_MAX; i++) {
                uint8_t key[WG_KEY_LEN] = { 1 };
                char b64[45];
                memcpy(key + 1, &i, sizeof(i));
                config_key_to_base64(key, b64);
                len += (size_t) snprintf(big + len, size - len, "[Peer]\nPublicKey = %s\nAllowedIPs = 10.0.0.1\n", b64);
                if (i == CONFIG_PEERS_MAX - 1) {
                        assert_int_equal(config_parse_buffer(big, len, "t.conf", NULL, &c, err, sizeof(err)), 0);
                        assert_int_equal(c->n_peers, CONFIG_PEERS_MAX);
                        c = config_free(c);
                        len_max = len;
                }
        }
        assert_int_equal(config_parse_buffer(big, len, "t.conf", NULL, &c, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "t.conf:12289: more than 4096 [Peer] sections; expected at most that many");
        /* With the file full, the environment may replace a peer but not add one. */
        char *replace[] = { "CODERVPND_PEER9_PUBLICKEY=AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                            "CODERVPND_PEER9_ALLOWEDIPS=10.9.9.9", NULL };
        assert_int_equal(config_parse_buffer(big, len_max, "t.conf", replace, &c, err, sizeof(err)), 0);
        assert_int_equal(c->n_peers, CONFIG_PEERS_MAX);
        assert_aip(&c->peers[0].allowed_ips[0], "10.9.9.9", 32);
        c = config_free(c);
        char *add[] = { "CODERVPND_PEER9_PUBLICKEY=" K3, "CODERVPND_PEER9_ALLOWEDIPS=10.9.9.9", NULL };
        assert_int_equal(config_parse_buffer(big, len_max, "t.conf", add, &c, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "CODERVPND_PEER9: more than 4096 peers with the file's; expected at most that many");

        /* A buffer over 4 MiB is refused before it is read. */
        _cleanup_free_ char *huge = calloc(1, (4u << 20) + 1);
        memset(huge, '\n', (4u << 20) + 1);
        assert_int_equal(config_parse_buffer(huge, (4u << 20) + 1, "t.conf", NULL, &c, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "t.conf: larger than 4 MiB; expected a smaller file");
        assert_int_equal(config_parse_buffer(huge, 4u << 20, "t.conf", NULL, &c, err, sizeof(err)), 0);
        config_free(c);

        /* A too small error buffer truncates; none at all is fine. */
        char small[8];
        assert_int_equal(config_parse_buffer("x", 1, "t.conf", NULL, &c, small, sizeof(small)), -EINVAL);
        assert_string_equal(small, "t.conf:");
        assert_int_equal(config_parse_buffer("x", 1, "t.conf", NULL, &c, NULL, 0), -EINVAL);
}

static void test_env_only(void **state) {
        char *env[] = {
                "PATH=/usr/bin",
                "CODERVPND_INTERFACE_NAME=ctr0",
                "CODERVPND_INTERFACE_LISTENPORT=41641",
                "CODERVPND_INTERFACE_ADDRESS=fd7a:115c:a1e0::9/128, 100.64.0.9",
                "CODERVPND_INTERFACE_PRIVATEKEYFILE=/run/secrets/wg.key",
                "CODERVPND_DNS_MODE=off",
                "CODERVPND_DNS_DOMAIN=coder",
                "CODERVPND_DERP_URL=https://coder.example.com/derp",
                "CODERVPND_PEER1_PUBLICKEY=" K2,
                "CODERVPND_PEER1_ALLOWEDIPS=fd7a:115c:a1e0::2",
                "CODERVPND_PEER0_PUBLICKEY=" K1,
                "CODERVPND_PEER0_ALLOWEDIPS=fd7a:115c:a1e0::1,10.0.0.0/8",
                "CODERVPND_PEER0_NAME=a.coder,b.coder",
                "CODERVPND_PEER0_ENDPOINT= 192.0.2.1:51820 ",
                "CODERVPND_PEER0_DERPREGION=999",
                NULL,
        };
        _cleanup_config_ struct config *c = NULL;
        char err[CONFIG_ERROR_MAX];

        assert_int_equal(config_load(NULL, env, &c, err, sizeof(err)), 0);
        assert_string_equal(err, "");
        assert_string_equal(c->ifname, "ctr0");
        assert_int_equal(c->listen_port, 41641);
        assert_int_equal(c->n_addrs, 2);
        assert_prefix(&c->addrs[1], "100.64.0.9/32");
        assert_string_equal(c->private_key_file, "/run/secrets/wg.key");
        assert_int_equal(c->dns_mode, CONFIG_DNS_OFF);
        assert_int_equal(c->n_dns_domains, 1);
        assert_string_equal(c->derp_url, "https://coder.example.com/derp");
        assert_int_equal(c->mtu, 1280);
        /* In N order, whatever the order of the environment. */
        assert_int_equal(c->n_peers, 2);
        assert_key(c->peers[0].public_key, K1);
        assert_int_equal(c->peers[0].n_allowed_ips, 2);
        assert_aip(&c->peers[0].allowed_ips[1], "10.0.0.0", 8);
        assert_int_equal(c->peers[0].n_names, 2);
        assert_string_equal(c->peers[0].names[1], "b.coder");
        assert_int_equal(c->peers[0].endpoint.sa.sa_family, AF_INET);
        assert_int_equal(c->peers[0].derp_region, 999);
        assert_key(c->peers[1].public_key, K2);
        assert_int_equal(c->peers[1].n_allowed_ips, 1);
}

static void test_env_overrides(void **state) {
        static const char file[] =
                "[Interface]\nName = file0\nAddress = 10.0.0.1\nAddress = 10.0.0.2\nMTU = 1400\n"
                "[DERP]\nMapFile = /etc/map.json\n"
                "[Peer]\nPublicKey = " K1 "\nAllowedIPs = 10.1.0.0/16\nName = old.coder\n"
                "[Peer]\nPublicKey = " K2 "\nAllowedIPs = 10.2.0.0/16\n";
        char *env[] = {
                "CODERVPND_INTERFACE_NAME=env0",
                "CODERVPND_INTERFACE_ADDRESS=10.9.9.9",         /* replaces both of the file's */
                "CODERVPND_INTERFACE_MTU=",                     /* empty: back to the default */
                "CODERVPND_DERP_MAPFILE=",
                "CODERVPND_DERP_URL=https://d.example/derp",
                "CODERVPND_PEER0_PUBLICKEY=" K1,                /* replaces the file's K1 peer */
                "CODERVPND_PEER0_ALLOWEDIPS=10.8.0.0/16",
                "CODERVPND_PEER7_PUBLICKEY=" K3,                /* added */
                "CODERVPND_PEER7_ALLOWEDIPS=10.3.0.0/16",
                NULL,
        };
        _cleanup_config_ struct config *c = NULL;
        char err[CONFIG_ERROR_MAX];

        assert_int_equal(parse(file, env, &c, err), 0);
        assert_string_equal(c->ifname, "env0");
        assert_int_equal(c->n_addrs, 1);
        assert_prefix(&c->addrs[0], "10.9.9.9/32");
        assert_int_equal(c->mtu, 1280);
        assert_null(c->derp_map_file);
        assert_string_equal(c->derp_url, "https://d.example/derp");
        assert_int_equal(c->n_peers, 3);
        assert_key(c->peers[0].public_key, K1);
        assert_int_equal(c->peers[0].n_allowed_ips, 1);
        assert_aip(&c->peers[0].allowed_ips[0], "10.8.0.0", 16);
        assert_int_equal(c->peers[0].n_names, 0);        /* replaced whole, not merged */
        assert_key(c->peers[1].public_key, K2);
        assert_aip(&c->peers[1].allowed_ips[0], "10.2.0.0", 16);
        assert_key(c->peers[2].public_key, K3);
}

static const struct error_case env_errors[] = {
        { "CODERVPND_FOO=1", "CODERVPND_FOO: unknown variable; expected CODERVPND_<SECTION>_<KEY> with SECTION "
          "one of INTERFACE, DNS, DERP or PEER<N>" },
        { "CODERVPND_WIREGUARD_MODE=1", "CODERVPND_WIREGUARD_MODE: unknown variable; expected "
          "CODERVPND_<SECTION>_<KEY> with SECTION one of INTERFACE, DNS, DERP or PEER<N> (N from 0 to 4095)" },
        { "CODERVPND_PEER_PUBLICKEY=" K1, "CODERVPND_PEER_PUBLICKEY: unknown variable; expected "
          "CODERVPND_<SECTION>_<KEY> with SECTION one of INTERFACE, DNS, DERP or PEER<N> (N from 0 to 4095)" },
        { "CODERVPND_PEER4096_PUBLICKEY=" K1, "CODERVPND_PEER4096_PUBLICKEY: unknown variable; expected "
          "CODERVPND_<SECTION>_<KEY> with SECTION one of INTERFACE, DNS, DERP or PEER<N> (N from 0 to 4095)" },
        { "CODERVPND_PEER01_PUBLICKEY=" K1, "CODERVPND_PEER01_PUBLICKEY: unknown variable; expected "
          "CODERVPND_<SECTION>_<KEY> with SECTION one of INTERFACE, DNS, DERP or PEER<N> (N from 0 to 4095)" },
        { "CODERVPND_INTERFACE_LISTEN_PORT=1", "CODERVPND_INTERFACE_LISTEN_PORT: unknown variable; expected KEY "
          "one of NAME, PRIVATEKEYFILE, LISTENPORT, ADDRESS, MTU, WIREGUARD, FIREWALLMARK" },
        { "CODERVPND_INTERFACE_PRIVATEKEY=" SECRET, "CODERVPND_INTERFACE_PRIVATEKEY: unknown variable; expected "
          "KEY one of NAME, PRIVATEKEYFILE, LISTENPORT, ADDRESS, MTU, WIREGUARD, FIREWALLMARK" },
        { "CODERVPND_INTERFACE_LISTENPORT=0x10",
          "CODERVPND_INTERFACE_LISTENPORT: invalid ListenPort \"0x10\"; expected a port from 0 to 65535 (0: any)" },
        { "CODERVPND_DNS_ADDRESS=fd60::53,", "CODERVPND_DNS_ADDRESS: Address has an empty entry; expected a "
          "comma-separated list" },
        { "CODERVPND_PEER3_PUBLICKEY=" SECRET_BAD,
          "CODERVPND_PEER3_PUBLICKEY: invalid PublicKey; expected 44 characters of base64, as wg pubkey prints" },
        { "CODERVPND_PEER3_ALLOWEDIPS=::/0", "CODERVPND_PEER3: peer has no PublicKey; expected the peer's public "
          "key (base64)" },
        { "CODERVPND_PEER3_PUBLICKEY=" K1, "CODERVPND_PEER3: peer has no AllowedIPs; expected at least one "
          "address or prefix the peer uses" },
        { "CODERVPND_PEER2_ENDPOINT=[::1]", "CODERVPND_PEER2_ENDPOINT: invalid Endpoint \"[::1]\"; expected "
          "IPv4:port or [IPv6]:port with a port from 1 to 65535 (no host names)" },
        { "CODERVPND_INTERFACE_NAME=a\tb", "CODERVPND_INTERFACE_NAME: invalid Name \"a\tb\"; expected a Linux "
          "interface name: 1 to 15 characters, no '/', ':' or whitespace" },
        { "CODERVPND_INTERFACE_NAME=a\nb", "CODERVPND_INTERFACE_NAME: control character in the value; expected "
          "plain text" },
};

static void test_env_errors(void **state) {
        char err[CONFIG_ERROR_MAX];
        struct config *c = NULL;

        for (size_t i = 0; i < ELEMENTSOF(env_errors); i++) {
                char *env[] = { "CODERVPND_TEST_X=1", (char *) env_errors[i].text, NULL };
                print_message("%s\n", env_errors[i].error);
                assert_int_equal(config_load(NULL, env, &c, err, sizeof(err)), -EINVAL);
                assert_string_equal(err, env_errors[i].error);
                assert_null(strstr(err, SECRET));
                assert_null(strstr(err, SECRET_BAD));
        }

        /* Two environment peers with one key; the file and the environment against each other. */
        char *dup[] = { "CODERVPND_PEER0_PUBLICKEY=" K1, "CODERVPND_PEER0_ALLOWEDIPS=::/0",
                        "CODERVPND_PEER5_PUBLICKEY=" K1, "CODERVPND_PEER5_ALLOWEDIPS=::/0", NULL };
        assert_int_equal(config_load(NULL, dup, &c, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "CODERVPND_PEER5: PublicKey is the same as CODERVPND_PEER0's; expected a "
                            "different key for each peer");
        char *url[] = { "CODERVPND_DERP_URL=https://x/derp", NULL };
        assert_int_equal(parse("[DERP]\nMapFile = /m.json\n", url, &c, err), -EINVAL);
        assert_string_equal(err, "CODERVPND_DERP_URL: URL and MapFile (t.conf:2) are mutually exclusive; "
                            "expected one of them");
        char *map[] = { "CODERVPND_DERP_MAPFILE=/m.json", NULL };
        assert_int_equal(parse("[DERP]\nURL = https://x/derp\n", map, &c, err), -EINVAL);
        assert_string_equal(err, "t.conf:2: URL and MapFile (CODERVPND_DERP_MAPFILE) are mutually exclusive; "
                            "expected one of them");
}

/* However a key is misplaced, no message repeats it. */
static void test_no_secret_in_errors(void **state) {
        static const char *const texts[] = {
                "[Interface]\n" SECRET "\n",
                "[Interface]\n" SECRET_BAD "\n",
                "[Interface]\nPrivateKey = " SECRET "\n",
                "[" SECRET "]\n",
                "[Interface]\n" SECRET " = 1\n",
                "[Peer]\nPublicKey = " SECRET_BAD "\n",
                "[Peer]\nPublicKey = " SECRET "x\n",
                "[Peer]\nPublicKey = " SECRET "\nPublicKey = " SECRET "\n",
                "PrivateKey = " SECRET "\n",
        };
        char err[CONFIG_ERROR_MAX];
        struct config *c = NULL;

        for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
                assert_int_equal(parse(texts[i], NULL, &c, err), -EINVAL);
                print_message("%s\n", err);
                assert_true(strncmp(err, "t.conf:", 7) == 0);
                assert_null(strstr(err, SECRET_BAD));
                assert_null(strstr(err, "c2VjcmV0"));
        }
}

static void test_peer_equal(void **state) {
        static const char text[] =
                "[Peer]\nPublicKey = " K1 "\nAllowedIPs = 10.0.0.1, fd00::1\nEndpoint = 1.2.3.4:5\nDERPRegion = 2\n"
                "PersistentKeepalive = 25\nName = a.coder\nWorkspace = w\nAgent = a\n"
                "WorkspaceID = 6ba7b810-9dad-11d1-80b4-00c04fd430c8\nAgentID = 6ba7b810-9dad-11d1-80b4-00c04fd430c9\n";
        static const char *const changes[] = {
                "PublicKey = " K2 "\n", "AllowedIPs = 10.0.0.2, fd00::1\n", "AllowedIPs = 10.0.0.1\n",
                "AllowedIPs = 10.0.0.1/31, fd00::1\n", "Endpoint = 1.2.3.4:6\n", "Endpoint = [::1]:5\n",
                "DERPRegion = 3\n", "PersistentKeepalive = 26\n", "Name = b.coder\n", "Name = a.coder,b.coder\n",
                "Workspace = x\n", "Agent = b\n", "WorkspaceID = 6ba7b810-9dad-11d1-80b4-00c04fd430c7\n",
                "AgentID = 6ba7b810-9dad-11d1-80b4-00c04fd430c7\n",
        };
        _cleanup_config_ struct config *a = NULL, *b = NULL;
        char err[CONFIG_ERROR_MAX];

        assert_int_equal(parse(text, NULL, &a, err), 0);
        assert_int_equal(parse(text, NULL, &b, err), 0);
        assert_true(config_peer_equal(&a->peers[0], &b->peers[0]));
        for (size_t i = 0; i < ELEMENTSOF(changes); i++) {
                _cleanup_config_ struct config *x = NULL;
                char t[1024];
                /* The changed key replaces the same key of the original peer. */
                const char *key_end = strchr(changes[i], '=');
                size_t klen = (size_t) (key_end - changes[i]);
                size_t n = 0;
                for (const char *l = text; *l;) {
                        const char *nl = strchr(l, '\n') + 1;
                        if (strncmp(l, changes[i], klen) == 0)
                                n += (size_t) snprintf(t + n, sizeof(t) - n, "%s", changes[i]);
                        else
                                n += (size_t) snprintf(t + n, sizeof(t) - n, "%.*s", (int) (nl - l), l);
                        l = nl;
                }
                assert_int_equal(parse(t, NULL, &x, err), 0);
                print_message("%s", changes[i]);
                assert_false(config_peer_equal(&a->peers[0], &x->peers[0]));
                assert_false(config_peer_equal(&x->peers[0], &a->peers[0]));
        }
        /* Unset against set. */
        _cleanup_config_ struct config *y = NULL;
        assert_int_equal(parse("[Peer]\nPublicKey = " K1 "\nAllowedIPs = 10.0.0.1, fd00::1\n", NULL, &y, err), 0);
        assert_false(config_peer_equal(&a->peers[0], &y->peers[0]));
        assert_true(config_peer_equal(&y->peers[0], &y->peers[0]));
}

/* ---- Files --------------------------------------------------------------------------- */

static char *make_tmpdir(void) {
        char *d = strdup("/tmp/test_config.XXXXXX");
        assert_non_null(d);
        assert_non_null(mkdtemp(d));
        return d;
}

static void rm_rf(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *e;
        char p[PATH_MAX];

        assert_non_null(d);
        while ((e = readdir(d))) {
                struct stat st;
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                        continue;
                snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
                assert_int_equal(lstat(p, &st), 0);
                if (S_ISDIR(st.st_mode))
                        rm_rf(p);
                else
                        assert_int_equal(unlink(p), 0);
        }
        closedir(d);
        assert_int_equal(rmdir(dir), 0);
}

static void write_file(const char *path, const char *data, size_t len, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, len), (ssize_t) len);
        assert_int_equal(fchmod(fd, mode), 0);
        close(fd);
}

static size_t count_entries(const char *dir) {
        DIR *d = opendir(dir);
        size_t n = 0;
        assert_non_null(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n - 2;
}

static void test_load_file(void **state) {
        _cleanup_free_ char *dir = make_tmpdir();
        char path[PATH_MAX], want[PATH_MAX + 128], err[CONFIG_ERROR_MAX];
        struct config *c = NULL;

        snprintf(path, sizeof(path), "%s/codervpnd.conf", dir);
        assert_int_equal(config_load(path, NULL, &c, err, sizeof(err)), -ENOENT);
        snprintf(want, sizeof(want), "%s: cannot open: No such file or directory; expected a readable "
                 "configuration file", path);
        assert_string_equal(err, want);

        write_file(path, full, strlen(full), 0644);
        assert_int_equal(config_load(path, NULL, &c, err, sizeof(err)), 0);
        assert_int_equal(c->n_peers, 2);
        c = config_free(c);

        write_file(path, "[Interface]\nMTU = 1\n", 20, 0644);
        assert_int_equal(config_load(path, NULL, &c, err, sizeof(err)), -EINVAL);
        snprintf(want, sizeof(want), "%s:2: invalid MTU \"1\"; expected a number from 576 to 65535", path);
        assert_string_equal(err, want);

        assert_int_equal(config_load(dir, NULL, &c, err, sizeof(err)), -EINVAL);
        snprintf(want, sizeof(want), "%s: not a regular file; expected a configuration file", dir);
        assert_string_equal(err, want);

        assert_int_equal(truncate(path, (4 << 20) + 1), 0);
        assert_int_equal(config_load(path, NULL, &c, err, sizeof(err)), -EINVAL);
        snprintf(want, sizeof(want), "%s: larger than 4 MiB; expected a smaller file", path);
        assert_string_equal(err, want);
        rm_rf(dir);
}

static void test_key_create(void **state) {
        _cleanup_free_ char *dir = make_tmpdir();
        char sub[256], path[PATH_MAX], err[CONFIG_ERROR_MAX], b64[45], file[64] = {};
        uint8_t key[WG_KEY_LEN], again[WG_KEY_LEN], k2[WG_KEY_LEN];
        struct stat st;

        snprintf(sub, sizeof(sub), "%s/state", dir);
        snprintf(path, sizeof(path), "%s/private.key", sub);
        assert_int_equal(config_load_private_key(path, false, key, err, sizeof(err)), -ENOENT);
        assert_int_equal(config_load_private_key(path, true, key, err, sizeof(err)), 0);
        assert_string_equal(err, "");
        assert_int_equal(stat(sub, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(st.st_size, 45);
        assert_int_equal(count_entries(sub), 1);        /* no temporary file left behind */

        /* The file holds the key as wg genkey writes it, clamped. */
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(read(fd, file, sizeof(file)), 45);
        close(fd);
        config_key_to_base64(key, b64);
        assert_memory_equal(file, b64, 44);
        assert_int_equal(file[44], '\n');
        assert_int_equal(key[0] & 7, 0);
        assert_int_equal(key[31] & 0xc0, 0x40);

        /* Loaded again, not replaced. */
        assert_int_equal(config_load_private_key(path, true, again, err, sizeof(err)), 0);
        assert_memory_equal(key, again, WG_KEY_LEN);

        /* Without a trailing newline too. */
        write_file(path, b64, 44, 0600);
        assert_int_equal(config_load_private_key(path, false, again, err, sizeof(err)), 0);
        assert_memory_equal(key, again, WG_KEY_LEN);

        /* A second key in a directory that exists. */
        snprintf(path, sizeof(path), "%s/other.key", sub);
        assert_int_equal(config_load_private_key(path, true, k2, err, sizeof(err)), 0);
        assert_memory_not_equal(key, k2, WG_KEY_LEN);

        /* A parent that is missing two levels up is not created. */
        snprintf(path, sizeof(path), "%s/a/b/private.key", dir);
        assert_int_equal(config_load_private_key(path, true, k2, err, sizeof(err)), -ENOENT);
        assert_non_null(strstr(err, "cannot create the key's directory"));
        rm_rf(dir);
}

static void test_key_refused(void **state) {
        _cleanup_free_ char *dir = make_tmpdir();
        char path[PATH_MAX], want[2 * PATH_MAX + 128], err[CONFIG_ERROR_MAX];
        uint8_t key[WG_KEY_LEN];

        snprintf(path, sizeof(path), "%s/private.key", dir);
        write_file(path, SECRET "\n", 45, 0644);
        assert_int_equal(config_load_private_key(path, true, key, err, sizeof(err)), -EPERM);
        snprintf(want, sizeof(want), "%s: private key is accessible by group or others (mode 0644); expected mode "
                 "0600: chmod 600 %s", path, path);
        assert_string_equal(err, want);
        assert_null(strstr(err, SECRET));
        write_file(path, SECRET "\n", 45, 0640);
        assert_int_equal(config_load_private_key(path, false, key, err, sizeof(err)), -EPERM);
        write_file(path, SECRET "\n", 45, 0604);
        assert_int_equal(config_load_private_key(path, false, key, err, sizeof(err)), -EPERM);

        /* Bad contents: never echoed. */
        static const char *const bad[] = { SECRET_BAD "\n", SECRET "\n\n", SECRET " \n", " " SECRET, "",
                                           SECRET SECRET, SECRET "\r\n" };
        snprintf(want, sizeof(want), "%s: not a private key; expected 44 characters of base64 on one line, as wg "
                 "genkey prints", path);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                write_file(path, bad[i], strlen(bad[i]), 0600);
                assert_int_equal(config_load_private_key(path, true, key, err, sizeof(err)), -EINVAL);
                assert_string_equal(err, want);
                assert_null(strstr(err, "c2VjcmV0"));
        }
        write_file(path, SECRET "\n", 45, 0400);
        assert_int_equal(config_load_private_key(path, false, key, err, sizeof(err)), 0);

        /* Not a regular file. */
        assert_int_equal(config_load_private_key(dir, true, key, err, sizeof(err)), -EINVAL);
        rm_rf(dir);
}

static void test_base64(void **state) {
        uint8_t key[WG_KEY_LEN], back[WG_KEY_LEN];
        char s[45];

        for (unsigned i = 0; i < 64; i++) {
                for (unsigned j = 0; j < WG_KEY_LEN; j++)
                        key[j] = (uint8_t) (i * 37 + j * 11);
                config_key_to_base64(key, s);
                assert_int_equal(strlen(s), 44);
                assert_int_equal(config_key_from_base64(s, back), 0);
                assert_memory_equal(key, back, WG_KEY_LEN);
        }
        assert_int_equal(config_key_from_base64(K1, back), 0);
        memset(key, 1, sizeof(key));
        assert_memory_equal(key, back, WG_KEY_LEN);
        assert_int_equal(config_key_from_base64(SECRET_BAD, back), -EINVAL);
        assert_int_equal(config_key_from_base64(K1 "=", back), -EINVAL);
        assert_int_equal(config_key_from_base64("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE-", back), -EINVAL);
        assert_int_equal(config_key_from_base64("", back), -EINVAL);
}

/* ---- The shipped documentation ------------------------------------------------------- */

static char *slurp(const char *path) {
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t size = 0;

        if (!f)
                return NULL;
        FILE *m = open_memstream(&buf, &size);
        assert_non_null(m);
        for (int ch; (ch = fgetc(f)) != EOF;)
                fputc(ch, m);
        fclose(f);
        fclose(m);
        return buf;
}

/* The example file and both examples of codervpnd.conf(5) parse (run from the source tree). */
static void test_docs(void **state) {
        _cleanup_free_ char *example = slurp("examples/codervpnd.conf"), *man = slurp("man/codervpnd.conf.5");
        char err[CONFIG_ERROR_MAX];
        struct config *c = NULL;

        if (!example || !man)
                skip();
        assert_int_equal(config_parse_buffer(example, strlen(example), "examples/codervpnd.conf", NULL, &c, err,
                                             sizeof(err)), 0);
        assert_int_equal(c->n_peers, 2);
        assert_int_equal(c->peers[1].n_allowed_ips, 2);
        c = config_free(c);

        /* The desktop example: the first .EX block after "A desktop host". */
        char *file = strstr(man, "A desktop host");
        assert_non_null(file);
        file = strstr(file, ".EX\n") + 4;
        *strstr(file, ".EE\n") = '\0';
        assert_int_equal(parse(file, NULL, &c, err), 0);
        assert_int_equal(c->n_peers, 1);
        assert_int_equal(c->dns_mode, CONFIG_DNS_RESOLVED);
        c = config_free(c);

        /* The container example: its -e arguments, roff escapes undone. */
        char *env[32], *rest = strstr(file + strlen(file) + 1, "docker run");
        size_t n = 0;
        assert_non_null(rest);
        for (char *e; (e = strstr(rest, "\\-e ")) && n + 1 < ELEMENTSOF(env); rest = e) {
                e += 4;
                env[n++] = e;
                e += strcspn(e, " \n");
                *e++ = '\0';
        }
        env[n] = NULL;
        assert_true(n >= 8);
        assert_int_equal(config_load(NULL, env, &c, err, sizeof(err)), 0);
        assert_int_equal(c->dns_mode, CONFIG_DNS_FILE);
        assert_int_equal(c->wg_mode, WG_MODE_USERSPACE);
        assert_string_equal(c->private_key_file, "/run/secrets/wg.key");
        assert_int_equal(c->n_peers, 1);
        config_free(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_file_errors),
                cmocka_unit_test(test_nul_byte),
                cmocka_unit_test(test_endpoints),
                cmocka_unit_test(test_values),
                cmocka_unit_test(test_limits),
                cmocka_unit_test(test_env_only),
                cmocka_unit_test(test_env_overrides),
                cmocka_unit_test(test_env_errors),
                cmocka_unit_test(test_no_secret_in_errors),
                cmocka_unit_test(test_peer_equal),
                cmocka_unit_test(test_load_file),
                cmocka_unit_test(test_key_create),
                cmocka_unit_test(test_key_refused),
                cmocka_unit_test(test_base64),
                cmocka_unit_test(test_docs),
        };
        umask(022);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
