//go:build ignore

// nswire datapath: per-endpoint traffic counters, per-flow accounting, spoof
// and rogue-router guard with drop events, and a container-to-container fast
// path, attached to the host side of each container's veth pair (see
// DESIGN.md, "Datapath").
//
//   from_container: host veth ingress (tcx ingress or clsact ingress), i.e.
//                   packets the container sent.
//   to_container:   host veth egress, i.e. packets for the container that
//                   came through the bridge.
//
// Both programs return TC_ACT_UNSPEC (== TCX_NEXT) for every packet they let
// through, so they behave the same under tcx and under a legacy cls_bpf
// filter in direct-action mode, and never short-cut programs attached after
// them.
//
// Pinned-map compatibility: endpoints, endpoints_by_ip and ep_counters keep
// the layout of earlier versions, so a newer nswire adopts a running
// datapath's pins; everything added since lives in maps of its own
// (ep_counters_ext, flows4, flows6, drop_events, dp_stats, dp_config), which Load
// creates next to the old ones.

#include "uapi.h"
#include "bpf_helpers.h"
#include "bpf_endian.h"

char __license[] SEC("license") = "Dual MIT/GPL";

#define MAX_ENDPOINTS 4096
#define MAX_VLAN_TAGS 2
#define MAX_FLOWS 32768 /* per address family */
#define MAX_IP6_EXT 8 /* extension headers followed before giving up */
#define DROP_EVENTS_SIZE (256 * 1024)
#define DEFAULT_EVENTS_PER_SEC 1000 /* per CPU */
#define EVENTS_UNLIMITED 0xffffffff

enum mode {
	MODE_OFF = 0, /* never seen by the programs: no program is attached */
	MODE_OBSERVE = 1,
	MODE_FASTPATH = 2,
};

enum endpoint_flag {
	FLAG_GUARD = 1,    /* spoof and rogue-router guard */
	FLAG_NO_FLOWS = 2, /* no per-flow accounting for this endpoint */
};

enum dir {
	DIR_RX = 0, /* towards the container */
	DIR_TX = 1, /* sent by the container */
	N_DIRS,
};

enum l3 {
	L3_IPV4 = 0,
	L3_IPV6 = 1,
	L3_OTHER = 2, /* ARP, runts, unknown ethertypes, truncated VLAN tags */
	N_L3,
};

enum l4 {
	L4_TCP = 0,
	L4_UDP = 1,
	L4_ICMP = 2, /* ICMP for IPv4, ICMPv6 for IPv6 */
	L4_OTHER = 3, /* anything else, and truncated IP headers */
	N_L4,
};

enum drop_reason {
	DROP_SRC_MAC = 0,
	DROP_SRC_IP4 = 1,
	DROP_SRC_IP6 = 2,
	DROP_ARP_SPOOF = 3,
	/* Reasons from here on are counted in ep_counters_ext. */
	DROP_RA = 4,           /* ICMPv6 router advertisement (type 134) */
	DROP_REDIRECT = 5,     /* ICMPv6 redirect (type 137) */
	DROP_IP6_UNPARSED = 6, /* IPv6 header chain the guard cannot follow to its upper-layer header */
	DROP_ND_SPOOF = 7,     /* neighbour solicitation/advertisement for an address or MAC not the endpoint's */
	N_DROP_REASONS,
};

#define N_BASE_DROPS 4     /* reasons counted in struct counters */
#define MAX_DROP_REASONS 16 /* size of counters_ext.drops */

// One container endpoint, keyed by the ifindex of its host-side veth.
struct endpoint {
	__u8 mac[ETH_ALEN]; /* the container's eth0 MAC */
	__u8 mode;          /* enum mode */
	__u8 flags;         /* enum endpoint_flag */
	__u32 slot;         /* index into ep_counters, < MAX_ENDPOINTS */
	__u32 ifindex;      /* host veth ifindex (same as the key) */
	__u8 ip4[4];        /* 0.0.0.0 if none */
	__u8 ip6[16];       /* :: if none */
};

// Key of endpoints_by_ip. family is 4 or 6; an IPv4 address uses addr[0:4]
// and leaves the rest zero.
struct ip_key {
	__u32 family;
	__u8 addr[16];
};

struct counter {
	__u64 packets;
	__u64 bytes; /* skb->len: includes the 14-byte Ethernet header */
};

// The layout of ep_counters values is frozen (pins of older versions are
// adopted): new per-endpoint counters go to struct counters_ext.
struct counters {
	struct counter v[N_DIRS][N_L3][N_L4];
	/* Dropped packets are counted here (reasons < N_BASE_DROPS) or in
	 * counters_ext.drops, never under v[DIR_TX]. */
	__u64 drops[N_BASE_DROPS];
	/* Packets and bytes this endpoint sent through the fast path (counted
	 * on the sender; they are also in the sender's tx and the receiver's
	 * rx buckets). */
	__u64 fastpath_packets;
	__u64 fastpath_bytes;
};

// More per-endpoint counters, per CPU, indexed by slot like ep_counters.
struct counters_ext {
	/* drops[r] for reasons r >= N_BASE_DROPS; entries below stay zero. */
	__u64 drops[MAX_DROP_REASONS];
	/* Entries this endpoint created in flows4 and flows6. User space computes
	 * the evicted ones as created minus those still present. */
	__u64 flows_created;
};

// Keys of the flows4 and flows6 maps: one map per address family, so that
// an IPv4 flow hashes 16 bytes, not 40 (the hash is most of a flow update's
// cost). No padding: every byte is set, so equal flows hash alike.
struct flow_key4 {
	__u16 slot;  /* endpoint slot */
	__u8 dir;    /* enum dir */
	__u8 proto;  /* IP protocol */
	__u8 src[4];
	__u8 dst[4];
	__u16 sport; /* host order; ICMP: type; 0 if unknown */
	__u16 dport; /* host order; ICMP: code; 0 if unknown */
};

struct flow_key6 {
	__u16 slot;
	__u8 dir;
	__u8 proto;  /* IP protocol of the upper-layer header, after the
			extension headers; 0 if they cannot be followed */
	__u8 src[16];
	__u8 dst[16];
	__u16 sport; /* host order; ICMPv6: type; 0 if unknown */
	__u16 dport; /* host order; ICMPv6: code; 0 if unknown */
};

struct flow_stats {
	__u64 packets;
	__u64 bytes;      /* skb->len, as in struct counter */
	/* bpf_ktime_get_coarse_ns: CLOCK_MONOTONIC as of the last timer tick
	 * (1–10 ms resolution), because bpf_ktime_get_ns costs ~25 ns per
	 * packet on a VM with kvm-clock. */
	__u64 first_seen;
	__u64 last_seen;
	/* tcp_flags[i] is 1 once a segment with flag bit i (FIN = bit 0 … CWR
	 * = bit 7) was seen: plain stores of a constant, so CPUs racing on one
	 * flow never lose a flag (an atomic OR needs -mcpu=v3). */
	__u8 tcp_flags[8];
};

// One packet the guard dropped, as written to the drop_events ring buffer.
struct drop_event {
	__u64 ktime;       /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	__u32 slot;
	__u32 ifindex;     /* host veth */
	__u8 reason;       /* enum drop_reason */
	__u8 family;       /* 4, 6, or 0 when not IP */
	__u8 proto;        /* IP protocol, as in flow_key6 */
	__u8 has_addrs;    /* 1: src and dst are set (the L3 header was complete) */
	__u16 ethertype;   /* host order */
	__u16 sport;       /* as in flow_key6; ARP: the opcode */
	__u16 dport;
	__u8 src_mac[ETH_ALEN];
	__u8 src[16];      /* IPv4 in src[0:4]; ARP: sender protocol address */
	__u8 dst[16];      /* ARP: target protocol address */
};

// Datapath-wide counters, per CPU (one entry).
struct stats {
	__u64 events_sent;        /* drop events written to drop_events */
	__u64 events_ratelimited; /* not written: over the rate limit */
	__u64 events_ringbuf_full; /* not written: no room in drop_events */
	__u64 flow_errors;        /* packets whose flow entry could not be made */
	__u64 rl_tat;             /* rate limiter state (GCRA theoretical arrival time, ns) */
};

// Datapath-wide settings, written by user space (one entry).
struct config {
	/* Drop events per second per CPU: 0 means DEFAULT_EVENTS_PER_SEC,
	 * EVENTS_UNLIMITED turns the limit off. */
	__u32 drop_events_per_sec;
	/* Events a CPU may send at once after a quiet time: 0 means the same as
	 * the rate (one second's worth). */
	__u32 drop_events_burst;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * MAX_ENDPOINTS);
	__type(key, struct ip_key);
	__type(value, __u32); /* host veth ifindex of the destination */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} endpoints_by_ip SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ep_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct counters_ext);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ep_counters_ext SEC(".maps");

// Shared LRU maps with atomic adds rather than per-CPU ones: counts are
// exact either way, but per-CPU values cost MAX_FLOWS × CPUs × 40 bytes
// (hundreds of MB on a large host) and user space would sum them.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_FLOWS);
	__type(key, struct flow_key4);
	__type(value, struct flow_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_FLOWS);
	__type(key, struct flow_key6);
	__type(value, struct flow_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, DROP_EVENTS_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} drop_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dp_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dp_config SEC(".maps");

// Parsed view of a frame. Pointers are into the linear packet data and are
// NULL when the header is not complete there.
struct pkt {
	struct ethhdr *eth; /* NULL for runts shorter than an Ethernet header */
	/* The complete L3 header, or NULL: one pointer per type, so that the
	 * verifier knows each one's checked length wherever it is used. */
	struct iphdr *ip4;
	struct ipv6hdr *ip6;
	struct arphdr_eth_ip4 *arp;
	__be16 proto;       /* innermost ethertype */
	__u8 l3;            /* enum l3 */
	__u8 l4;            /* enum l4 */
	__u8 vlan;          /* 1 if the frame carries at least one VLAN tag */
	__u8 ipproto;       /* IP protocol of the upper-layer header (after
			       IPv6 extension headers); 0 when not IP */
	__u8 has_ports;     /* sport/dport (and tcp_flags) were read */
	__u8 later_frag;    /* a fragment other than the first: no L4 header */
	__u8 ip6_unparsed;  /* IPv6 extension headers truncated or too many */
	__u8 tcp_flags;
	__u16 sport;        /* host order; ICMP/ICMPv6: type */
	__u16 dport;        /* host order; ICMP/ICMPv6: code */
	__u32 l4_off;       /* IPv6: offset of the upper-layer header */
	__u32 l3_end;       /* IPv6: offset just past the payload */
};

// Bytes the parser pulls into the linear data: Ethernet + two VLAN tags + an
// IPv6 header. L4 headers and IPv6 extension headers beyond the linear data
// are read with bpf_skb_load_bytes instead: pulling more would make the
// kernel copy (and, for TCP's cloned skbs, reallocate) the head of every GSO
// packet whose linear part holds exactly its headers.
#define PARSE_LEN (ETH_HLEN + MAX_VLAN_TAGS * 4 + 40)

// ensure_linear pulls the headers into the linear data when the skb is
// non-linear and too short there; cheap no-op otherwise. Invalidates packet
// pointers, so it runs before parse.
static __always_inline void ensure_linear(struct __sk_buff *skb)
{
	__u32 lin = skb->data_end - skb->data;
	__u32 len = skb->len;

	if (lin < PARSE_LEN && len > lin)
		bpf_skb_pull_data(skb, len < PARSE_LEN ? len : PARSE_LEN);
}

// bytes_at returns a pointer to n bytes at offset off of the frame: into the
// linear data when they are there, else copied into buf; NULL when the frame
// is shorter.
static __always_inline const __u8 *bytes_at(struct __sk_buff *skb, __u32 off, __u8 *buf, __u32 n)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	const __u8 *ptr;

	/* The bound lets the verifier track the variable offset. */
	if (off < 0x4000) {
		ptr = data + off;
		if ((void *)(ptr + n) <= end)
			return ptr;
	}
	if (bpf_skb_load_bytes(skb, off, buf, n) < 0)
		return 0;
	return buf;
}

// read_l4 reads the ports (ICMP: type and code) and TCP flags of the
// upper-layer header p->ipproto at offset off. Leaves has_ports 0 when the
// header is truncated or the protocol has no ports.
static __always_inline void read_l4(struct __sk_buff *skb, struct pkt *p, __u32 off)
{
	__u8 buf[14];
	const __u8 *h;

	switch (p->ipproto) {
	case IPPROTO_TCP:
		h = bytes_at(skb, off, buf, 14);
		if (!h)
			return;
		p->tcp_flags = h[13];
		break;
	case IPPROTO_UDP:
		h = bytes_at(skb, off, buf, 4);
		if (!h)
			return;
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		h = bytes_at(skb, off, buf, 2);
		if (!h)
			return;
		p->sport = h[0];
		p->dport = h[1];
		p->has_ports = 1;
		return;
	default:
		return;
	}
	p->sport = (__u16)h[0] << 8 | h[1];
	p->dport = (__u16)h[2] << 8 | h[3];
	p->has_ports = 1;
}

static __always_inline int ip6_is_ext(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_FRAGMENT ||
	       nh == IPPROTO_AH || nh == IPPROTO_DSTOPTS;
}

struct ip6_walk {
	__u32 off;   /* offset of the header named by nexthdr */
	__u8 nexthdr;
};

// ip6_skip_ext follows IPv6 extension headers (hop-by-hop, routing,
// fragment, authentication, destination options) from w, at most
// MAX_IP6_EXT of them, to the upper-layer header. Returns 0 when w names
// the upper-layer header, 1 for a fragment other than the first (w names
// its protocol; its header is not in this packet), -1 when the chain is
// truncated or longer than MAX_IP6_EXT. Out of line: only packets with
// extension headers pay for it.
static __noinline int ip6_skip_ext(struct __sk_buff *skb, struct ip6_walk *w)
{
	for (int i = 0; i < MAX_IP6_EXT; i++) {
		__u8 h[4];
		__u8 nh = w->nexthdr;

		if (nh == IPPROTO_FRAGMENT) {
			if (bpf_skb_load_bytes(skb, w->off, h, 4) < 0)
				return -1;
			w->nexthdr = h[0];
			w->off += 8;
			if (((__u16)h[2] << 8 | h[3]) & 0xfff8)
				return 1;
		} else if (nh == IPPROTO_AH) {
			if (bpf_skb_load_bytes(skb, w->off, h, 2) < 0)
				return -1;
			w->nexthdr = h[0];
			w->off += ((__u32)h[1] + 2) * 4;
		} else if (ip6_is_ext(nh)) {
			if (bpf_skb_load_bytes(skb, w->off, h, 2) < 0)
				return -1;
			w->nexthdr = h[0];
			w->off += ((__u32)h[1] + 1) * 8;
		} else {
			return 0;
		}
		if (w->off > 0xffff)
			return -1;
	}
	return ip6_is_ext(w->nexthdr) ? -1 : 0;
}

static __always_inline __u8 l4_class(__u8 ipproto, __u8 icmp)
{
	switch (ipproto) {
	case IPPROTO_TCP:
		return L4_TCP;
	case IPPROTO_UDP:
		return L4_UDP;
	}
	return ipproto == icmp ? L4_ICMP : L4_OTHER;
}

static __always_inline void parse(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 off = ETH_HLEN; /* of the header after the ones parsed so far */
	void *nh;
	__be16 proto;

	__builtin_memset(p, 0, sizeof(*p));
	p->l3 = L3_OTHER;
	p->l4 = L4_OTHER;

	if ((void *)(eth + 1) > end)
		return;
	p->eth = eth;
	proto = eth->h_proto;
	nh = eth + 1;

#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		struct vlan_hdr *vh = nh;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		p->vlan = 1;
		if ((void *)(vh + 1) > end)
			return; /* truncated tag: l3 other */
		proto = vh->h_vlan_encapsulated_proto;
		nh = vh + 1;
		off += sizeof(*vh);
	}
	p->proto = proto;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = nh;

		p->l3 = L3_IPV4;
		if ((void *)(ip + 1) > end)
			return; /* truncated: l4 other */
		p->ip4 = ip;
		p->ipproto = ip->protocol;
		p->l4 = l4_class(ip->protocol, IPPROTO_ICMP);
		if (ip->frag_off & bpf_htons(IP_OFFSET))
			p->later_frag = 1;
		else if (ip->ihl >= 5)
			read_l4(skb, p, off + ip->ihl * 4);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = nh;
		struct ip6_walk w;

		p->l3 = L3_IPV6;
		if ((void *)(ip6 + 1) > end)
			return;
		p->ip6 = ip6;
		w.nexthdr = ip6->nexthdr;
		w.off = off + sizeof(*ip6);
		if (ip6_is_ext(w.nexthdr)) {
			int r = ip6_skip_ext(skb, &w);

			if (r < 0) {
				p->ip6_unparsed = 1;
				return; /* l4 other */
			}
			p->later_frag = r;
		}
		p->ipproto = w.nexthdr;
		p->l4 = l4_class(w.nexthdr, IPPROTO_ICMPV6);
		p->l4_off = w.off;
		p->l3_end = off + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		if (!p->later_frag)
			read_l4(skb, p, w.off);
	} else if (proto == bpf_htons(ETH_P_ARP)) {
		struct arphdr_eth_ip4 *arp = nh;

		if ((void *)(arp + 1) <= end)
			p->arp = arp;
	}
}

static __always_inline void count(struct counters *c, int dir, const struct pkt *p, __u64 len)
{
	__u32 l3 = p->l3, l4 = p->l4;
	struct counter *v;

	/* Bounds for the verifier; parse only produces values in range. */
	if (l3 >= N_L3 || l4 >= N_L4)
		return;
	v = &c->v[dir][l3][l4];
	v->packets++;
	v->bytes += len;
}

static __always_inline struct stats *dp_stats_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&dp_stats, &zero);
}

static __always_inline void flow_flags(__u8 *seen, __u8 f)
{
	if (!f)
		return;
#pragma unroll
	for (int i = 0; i < 8; i++)
		if (f & (1 << i))
			seen[i] = 1;
}

// flow_add counts one packet of len bytes on the flow k (a key of map,
// flows4 or flows6) of slot, creating the entry if needed (the LRU map
// evicts the least recently used entry when full).
static __always_inline void flow_add(void *map, void *k, __u32 slot, __u8 tcp_flags, __u64 len,
				     __u64 now)
{
	struct flow_stats *v;

	v = bpf_map_lookup_elem(map, k);
	if (!v) {
		struct flow_stats n = {
			.packets = 1,
			.bytes = len,
			.first_seen = now,
			.last_seen = now,
		};
		struct counters_ext *x;
		long err;

		flow_flags(n.tcp_flags, tcp_flags);
		err = bpf_map_update_elem(map, k, &n, BPF_NOEXIST);
		if (err == 0) {
			x = bpf_map_lookup_elem(&ep_counters_ext, &slot);
			if (x)
				x->flows_created++;
			return;
		}
		/* Another CPU created it first: add to that one. */
		if (err == -EEXIST)
			v = bpf_map_lookup_elem(map, k);
		if (!v) {
			struct stats *st = dp_stats_get();

			if (st)
				st->flow_errors++;
			return;
		}
	}
	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, len);
	v->last_seen = now;
	flow_flags(v->tcp_flags, tcp_flags);
}

// count_flows counts p as a tx flow of tx_slot and an rx flow of rx_slot
// (either -1: not counted). Only IP packets with a complete IP header are
// flows; the rest (ARP, LLDP, truncated headers) are in the counters only.
static __always_inline void count_flows(const struct pkt *p, int tx_slot, int rx_slot, __u64 len)
{
	__u64 now;

	if (p->ip4) {
		struct flow_key4 k = {
			.proto = p->ipproto,
			.sport = p->sport,
			.dport = p->dport,
		};

		now = bpf_ktime_get_coarse_ns();
		*(__u32 *)k.src = p->ip4->saddr;
		*(__u32 *)k.dst = p->ip4->daddr;
		if (tx_slot >= 0) {
			k.slot = tx_slot;
			k.dir = DIR_TX;
			flow_add(&flows4, &k, tx_slot, p->tcp_flags, len, now);
		}
		if (rx_slot >= 0) {
			k.slot = rx_slot;
			k.dir = DIR_RX;
			flow_add(&flows4, &k, rx_slot, p->tcp_flags, len, now);
		}
	} else if (p->ip6) {
		struct flow_key6 k = {
			.proto = p->ipproto,
			.sport = p->sport,
			.dport = p->dport,
		};

		now = bpf_ktime_get_coarse_ns();
		__builtin_memcpy(k.src, p->ip6->saddr.in6_u.u6_addr8, 16);
		__builtin_memcpy(k.dst, p->ip6->daddr.in6_u.u6_addr8, 16);
		if (tx_slot >= 0) {
			k.slot = tx_slot;
			k.dir = DIR_TX;
			flow_add(&flows6, &k, tx_slot, p->tcp_flags, len, now);
		}
		if (rx_slot >= 0) {
			k.slot = rx_slot;
			k.dir = DIR_RX;
			flow_add(&flows6, &k, rx_slot, p->tcp_flags, len, now);
		}
	}
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return *(const __u32 *)a == *(const __u32 *)b &&
	       *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
}

// mac_eq_bytes compares a MAC at any alignment (an option inside a packet or
// a copy of one) with b.
static __always_inline int mac_eq_bytes(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] &&
	       a[5] == b[5];
}

static __always_inline int ip6_is_zero(const __u32 *a)
{
	return (a[0] | a[1] | a[2] | a[3]) == 0;
}

static __always_inline int ip6_eq(const __u32 *a, const __u32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

// ip6_is_eui64_ll reports whether a is fe80::/64 with the modified EUI-64
// interface identifier derived from mac.
static __always_inline int ip6_is_eui64_ll(const __u8 *a, const __u8 *mac)
{
	return a[0] == 0xfe && a[1] == 0x80 && a[2] == 0 && a[3] == 0 &&
	       a[4] == 0 && a[5] == 0 && a[6] == 0 && a[7] == 0 &&
	       a[8] == (mac[0] ^ 0x02) && a[9] == mac[1] && a[10] == mac[2] &&
	       a[11] == 0xff && a[12] == 0xfe &&
	       a[13] == mac[3] && a[14] == mac[4] && a[15] == mac[5];
}

#define ICMPV6_MLD_REPORT 131
#define ICMPV6_MLD_DONE 132
#define ICMPV6_ROUTER_ADVERT 134
#define ICMPV6_NEIGH_SOLICIT 135
#define ICMPV6_NEIGH_ADVERT 136
#define ICMPV6_REDIRECT 137
#define ICMPV6_MLD2_REPORT 143

#define ND_OPT_SOURCE_LL 1
#define ND_OPT_TARGET_LL 2
#define ND_MSG_LEN 24    /* ICMPv6 header, flags/reserved, target address */
#define MAX_ND_OPTS 4    /* options the guard follows; more is a drop */

// ip6_is_own reports whether a is one of ep's IPv6 addresses: its global
// one (when it has one) or its EUI-64 link-local.
static __always_inline int ip6_is_own(const __u32 *a, const struct endpoint *ep)
{
	return (!ip6_is_zero((const __u32 *)ep->ip6) && ip6_eq(a, (const __u32 *)ep->ip6)) ||
	       ip6_is_eui64_ll((const __u8 *)a, ep->mac);
}

// guard_nd checks a neighbour solicitation or advertisement (p->sport, at
// p->l4_off): an advertisement only for one of ep's own addresses, a
// solicitation from :: (duplicate address detection) only for one of them,
// and every link-layer address option, in either, only with ep's MAC: that
// option, not the Ethernet source, is what a neighbour's cache learns.
// Returns -1 to pass, else DROP_ND_SPOOF (a message too short to check or
// with more than MAX_ND_OPTS options included). Out of line: only
// neighbour discovery pays for it.
static __noinline int guard_nd(struct __sk_buff *skb, const struct endpoint *ep, const struct pkt *p,
			       int from_unspec)
{
	__u8 buf[ND_MSG_LEN] __attribute__((aligned(8)));
	const __u8 *m;
	__u32 off, end = p->l3_end;

	if (end > skb->len)
		end = skb->len;
	if (p->l4_off + ND_MSG_LEN > end)
		return DROP_ND_SPOOF;
	m = bytes_at(skb, p->l4_off, buf, ND_MSG_LEN);
	if (!m)
		return DROP_ND_SPOOF;
	if ((p->sport == ICMPV6_NEIGH_ADVERT || from_unspec) && !ip6_is_own((const __u32 *)(m + 8), ep))
		return DROP_ND_SPOOF;

	off = p->l4_off + ND_MSG_LEN;
	for (int i = 0; i < MAX_ND_OPTS; i++) {
		__u8 o[8] __attribute__((aligned(8)));
		const __u8 *h;

		if (off >= end)
			return -1;
		if (off + 8 > end)
			return DROP_ND_SPOOF;
		h = bytes_at(skb, off, o, 8);
		if (!h || h[1] == 0) /* a zero-length option is invalid (RFC 4861 4.6) */
			return DROP_ND_SPOOF;
		if ((h[0] == ND_OPT_SOURCE_LL || h[0] == ND_OPT_TARGET_LL) &&
		    (h[1] != 1 || !mac_eq_bytes(h + 2, ep->mac)))
			return DROP_ND_SPOOF;
		off += (__u32)h[1] * 8;
		if (off > end) /* the option runs past the message */
			return DROP_ND_SPOOF;
	}
	return off >= end ? -1 : DROP_ND_SPOOF;
}

// guard_icmp6 drops what only a router may send: router advertisements and
// redirects; it checks neighbour discovery with guard_nd; and it lets the
// unspecified source :: through only for duplicate address detection (a
// neighbour solicitation) and MLD reports (RFC 3810 5.2.13). An IPv6
// packet whose header chain cannot be followed could hide any of these
// (RFC 7113) and is dropped too; so is an ICMPv6 header too short to hold
// its type. Fragments after the first carry no ICMPv6 header and pass, but
// not from ::; hosts drop fragmented neighbour discovery anyway (RFC 6980).
static __always_inline int guard_icmp6(struct __sk_buff *skb, const struct endpoint *ep,
				       const struct pkt *p, int from_unspec)
{
	if (p->ip6_unparsed)
		return DROP_IP6_UNPARSED;
	if (p->ipproto != IPPROTO_ICMPV6 || p->later_frag)
		return from_unspec ? DROP_SRC_IP6 : -1;
	if (!p->has_ports)
		return DROP_IP6_UNPARSED;
	switch (p->sport) {
	case ICMPV6_ROUTER_ADVERT:
		return DROP_RA;
	case ICMPV6_REDIRECT:
		return DROP_REDIRECT;
	case ICMPV6_NEIGH_SOLICIT:
	case ICMPV6_NEIGH_ADVERT:
		if (from_unspec && p->sport == ICMPV6_NEIGH_ADVERT)
			return DROP_SRC_IP6;
		return guard_nd(skb, ep, p, from_unspec);
	case ICMPV6_MLD_REPORT:
	case ICMPV6_MLD_DONE:
	case ICMPV6_MLD2_REPORT:
		return -1;
	}
	return from_unspec ? DROP_SRC_IP6 : -1;
}

// guard returns the drop reason for a spoofed frame, or -1 to let it pass.
// Runts carry nothing to spoof and pass. A truncated IPv4/IPv6/ARP header
// cannot be verified and is dropped.
static __always_inline int guard(struct __sk_buff *skb, const struct endpoint *ep, const struct pkt *p)
{
	if (!p->eth)
		return -1;
	if (!mac_eq(p->eth->h_source, ep->mac))
		return DROP_SRC_MAC;

	if (p->proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = p->ip4;

		if (!ip)
			return DROP_SRC_IP4;
		/* 0.0.0.0 is allowed (DHCP). */
		if (ip->saddr != 0 && ip->saddr != *(const __u32 *)ep->ip4)
			return DROP_SRC_IP4;
	} else if (p->proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = p->ip6;
		const __u32 *s;
		int unspec;

		if (!ip6)
			return DROP_SRC_IP6;
		s = ip6->saddr.in6_u.u6_addr32;
		unspec = ip6_is_zero(s);
		if (!unspec && !ip6_is_own(s, ep))
			return DROP_SRC_IP6;
		return guard_icmp6(skb, ep, p, unspec);
	} else if (p->proto == bpf_htons(ETH_P_ARP)) {
		struct arphdr_eth_ip4 *arp = p->arp;

		if (!arp)
			return DROP_ARP_SPOOF;
		if (arp->ar_hrd != bpf_htons(ARPHRD_ETHER) || arp->ar_pro != bpf_htons(ETH_P_IP) ||
		    arp->ar_hln != ETH_ALEN || arp->ar_pln != 4)
			return DROP_ARP_SPOOF;
		if (!mac_eq(arp->ar_sha, ep->mac))
			return DROP_ARP_SPOOF;
		/* Sender 0.0.0.0 is an RFC 5227 probe and is allowed. */
		if (*(const __u32 *)arp->ar_sip != 0 &&
		    *(const __u32 *)arp->ar_sip != *(const __u32 *)ep->ip4)
			return DROP_ARP_SPOOF;
	}
	return -1;
}

// rate_ok is a per-CPU GCRA token bucket: it admits drop_events_per_sec
// events per second with bursts of drop_events_burst.
static __always_inline int rate_ok(struct stats *st, __u64 now)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&dp_config, &zero);
	__u64 rate = DEFAULT_EVENTS_PER_SEC, burst = 0, interval, tat;

	if (cfg && cfg->drop_events_per_sec) {
		rate = cfg->drop_events_per_sec;
		burst = cfg->drop_events_burst;
	}
	if (rate == EVENTS_UNLIMITED)
		return 1;
	if (!burst)
		burst = rate;
	interval = 1000000000ULL / rate;
	tat = st->rl_tat;
	if (tat < now)
		tat = now;
	if (tat - now > (burst - 1) * interval)
		return 0;
	st->rl_tat = tat + interval;
	return 1;
}

// fill_drop_event describes p in e. Out of line: only drops pay for it, and
// its prototype puts struct drop_event in the object's BTF for bpf2go.
static __noinline void fill_drop_event(struct drop_event *e, const struct endpoint *ep,
				       const struct pkt *p, int reason, __u64 now)
{
	__builtin_memset(e, 0, sizeof(*e));
	e->ktime = now;
	e->slot = ep->slot;
	e->ifindex = ep->ifindex;
	e->reason = reason;
	e->ethertype = bpf_ntohs(p->proto);
	if (p->eth)
		__builtin_memcpy(e->src_mac, p->eth->h_source, ETH_ALEN);
	if (p->l3 == L3_IPV4) {
		struct iphdr *ip = p->ip4;

		e->family = 4;
		if (ip) {
			*(__u32 *)e->src = ip->saddr;
			*(__u32 *)e->dst = ip->daddr;
			e->has_addrs = 1;
		}
	} else if (p->l3 == L3_IPV6) {
		struct ipv6hdr *ip6 = p->ip6;

		e->family = 6;
		if (ip6) {
			__builtin_memcpy(e->src, ip6->saddr.in6_u.u6_addr8, 16);
			__builtin_memcpy(e->dst, ip6->daddr.in6_u.u6_addr8, 16);
			e->has_addrs = 1;
		}
	} else if (p->arp) {
		struct arphdr_eth_ip4 *arp = p->arp;

		__builtin_memcpy(e->src, arp->ar_sip, 4);
		__builtin_memcpy(e->dst, arp->ar_tip, 4);
		e->has_addrs = 1;
		e->sport = bpf_ntohs(arp->ar_op);
	}
	if (p->l3 != L3_OTHER) {
		e->proto = p->ipproto;
		e->sport = p->sport;
		e->dport = p->dport;
	}
}

// emit_drop writes a drop event for p, unless the rate limit or a full ring
// buffer stops it (each counted).
static __always_inline void emit_drop(const struct endpoint *ep, const struct pkt *p, int reason)
{
	struct stats *st = dp_stats_get();
	struct drop_event *e;
	__u64 now;

	if (!st)
		return;
	now = bpf_ktime_get_ns();
	if (!rate_ok(st, now)) {
		st->events_ratelimited++;
		return;
	}
	e = bpf_ringbuf_reserve(&drop_events, sizeof(*e), 0);
	if (!e) {
		st->events_ringbuf_full++;
		return;
	}
	fill_drop_event(e, ep, p, reason, now);
	bpf_ringbuf_submit(e, 0);
	st->events_sent++;
}

static __always_inline void count_drop(const struct endpoint *ep, struct counters *c, int reason)
{
	struct counters_ext *x;
	__u32 slot = ep->slot;

	if (reason < N_BASE_DROPS) {
		c->drops[reason]++;
		return;
	}
	x = bpf_map_lookup_elem(&ep_counters_ext, &slot);
	if (x && reason < MAX_DROP_REASONS)
		x->drops[reason]++;
}

// fastpath_dst returns the destination endpoint of an untagged IPv4/IPv6
// unicast frame when both endpoints are in fast-path mode, else NULL.
static __always_inline struct endpoint *fastpath_dst(struct __sk_buff *skb, const struct endpoint *ep,
						     const struct pkt *p)
{
	struct ip_key key = {};
	struct endpoint *dst;
	__u32 *dst_ifindex;
	__u32 ifindex;

	if (!p->eth || p->vlan)
		return 0;
	if (p->eth->h_dest[0] & 1) /* broadcast or multicast */
		return 0;

	if (p->ip4) {
		key.family = 4;
		*(__u32 *)key.addr = p->ip4->daddr;
	} else if (p->ip6) {
		key.family = 6;
		__builtin_memcpy(key.addr, p->ip6->daddr.in6_u.u6_addr8, 16);
	} else {
		return 0;
	}

	dst_ifindex = bpf_map_lookup_elem(&endpoints_by_ip, &key);
	if (!dst_ifindex)
		return 0;
	ifindex = *dst_ifindex;
	if (ifindex == ep->ifindex || ifindex == skb->ifindex)
		return 0;
	dst = bpf_map_lookup_elem(&endpoints, &ifindex);
	if (!dst || dst->mode != MODE_FASTPATH)
		return 0;
	return dst;
}

static __always_inline int flows_on(const struct endpoint *ep)
{
	return !(ep->flags & FLAG_NO_FLOWS);
}

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint *ep, *dst = 0;
	struct counters *c, *dc = 0;
	struct pkt p;
	__u64 len;

	ep = bpf_map_lookup_elem(&endpoints, &ifindex);
	if (!ep)
		return TC_ACT_UNSPEC;
	c = bpf_map_lookup_elem(&ep_counters, &ep->slot);
	if (!c)
		return TC_ACT_UNSPEC;

	ensure_linear(skb);
	len = skb->len;
	parse(skb, &p);

	if (ep->flags & FLAG_GUARD) {
		int reason = guard(skb, ep, &p);

		if (reason >= 0 && reason < N_DROP_REASONS) {
			count_drop(ep, c, reason);
			emit_drop(ep, &p, reason);
			return TC_ACT_SHOT;
		}
	}

	if (ep->mode == MODE_FASTPATH) {
		dst = fastpath_dst(skb, ep, &p);
		if (dst) {
			dc = bpf_map_lookup_elem(&ep_counters, &dst->slot);
			if (!dc)
				dst = 0;
		}
	}

	count(c, DIR_TX, &p, len);
	{
		int tx = flows_on(ep) ? (int)ep->slot : -1;
		int rx = dst && flows_on(dst) ? (int)dst->slot : -1;

		if (tx >= 0 || rx >= 0)
			count_flows(&p, tx, rx, len);
	}
	if (!dst || !dc)
		return TC_ACT_UNSPEC;

	/* Fast path: counted tx for the sender above, rx for the receiver
	 * here, and fastpath_* for the sender. */
	count(dc, DIR_RX, &p, len);
	c->fastpath_packets++;
	c->fastpath_bytes += len;

	/* Invalidates the packet pointers in p; nothing reads them after. */
	if (!mac_eq(p.eth->h_dest, dst->mac))
		bpf_skb_store_bytes(skb, 0, dst->mac, ETH_ALEN, 0);

	return bpf_redirect_peer(dst->ifindex, 0);
}

SEC("tc")
int to_container(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint *ep;
	struct counters *c;
	struct pkt p;
	__u64 len;

	ep = bpf_map_lookup_elem(&endpoints, &ifindex);
	if (!ep)
		return TC_ACT_UNSPEC;
	c = bpf_map_lookup_elem(&ep_counters, &ep->slot);
	if (!c)
		return TC_ACT_UNSPEC;

	ensure_linear(skb);
	len = skb->len;
	parse(skb, &p);
	count(c, DIR_RX, &p, len);
	if (flows_on(ep))
		count_flows(&p, -1, ep->slot, len);
	return TC_ACT_UNSPEC;
}
