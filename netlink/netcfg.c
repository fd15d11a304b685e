/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fib_rules.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netlink/addr.h>
#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/object.h>
#include <netlink/socket.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>

#include "macro.h"
#include "netcfg.h"

/*
 * Our routes carry RTPROT_STATIC. `ip route add` defaults to RTPROT_BOOT and
 * the kernel's own routes are RTPROT_KERNEL, and route deletion matches on the
 * protocol, so a delete from here never takes out a route someone else made.
 */
#define NETCFG_RTPROT RTPROT_STATIC

/*
 * Requests in flight at once in netcfg_route_add_many. The kernel drops an
 * ACK that does not fit our receive buffer (the default 208 KiB); 64 small
 * ACKs fit many times over while still saving most of the round trips.
 */
#define PIPELINE_WINDOW 64

/* A dump that raced with a change is retried this many times in all. */
#define DUMP_ATTEMPTS 3

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nl_sock *, nl_socket_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nl_msg *, nlmsg_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nl_cb *, nl_cb_put);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nl_addr *, nl_addr_put);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nl_object *, nl_object_put);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rtnl_link *, rtnl_link_put);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rtnl_addr *, rtnl_addr_put);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rtnl_route *, rtnl_route_put);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rtnl_rule *, rtnl_rule_put);

struct netcfg {
        struct nl_sock *sk;     /* NULL after a receive failure: reconnected on next use */
        uint32_t next_seq;
};

/*
 * libnl's errors, as -errno. The kernel's own answers never come through here
 * (exchange_run keeps their errno as is); these are libnl's local failures and
 * socket errors, which nl_syserr2nlerr folded, so each maps back to the errno
 * that most often produced it.
 */
static int nl_error_to_errno(int err) {
        switch (abs(err)) {
        case NLE_SUCCESS:       return 0;
        case NLE_INTR:          return -EINTR;
        case NLE_BAD_SOCK:      return -EBADF;
        case NLE_AGAIN:         return -EAGAIN;
        case NLE_NOMEM:         return -ENOMEM;
        case NLE_EXIST:         return -EEXIST;
        case NLE_INVAL:         return -EINVAL;
        case NLE_RANGE:         return -ERANGE;
        case NLE_MSGSIZE:       return -EMSGSIZE;
        case NLE_OPNOTSUPP:     return -EOPNOTSUPP;
        case NLE_AF_NOSUPPORT:  return -EAFNOSUPPORT;
        case NLE_OBJ_NOTFOUND:  return -ENOENT;
        case NLE_NOADDR:        return -EADDRNOTAVAIL;
        case NLE_BUSY:          return -EBUSY;
        case NLE_PROTO_MISMATCH: return -EPROTONOSUPPORT;
        case NLE_NOACCESS:      return -EACCES;
        case NLE_PERM:          return -EPERM;
        case NLE_NODEV:         return -ENODEV;
        case NLE_AF_MISMATCH:
        case NLE_MISSING_ATTR:
        case NLE_IMMUTABLE:     return -EINVAL;
        case NLE_MSG_OVERFLOW:  return -ENOBUFS;
        case NLE_DUMP_INTR:     return -EAGAIN;
        default:                return -EIO;
        }
}

/* Prefixes. */

static size_t family_addr_size(int family) {
        return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

static bool prefix_valid(const struct net_prefix *p) {
        size_t size = family_addr_size(p->family);
        return size > 0 && p->len <= 8 * size;
}

/* "24" after the slash: digits only, so "-1", "+8", " 8" and "" are refused. */
static int parse_prefixlen(const char *s, unsigned max, uint8_t *ret) {
        unsigned v = 0;
        size_t n = strlen(s);

        if (n == 0 || n > 3 || strspn(s, "0123456789") != n)
                return -EINVAL;
        for (; *s; s++)
                v = v * 10 + (unsigned) (*s - '0');
        if (v > max)
                return -EINVAL;
        *ret = (uint8_t) v;
        return 0;
}

int net_prefix_parse(struct net_prefix *ret, const char *s) {
        char addr[INET6_ADDRSTRLEN];
        struct net_prefix p = {};
        const char *slash;
        size_t n;

        if (!s)
                return -EINVAL;
        slash = strchr(s, '/');
        n = slash ? (size_t) (slash - s) : strlen(s);
        if (n == 0 || n >= sizeof(addr))
                return -EINVAL;
        memcpy(addr, s, n);
        addr[n] = '\0';

        if (inet_pton(AF_INET, addr, &p.in) == 1)
                p.family = AF_INET;
        else if (inet_pton(AF_INET6, addr, &p.in6) == 1)
                p.family = AF_INET6;
        else
                return -EINVAL;

        p.len = (uint8_t) (8 * family_addr_size(p.family));
        if (slash && parse_prefixlen(slash + 1, p.len, &p.len) < 0)
                return -EINVAL;
        *ret = p;
        return 0;
}

void net_prefix_format(const struct net_prefix *p, char *buf, size_t size) {
        char addr[INET6_ADDRSTRLEN];

        if (size == 0)
                return;
        if (!family_addr_size(p->family) || !inet_ntop(p->family, p->bytes, addr, sizeof(addr))) {
                snprintf(buf, size, "(invalid)");
                return;
        }
        snprintf(buf, size, "%s/%u", addr, p->len);
}

bool net_prefix_equal(const struct net_prefix *a, const struct net_prefix *b) {
        return a->family == b->family && a->len == b->len &&
               memcmp(a->bytes, b->bytes, family_addr_size(a->family)) == 0;
}

void net_prefix_mask(struct net_prefix *p) {
        unsigned len = p->len;

        /* Bytes past the family's address are zeroed too, so whole structs compare. */
        for (unsigned i = 0; i < sizeof(p->bytes); i++) {
                unsigned keep = len >= 8 * (i + 1) ? 8 : len > 8 * i ? len - 8 * i : 0;
                p->bytes[i] &= (uint8_t) (0xff00u >> keep);
        }
}

static int prefix_to_nl_addr(const struct net_prefix *p, struct nl_addr **ret) {
        struct nl_addr *a;

        if (!prefix_valid(p))
                return -EINVAL;
        a = nl_addr_build(p->family, p->bytes, family_addr_size(p->family));
        if (!a)
                return -ENOMEM;
        nl_addr_set_prefixlen(a, p->len);
        *ret = a;
        return 0;
}

/* An absent address (a default route's destination) reads as all zeroes. */
static int prefix_from_nl_addr(struct nl_addr *a, unsigned prefixlen, struct net_prefix *ret) {
        struct net_prefix p = { .family = (uint8_t) nl_addr_get_family(a) };
        size_t size = family_addr_size(p.family), len = nl_addr_get_len(a);

        if (size == 0 || len > size || prefixlen > 8 * size)
                return -EAFNOSUPPORT;
        memcpy(p.bytes, nl_addr_get_binary_addr(a), len);
        p.len = (uint8_t) prefixlen;
        *ret = p;
        return 0;
}

/* Growable arrays for the lists. */

struct vec {
        void *items;
        size_t n, allocated, item_size;
};

static void vec_free(struct vec *v) {
        free(v->items);
}

static int vec_push(struct vec *v, const void *item) {
        if (v->n == v->allocated) {
                size_t allocated = v->allocated ? 2 * v->allocated : 16;
                void *p = reallocarray(v->items, allocated, v->item_size);
                if (!p)
                        return -ENOMEM;
                v->items = p;
                v->allocated = allocated;
        }
        memcpy((uint8_t *) v->items + v->n * v->item_size, item, v->item_size);
        v->n++;
        return 0;
}

static void vec_take(struct vec *v, void *ret, size_t *n_ret) {
        *(void **) ret = TAKE_PTR(v->items);
        *n_ret = v->n;
        v->n = v->allocated = 0;
}

/* The socket and request/answer matching. */

static int socket_open(struct nl_sock **ret) {
        _cleanup_(nl_socket_freep) struct nl_sock *sk = nl_socket_alloc();
        int one = 1, r;

        if (!sk)
                return -ENOMEM;
        r = nl_connect(sk, NETLINK_ROUTE);
        if (r < 0)
                return nl_error_to_errno(r);
        /* Error answers then carry only the request's header, which is all we read. */
        (void) setsockopt(nl_socket_get_fd(sk), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
        *ret = TAKE_PTR(sk);
        return 0;
}

static int socket_ensure(struct netcfg *n) {
        return n->sk ? 0 : socket_open(&n->sk);
}

/* After a failed receive, answers may still be queued: only a new socket is known clean. */
static void socket_drop(struct netcfg *n) {
        nl_socket_freep(&n->sk);
        n->sk = NULL;
}

typedef int (*reply_fn)(struct nl_msg *msg, void *userdata);

enum { PENDING = 1 };

/*
 * Requests sent back to back, with consecutive sequence numbers from
 * first_seq, and what the kernel answered to each. Every answer (ACK, error
 * or end of dump) names its request by sequence number, so each result lands
 * on the request it belongs to whatever else arrives in between.
 */
struct exchange {
        uint32_t first_seq;
        size_t n_requests, n_answered;
        int *results;           /* one per request: PENDING, 0 or -errno */
        size_t n_seen;          /* messages read, ours or not */
        bool interrupted;       /* a dump saw the kernel's tables change */
        reply_fn on_reply;      /* data messages (dump entries, get replies) */
        void *userdata;
        int reply_error;        /* first failure of on_reply */
};

static void exchange_begin(struct netcfg *n, struct exchange *x, int *results) {
        /* libnl takes sequence number 0 as "pick one for me": never hand it out. */
        if (n->next_seq == 0 || n->next_seq > UINT32_MAX - PIPELINE_WINDOW)
                n->next_seq = 1;
        *x = (struct exchange) { .first_seq = n->next_seq, .results = results };
}

static long exchange_index(const struct exchange *x, uint32_t seq) {
        uint32_t i = seq - x->first_seq;
        return i < x->n_requests ? (long) i : -1;
}

static void exchange_answer(struct exchange *x, uint32_t seq, int error) {
        long i = exchange_index(x, seq);

        if (i < 0 || x->results[i] != PENDING)
                return;
        x->results[i] = error;
        x->n_answered++;
}

static int exchange_next(const struct exchange *x) {
        return x->n_answered == x->n_requests ? NL_STOP : NL_OK;
}

static int on_seq_check(struct nl_msg *msg, void *arg) {
        struct exchange *x = arg;

        x->n_seen++;
        return exchange_index(x, nlmsg_hdr(msg)->nlmsg_seq) < 0 ? NL_SKIP : NL_OK;
}

static int on_valid(struct nl_msg *msg, void *arg) {
        struct exchange *x = arg;

        if (x->on_reply && x->reply_error == 0) {
                int r = x->on_reply(msg, x->userdata);
                if (r < 0)
                        x->reply_error = r;
        }
        return NL_OK;
}

static int on_ack(struct nl_msg *msg, void *arg) {
        struct exchange *x = arg;

        exchange_answer(x, nlmsg_hdr(msg)->nlmsg_seq, 0);
        return exchange_next(x);
}

/* NL_SKIP: NL_STOP would make libnl turn the errno into its own lossy code. */
static int on_error(_unused_ struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg) {
        exchange_answer(arg, e->msg.nlmsg_seq, e->error);
        return NL_SKIP;
}

/* The end of a dump carries the dump's own errno, usually 0. */
static int on_finish(struct nl_msg *msg, void *arg) {
        struct exchange *x = arg;
        struct nlmsghdr *hdr = nlmsg_hdr(msg);
        int error = 0;

        if (nlmsg_datalen(hdr) >= (int) sizeof(error))
                memcpy(&error, nlmsg_data(hdr), sizeof(error));
        exchange_answer(x, hdr->nlmsg_seq, error < 0 ? error : 0);
        return exchange_next(x);
}

static int on_dump_intr(_unused_ struct nl_msg *msg, void *arg) {
        struct exchange *x = arg;

        x->interrupted = true;
        return NL_OK;
}

static int exchange_send(struct netcfg *n, struct exchange *x, struct nl_msg *msg) {
        int r;

        nlmsg_hdr(msg)->nlmsg_seq = x->first_seq + (uint32_t) x->n_requests;
        r = nl_send_auto(n->sk, msg);
        if (r < 0)
                return nl_error_to_errno(r);
        x->results[x->n_requests++] = PENDING;
        n->next_seq = x->first_seq + (uint32_t) x->n_requests;
        return 0;
}

static int exchange_callbacks(struct exchange *x, struct nl_cb **ret) {
        _cleanup_(nl_cb_putp) struct nl_cb *cb = nl_cb_alloc(NL_CB_DEFAULT);

        if (!cb)
                return -ENOMEM;
        nl_cb_set(cb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, on_seq_check, x);
        nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_valid, x);
        nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_ack, x);
        nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, on_finish, x);
        nl_cb_set(cb, NL_CB_DUMP_INTR, NL_CB_CUSTOM, on_dump_intr, x);
        nl_cb_err(cb, NL_CB_CUSTOM, on_error, x);
        *ret = TAKE_PTR(cb);
        return 0;
}

/* Reads until every request sent has its answer. */
static int exchange_run(struct netcfg *n, struct exchange *x) {
        _cleanup_(nl_cb_putp) struct nl_cb *cb = NULL;
        int r = exchange_callbacks(x, &cb);

        while (r >= 0 && x->n_answered < x->n_requests) {
                size_t seen = x->n_seen;

                r = nl_recvmsgs(n->sk, cb);
                if (r < 0)
                        r = nl_error_to_errno(r);
                else if (x->n_seen == seen)
                        r = -EIO;       /* nothing to read on a blocking socket: it is broken */
        }
        if (r < 0)
                socket_drop(n);
        return r < 0 ? r : 0;
}

/* One request and its answer; data replies go to @on_reply. */
static int request(struct netcfg *n, struct nl_msg *msg, reply_fn on_reply, void *userdata) {
        struct exchange x;
        int result, r;

        r = socket_ensure(n);
        if (r < 0)
                return r;
        exchange_begin(n, &x, &result);
        x.on_reply = on_reply;
        x.userdata = userdata;
        r = exchange_send(n, &x, msg);
        if (r < 0)
                return r;
        r = exchange_run(n, &x);
        if (r < 0)
                return r;
        if (result < 0)
                return result;
        if (x.reply_error < 0)
                return x.reply_error;
        return x.interrupted ? -EAGAIN : 0;
}

/* Dumps @type into @v (through @collect), again if the kernel's tables changed meanwhile. */
static int dump(struct netcfg *n, int type, void *hdr, size_t hdr_len,
                struct vec *v, reply_fn collect, void *userdata) {
        for (unsigned attempt = 1;; attempt++) {
                _cleanup_(nlmsg_freep) struct nl_msg *msg = nlmsg_alloc_simple(type, NLM_F_DUMP);
                int r;

                if (!msg || nlmsg_append(msg, hdr, hdr_len, NLMSG_ALIGNTO) < 0)
                        return -ENOMEM;
                v->n = 0;
                r = request(n, msg, collect, userdata);
                if (r != -EAGAIN || attempt == DUMP_ATTEMPTS)
                        return r;
        }
}

static void keep_first_object(struct nl_object *obj, void *arg) {
        struct nl_object **ret = arg;

        if (!*ret) {
                nl_object_get(obj);
                *ret = obj;
        }
}

/* A reply as the libnl object its type parses to (a route, an address, a link). */
static int parse_object(struct nl_msg *msg, struct nl_object **ret) {
        struct nl_object *obj = NULL;
        int r = nl_msg_parse(msg, keep_first_object, &obj);

        if (r < 0) {
                nl_object_putp(&obj);
                return nl_error_to_errno(r);
        }
        if (!obj)
                return -EBADMSG;
        *ret = obj;
        return 0;
}

int netcfg_open(struct netcfg **ret) {
        _cleanup_free_ struct netcfg *n = calloc(1, sizeof(*n));
        int r;

        if (!n)
                return -ENOMEM;
        r = socket_open(&n->sk);
        if (r < 0)
                return r;
        n->next_seq = 1;
        *ret = TAKE_PTR(n);
        return 0;
}

void netcfg_close(struct netcfg *n) {
        if (!n)
                return;
        socket_drop(n);
        free(n);
}

/* Links. */

static bool ifname_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;

        /* What the kernel's dev_valid_name() accepts. */
        return n > 0 && n < IFNAMSIZ && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
               strpbrk(s, "/: \t\n\v\f\r") == NULL;
}

static int keep_link(struct nl_msg *msg, void *userdata) {
        struct nl_object **ret = userdata;

        if (nlmsg_hdr(msg)->nlmsg_type != RTM_NEWLINK || *ret)
                return 0;
        return parse_object(msg, ret);
}

static int link_get(struct netcfg *n, int ifindex, const char *ifname, struct rtnl_link **ret) {
        _cleanup_(nlmsg_freep) struct nl_msg *msg = NULL;
        _cleanup_(nl_object_putp) struct nl_object *link = NULL;
        int r;

        r = rtnl_link_build_get_request(ifindex, ifname, &msg);
        if (r < 0)
                return nl_error_to_errno(r);
        r = request(n, msg, keep_link, &link);
        if (r < 0)
                return r;
        if (!link)
                return -ENODEV;
        *ret = (struct rtnl_link *) TAKE_PTR(link);
        return 0;
}

static int link_get_by_index(struct netcfg *n, int ifindex, struct rtnl_link **ret) {
        /* libnl asserts on a request naming no link at all. */
        if (ifindex <= 0)
                return -EINVAL;
        return link_get(n, ifindex, NULL, ret);
}

/* Applies @changes to link @ifindex; only the attributes set in @changes move. */
static int link_change(struct netcfg *n, int ifindex, struct rtnl_link *changes) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *orig = NULL;
        _cleanup_(nlmsg_freep) struct nl_msg *msg = NULL;
        int r;

        if (ifindex <= 0)
                return -EINVAL;
        orig = rtnl_link_alloc();
        if (!orig)
                return -ENOMEM;
        rtnl_link_set_ifindex(orig, ifindex);
        r = rtnl_link_build_change_request(orig, changes, 0, &msg);
        if (r < 0)
                return nl_error_to_errno(r);
        return request(n, msg, NULL, NULL);
}

int netcfg_link_index(struct netcfg *n, const char *ifname) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
        int r;

        if (!ifname_valid(ifname))
                return -EINVAL;
        r = link_get(n, 0, ifname, &link);
        if (r < 0)
                return r;
        r = rtnl_link_get_ifindex(link);
        return r > 0 ? r : -ENODEV;
}

int netcfg_link_set_mtu(struct netcfg *n, int ifindex, uint32_t mtu) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *changes = rtnl_link_alloc();

        if (!changes)
                return -ENOMEM;
        rtnl_link_set_mtu(changes, mtu);
        return link_change(n, ifindex, changes);
}

int netcfg_link_get_mtu(struct netcfg *n, int ifindex, uint32_t *ret) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
        int r = link_get_by_index(n, ifindex, &link);

        if (r < 0)
                return r;
        *ret = rtnl_link_get_mtu(link);
        return 0;
}

int netcfg_link_set_up(struct netcfg *n, int ifindex, bool up) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *changes = rtnl_link_alloc();

        if (!changes)
                return -ENOMEM;
        /* Both set the flag into the change mask, so the kernel touches IFF_UP alone. */
        if (up)
                rtnl_link_set_flags(changes, IFF_UP);
        else
                rtnl_link_unset_flags(changes, IFF_UP);
        return link_change(n, ifindex, changes);
}

int netcfg_link_is_up(struct netcfg *n, int ifindex) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
        int r = link_get_by_index(n, ifindex, &link);

        if (r < 0)
                return r;
        return !!(rtnl_link_get_flags(link) & IFF_UP);
}

int netcfg_link_delete(struct netcfg *n, int ifindex) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
        _cleanup_(nlmsg_freep) struct nl_msg *msg = NULL;
        int r;

        if (ifindex <= 0)
                return -EINVAL;
        link = rtnl_link_alloc();
        if (!link)
                return -ENOMEM;
        rtnl_link_set_ifindex(link, ifindex);
        r = rtnl_link_build_delete_request(link, &msg);
        if (r < 0)
                return nl_error_to_errno(r);
        return request(n, msg, NULL, NULL);
}

/* Addresses. */

struct addr_filter {
        struct vec *v;
        int ifindex;
};

static bool addr_listed(struct rtnl_addr *a, int ifindex) {
        struct nl_addr *local = rtnl_addr_get_local(a);
        int family = rtnl_addr_get_family(a);

        if (rtnl_addr_get_ifindex(a) != ifindex || !local)
                return false;
        if (family != AF_INET && family != AF_INET6)
                return false;
        if (!(rtnl_addr_get_flags(a) & IFA_F_PERMANENT))
                return false;
        /* The kernel makes and owns the link-local address; callers manage the rest. */
        return !(family == AF_INET6 && nl_addr_get_len(local) == 16 &&
                 IN6_IS_ADDR_LINKLOCAL((const struct in6_addr *) nl_addr_get_binary_addr(local)));
}

static int collect_addr(struct nl_msg *msg, void *userdata) {
        struct addr_filter *f = userdata;
        _cleanup_(nl_object_putp) struct nl_object *obj = NULL;
        struct rtnl_addr *a;
        struct net_prefix p;
        int r;

        if (nlmsg_hdr(msg)->nlmsg_type != RTM_NEWADDR)
                return 0;
        r = parse_object(msg, &obj);
        if (r < 0)
                return r;
        a = (struct rtnl_addr *) obj;
        if (!addr_listed(a, f->ifindex))
                return 0;
        r = prefix_from_nl_addr(rtnl_addr_get_local(a), (unsigned) rtnl_addr_get_prefixlen(a), &p);
        return r < 0 ? r : vec_push(f->v, &p);
}

int netcfg_addr_list(struct netcfg *n, int ifindex, struct net_prefix **ret, size_t *n_ret) {
        _cleanup_(vec_free) struct vec v = { .item_size = sizeof(struct net_prefix) };
        struct addr_filter f = { .v = &v, .ifindex = ifindex };
        struct ifaddrmsg hdr = { .ifa_family = AF_UNSPEC };
        int r;

        if (ifindex <= 0)
                return -EINVAL;
        r = dump(n, RTM_GETADDR, &hdr, sizeof(hdr), &v, collect_addr, &f);
        if (r < 0)
                return r;
        vec_take(&v, ret, n_ret);
        return 0;
}

static int addr_new(int ifindex, const struct net_prefix *p, struct rtnl_addr **ret) {
        _cleanup_(rtnl_addr_putp) struct rtnl_addr *a = NULL;
        _cleanup_(nl_addr_putp) struct nl_addr *local = NULL;
        int r;

        if (ifindex <= 0)
                return -EINVAL;
        r = prefix_to_nl_addr(p, &local);
        if (r < 0)
                return r;
        a = rtnl_addr_alloc();
        if (!a)
                return -ENOMEM;
        rtnl_addr_set_ifindex(a, ifindex);
        rtnl_addr_set_family(a, p->family);
        r = rtnl_addr_set_local(a, local);
        if (r < 0)
                return nl_error_to_errno(r);
        rtnl_addr_set_prefixlen(a, p->len);
        *ret = TAKE_PTR(a);
        return 0;
}

int netcfg_addr_add(struct netcfg *n, int ifindex, const struct net_prefix *p) {
        _cleanup_(rtnl_addr_putp) struct rtnl_addr *a = NULL;
        _cleanup_(nlmsg_freep) struct nl_msg *msg = NULL;
        int r = addr_new(ifindex, p, &a);

        if (r < 0)
                return r;
        r = rtnl_addr_build_add_request(a, NLM_F_EXCL, &msg);
        if (r < 0)
                return nl_error_to_errno(r);
        return request(n, msg, NULL, NULL);
}

int netcfg_addr_del(struct netcfg *n, int ifindex, const struct net_prefix *p) {
        _cleanup_(rtnl_addr_putp) struct rtnl_addr *a = NULL;
        _cleanup_(nlmsg_freep) struct nl_msg *msg = NULL;
        int r = addr_new(ifindex, p, &a);

        if (r < 0)
                return r;
        r = rtnl_addr_build_delete_request(a, 0, &msg);
        if (r < 0)
                return nl_error_to_errno(r);
        return request(n, msg, NULL, NULL);
}

/* Routes. */

static bool family_listed(int family, int wanted) {
        if (family != AF_INET && family != AF_INET6)
                return false;
        return wanted == AF_UNSPEC || family == wanted;
}

static int route_add_link(struct rtnl_route *route, int ifindex) {
        struct rtnl_nexthop *nh = rtnl_route_nh_alloc();

        if (!nh)
                return -ENOMEM;
        rtnl_route_nh_set_ifindex(nh, ifindex);
        rtnl_route_add_nexthop(route, nh);      /* the route owns it now */
        /* libnl would guess universe for IPv6; say it for both (IPv6 ignores it). */
        rtnl_route_set_scope(route, RT_SCOPE_LINK);
        return rtnl_route_set_type(route, RTN_UNICAST) < 0 ? -EINVAL : 0;
}

static int route_make_throw(struct rtnl_route *route) {
        /* Left unset, libnl would guess link scope for a route without a gateway. */
        rtnl_route_set_scope(route, RT_SCOPE_UNIVERSE);
        return rtnl_route_set_type(route, RTN_THROW) < 0 ? -EINVAL : 0;
}

static int route_new(const struct net_route *r, struct rtnl_route **ret) {
        _cleanup_(rtnl_route_putp) struct rtnl_route *route = NULL;
        _cleanup_(nl_addr_putp) struct nl_addr *dst = NULL;
        struct net_prefix p = r->dst;
        int k;

        if (r->table == RT_TABLE_UNSPEC)
                return -EINVAL;
        if (r->type == NET_ROUTE_UNICAST ? r->ifindex <= 0 : r->type != NET_ROUTE_THROW)
                return -EINVAL;
        net_prefix_mask(&p);
        k = prefix_to_nl_addr(&p, &dst);
        if (k < 0)
                return k;
        route = rtnl_route_alloc();
        if (!route)
                return -ENOMEM;
        if (rtnl_route_set_family(route, p.family) < 0 || rtnl_route_set_dst(route, dst) < 0)
                return -EINVAL;
        rtnl_route_set_table(route, r->table);
        rtnl_route_set_protocol(route, NETCFG_RTPROT);
        rtnl_route_set_priority(route, r->metric);
        k = r->type == NET_ROUTE_UNICAST ? route_add_link(route, r->ifindex) : route_make_throw(route);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(route);
        return 0;
}

static int route_msg(const struct net_route *r, bool add, struct nl_msg **ret) {
        _cleanup_(rtnl_route_putp) struct rtnl_route *route = NULL;
        int k = route_new(r, &route);

        if (k < 0)
                return k;
        k = add ? rtnl_route_build_add_request(route, NLM_F_EXCL, ret)
                : rtnl_route_build_del_request(route, 0, ret);
        return k < 0 ? nl_error_to_errno(k) : 0;
}

static bool route_uses_link(struct rtnl_route *route, int ifindex) {
        int n = rtnl_route_get_nnexthops(route);

        for (int i = 0; i < n; i++)
                if (rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(route, i)) == ifindex)
                        return true;
        return false;
}

struct route_filter {
        struct vec *v;
        int family;
        uint32_t table;
        int ifindex;
};

/* 1 if @route is one to list, converted into @ret; 0 if not. */
static int route_convert(struct rtnl_route *route, const struct route_filter *f, struct net_route *ret) {
        struct net_route out = { .table = rtnl_route_get_table(route), .metric = rtnl_route_get_priority(route) };
        uint8_t type = rtnl_route_get_type(route);
        int r;

        if (!family_listed(rtnl_route_get_family(route), f->family))
                return 0;
        if (f->table != RT_TABLE_UNSPEC && out.table != f->table)
                return 0;
        /* Other types (local, broadcast, blackhole, ...) are not ours to express. */
        if (type == RTN_UNICAST) {
                struct rtnl_nexthop *nh = rtnl_route_nexthop_n(route, 0);
                if (f->ifindex > 0 && !route_uses_link(route, f->ifindex))
                        return 0;
                out.type = NET_ROUTE_UNICAST;
                out.ifindex = f->ifindex > 0 ? f->ifindex : nh ? rtnl_route_nh_get_ifindex(nh) : 0;
        } else if (type == RTN_THROW) {
                /* A throw route has no link (IPv6 shows it on lo): never one link's route. */
                if (f->ifindex > 0)
                        return 0;
                out.type = NET_ROUTE_THROW;
        } else
                return 0;
        r = prefix_from_nl_addr(rtnl_route_get_dst(route), nl_addr_get_prefixlen(rtnl_route_get_dst(route)),
                                &out.dst);
        if (r < 0)
                return r;
        *ret = out;
        return 1;
}

static int collect_route(struct nl_msg *msg, void *userdata) {
        struct route_filter *f = userdata;
        _cleanup_(nl_object_putp) struct nl_object *obj = NULL;
        struct net_route route;
        int r;

        if (nlmsg_hdr(msg)->nlmsg_type != RTM_NEWROUTE)
                return 0;
        r = parse_object(msg, &obj);
        if (r < 0)
                return r;
        if (!rtnl_route_get_dst((struct rtnl_route *) obj))
                return 0;
        r = route_convert((struct rtnl_route *) obj, f, &route);
        return r <= 0 ? r : vec_push(f->v, &route);
}

int netcfg_route_list(struct netcfg *n, uint8_t family, uint32_t table, int ifindex,
                      struct net_route **ret, size_t *n_ret) {
        _cleanup_(vec_free) struct vec v = { .item_size = sizeof(struct net_route) };
        struct route_filter f = { .v = &v, .family = family, .table = table, .ifindex = ifindex };
        struct rtmsg hdr = { .rtm_family = family };
        int r;

        if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
                return -EAFNOSUPPORT;
        r = dump(n, RTM_GETROUTE, &hdr, sizeof(hdr), &v, collect_route, &f);
        if (r < 0)
                return r;
        vec_take(&v, ret, n_ret);
        return 0;
}

int netcfg_route_add(struct netcfg *n, const struct net_route *r) {
        _cleanup_(nlmsg_freep) struct nl_msg *msg = NULL;
        int k = route_msg(r, true, &msg);

        return k < 0 ? k : request(n, msg, NULL, NULL);
}

int netcfg_route_del(struct netcfg *n, const struct net_route *r) {
        _cleanup_(nlmsg_freep) struct nl_msg *msg = NULL;
        int k = route_msg(r, false, &msg);

        return k < 0 ? k : request(n, msg, NULL, NULL);
}

/* Sends one request per route, stopping at the first that cannot be built or sent. */
static int window_send(struct netcfg *n, struct exchange *x, const struct net_route *r, size_t count) {
        for (size_t i = 0; i < count; i++) {
                _cleanup_(nlmsg_freep) struct nl_msg *msg = NULL;
                int k = route_msg(&r[i], true, &msg);

                if (k >= 0)
                        k = exchange_send(n, x, msg);
                if (k < 0)
                        return k;
        }
        return 0;
}

/* Routes after a failure were already sent and may have gone in: take those back out. */
static void window_undo(struct netcfg *n, const struct net_route *r, const int *results, size_t from, size_t to) {
        for (size_t i = from; i < to; i++)
                if (results[i] == 0)
                        (void) netcfg_route_del(n, &r[i]);
}

/* Adds up to PIPELINE_WINDOW routes; *@added: how many from the start went in. */
static int window_add(struct netcfg *n, const struct net_route *r, size_t count, size_t *added) {
        int results[PIPELINE_WINDOW];
        struct exchange x;
        size_t ok = 0;
        int send_error, k;

        k = socket_ensure(n);
        if (k < 0)
                return k;
        exchange_begin(n, &x, results);
        send_error = window_send(n, &x, r, count);
        k = exchange_run(n, &x);
        while (ok < x.n_requests && results[ok] == 0)
                ok++;
        *added = ok;
        if (k < 0)
                return k;       /* answers lost with the socket: later routes' fate unknown */
        if (ok < x.n_requests) {
                window_undo(n, r, results, ok + 1, x.n_requests);
                return results[ok];
        }
        return send_error;
}

int netcfg_route_add_many(struct netcfg *n, const struct net_route *r, size_t count, size_t *done) {
        size_t total = 0;
        int k = 0;

        while (k >= 0 && total < count) {
                size_t added = 0, want = count - total < PIPELINE_WINDOW ? count - total : PIPELINE_WINDOW;

                k = window_add(n, r + total, want, &added);
                total += added;
        }
        if (done)
                *done = total;
        return k < 0 ? k : 0;
}

/* Policy rules. */

static int rule_msg_patch(struct nl_msg *msg, const struct net_rule *r) {
        struct fib_rule_hdr *frh = nlmsg_data(nlmsg_hdr(msg));

        /* libnl's rule object has neither; both go straight into its message. */
        if (r->invert)
                frh->flags |= FIB_RULE_INVERT;
        if (r->suppress_prefixlen >= 0 &&
            nla_put_u32(msg, FRA_SUPPRESS_PREFIXLEN, (uint32_t) r->suppress_prefixlen) < 0)
                return -ENOMEM;
        /* libnl truncates the table into the 8-bit header field; FRA_TABLE carries it whole. */
        if (r->table > 255)
                frh->table = RT_TABLE_UNSPEC;
        return 0;
}

static int rule_msg(const struct net_rule *r, bool add, struct nl_msg **ret) {
        _cleanup_(rtnl_rule_putp) struct rtnl_rule *rule = NULL;
        _cleanup_(nlmsg_freep) struct nl_msg *msg = NULL;
        int k;

        if (!family_listed(r->family, AF_UNSPEC) || r->table == RT_TABLE_UNSPEC)
                return -EINVAL;
        if (r->suppress_prefixlen < -1 || r->suppress_prefixlen > (int) (8 * family_addr_size(r->family)))
                return -EINVAL;
        rule = rtnl_rule_alloc();
        if (!rule)
                return -ENOMEM;
        rtnl_rule_set_family(rule, r->family);
        rtnl_rule_set_prio(rule, r->priority);
        rtnl_rule_set_table(rule, r->table);
        rtnl_rule_set_action(rule, FR_ACT_TO_TBL);
        if (r->fwmask != 0) {
                rtnl_rule_set_mark(rule, r->fwmark);
                rtnl_rule_set_mask(rule, r->fwmask);
        }
        k = add ? rtnl_rule_build_add_request(rule, NLM_F_EXCL, &msg)
                : rtnl_rule_build_delete_request(rule, 0, &msg);
        if (k < 0)
                return nl_error_to_errno(k);
        k = rule_msg_patch(msg, r);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(msg);
        return 0;
}

/* Selectors struct net_rule cannot carry: a rule using one is left out of lists. */
static const int rule_selectors[] = {
        FRA_SRC, FRA_DST, FRA_IIFNAME, FRA_OIFNAME, FRA_GOTO, FRA_FLOW, FRA_TUN_ID,
        FRA_SUPPRESS_IFGROUP, FRA_L3MDEV, FRA_UID_RANGE, FRA_IP_PROTO, FRA_SPORT_RANGE,
        FRA_DPORT_RANGE,
};

static bool rule_expressible(const struct fib_rule_hdr *frh, struct nlattr **tb) {
        if (frh->action != FR_ACT_TO_TBL || frh->src_len || frh->dst_len || frh->tos)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(rule_selectors); i++)
                if (tb[rule_selectors[i]])
                        return false;
        return true;
}

static uint32_t attr_u32(struct nlattr **tb, int type, uint32_t absent) {
        return tb[type] ? nla_get_u32(tb[type]) : absent;
}

/*
 * Parsed here rather than through libnl's rule object, which drops the
 * invert flag and the suppress_prefixlength attribute.
 */
static int rule_from_msg(struct nl_msg *msg, struct net_rule *ret) {
        static const struct nla_policy policy[FRA_MAX + 1] = {
                [FRA_PRIORITY] = { .type = NLA_U32 },
                [FRA_TABLE] = { .type = NLA_U32 },
                [FRA_FWMARK] = { .type = NLA_U32 },
                [FRA_FWMASK] = { .type = NLA_U32 },
                [FRA_SUPPRESS_PREFIXLEN] = { .type = NLA_U32 },
        };
        struct nlmsghdr *hdr = nlmsg_hdr(msg);
        struct nlattr *tb[FRA_MAX + 1];
        const struct fib_rule_hdr *frh;

        if (!nlmsg_valid_hdr(hdr, sizeof(*frh)) || nlmsg_parse(hdr, sizeof(*frh), tb, FRA_MAX, policy) < 0)
                return -EBADMSG;
        frh = nlmsg_data(hdr);
        if (!rule_expressible(frh, tb))
                return 0;
        *ret = (struct net_rule) {
                .family = frh->family,
                .priority = attr_u32(tb, FRA_PRIORITY, 0),
                .table = attr_u32(tb, FRA_TABLE, frh->table),
                .fwmark = attr_u32(tb, FRA_FWMARK, 0),
                .fwmask = attr_u32(tb, FRA_FWMASK, 0),
                .invert = frh->flags & FIB_RULE_INVERT,
                .suppress_prefixlen = (int32_t) attr_u32(tb, FRA_SUPPRESS_PREFIXLEN, UINT32_MAX),
        };
        return 1;
}

struct rule_filter {
        struct vec *v;
        int family;
};

static int collect_rule(struct nl_msg *msg, void *userdata) {
        struct rule_filter *f = userdata;
        struct net_rule rule;
        int r;

        if (nlmsg_hdr(msg)->nlmsg_type != RTM_NEWRULE)
                return 0;
        r = rule_from_msg(msg, &rule);
        if (r <= 0 || !family_listed(rule.family, f->family))
                return r;
        return vec_push(f->v, &rule);
}

int netcfg_rule_list(struct netcfg *n, uint8_t family, struct net_rule **ret, size_t *n_ret) {
        _cleanup_(vec_free) struct vec v = { .item_size = sizeof(struct net_rule) };
        struct rule_filter f = { .v = &v, .family = family };
        struct fib_rule_hdr hdr = { .family = family };
        int r;

        if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
                return -EAFNOSUPPORT;
        r = dump(n, RTM_GETRULE, &hdr, sizeof(hdr), &v, collect_rule, &f);
        if (r < 0)
                return r;
        vec_take(&v, ret, n_ret);
        return 0;
}

int netcfg_rule_add(struct netcfg *n, const struct net_rule *r) {
        _cleanup_(nlmsg_freep) struct nl_msg *msg = NULL;
        int k = rule_msg(r, true, &msg);

        return k < 0 ? k : request(n, msg, NULL, NULL);
}

int netcfg_rule_del(struct netcfg *n, const struct net_rule *r) {
        _cleanup_(nlmsg_freep) struct nl_msg *msg = NULL;
        int k = rule_msg(r, false, &msg);

        return k < 0 ? k : request(n, msg, NULL, NULL);
}

/* /proc/sys/net knobs. */

static int read_sysctl_long(const char *path, long *ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        char buf[32], *end;
        ssize_t k;
        long v;

        if (fd < 0)
                return -errno;
        k = read(fd, buf, sizeof(buf) - 1);
        if (k < 0)
                return -errno;
        buf[k] = '\0';
        errno = 0;
        v = strtol(buf, &end, 10);
        if (errno != 0 || end == buf || (*end != '\0' && *end != '\n'))
                return -EBADMSG;
        *ret = v;
        return 0;
}

static int write_sysctl(const char *path, const char *value) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        size_t n = strlen(value);
        ssize_t k;

        if (fd < 0)
                return -errno;
        k = write(fd, value, n);
        if (k < 0)
                return -errno;
        return (size_t) k == n ? 0 : -EIO;
}

int netcfg_ipv6_enabled(const char *ifname) {
        char path[sizeof("/proc/sys/net/ipv6/conf//disable_ipv6") + IFNAMSIZ];
        long disabled = 0;
        int r;

        if (!ifname_valid(ifname))
                return -EINVAL;
        snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", ifname);
        r = read_sysctl_long(path, &disabled);
        /* No file: a kernel without IPv6, or a link IPv6 never attached to. */
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        return disabled == 0;
}

int netcfg_set_src_valid_mark(bool on) {
        return write_sysctl("/proc/sys/net/ipv4/conf/all/src_valid_mark", on ? "1\n" : "0\n");
}
