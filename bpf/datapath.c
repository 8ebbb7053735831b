//go:build ignore

// nswire datapath: per-endpoint traffic counters, spoof guard and a
// container-to-container fast path, attached to the host side of each
// container's veth pair (see DESIGN.md, "Datapath").
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

#include "uapi.h"
#include "bpf_helpers.h"
#include "bpf_endian.h"

char __license[] SEC("license") = "Dual MIT/GPL";

#define MAX_ENDPOINTS 4096
#define MAX_VLAN_TAGS 2

enum mode {
	MODE_OFF = 0, /* never seen by the programs: no program is attached */
	MODE_OBSERVE = 1,
	MODE_FASTPATH = 2,
};

enum endpoint_flag {
	FLAG_GUARD = 1,
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
	N_DROP_REASONS,
};

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

struct counters {
	struct counter v[N_DIRS][N_L3][N_L4];
	/* Dropped packets are counted here only, never under v[DIR_TX]. */
	__u64 drops[N_DROP_REASONS];
	/* Packets and bytes this endpoint sent through the fast path (counted
	 * on the sender; they are also in the sender's tx and the receiver's
	 * rx buckets). */
	__u64 fastpath_packets;
	__u64 fastpath_bytes;
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

// Parsed view of a frame. Pointers are into the linear packet data and are
// NULL when the header is not complete there.
struct pkt {
	struct ethhdr *eth; /* NULL for runts shorter than an Ethernet header */
	void *l3hdr;        /* complete IPv4/IPv6/ARP header, or NULL */
	__be16 proto;       /* innermost ethertype */
	__u8 l3;            /* enum l3 */
	__u8 l4;            /* enum l4 */
	__u8 vlan;          /* 1 if the frame carries at least one VLAN tag */
};

// Bytes the parser may need: Ethernet + two VLAN tags + an IPv6 header.
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

static __always_inline void parse(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	void *nh;
	__be16 proto;

	p->eth = 0;
	p->l3hdr = 0;
	p->proto = 0;
	p->l3 = L3_OTHER;
	p->l4 = L4_OTHER;
	p->vlan = 0;

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
	}
	p->proto = proto;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = nh;

		p->l3 = L3_IPV4;
		if ((void *)(ip + 1) > end)
			return; /* truncated: l4 other */
		p->l3hdr = ip;
		switch (ip->protocol) {
		case IPPROTO_TCP:
			p->l4 = L4_TCP;
			break;
		case IPPROTO_UDP:
			p->l4 = L4_UDP;
			break;
		case IPPROTO_ICMP:
			p->l4 = L4_ICMP;
			break;
		}
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = nh;

		p->l3 = L3_IPV6;
		if ((void *)(ip6 + 1) > end)
			return;
		p->l3hdr = ip6;
		/* Only the first next-header: extension headers count as other. */
		switch (ip6->nexthdr) {
		case IPPROTO_TCP:
			p->l4 = L4_TCP;
			break;
		case IPPROTO_UDP:
			p->l4 = L4_UDP;
			break;
		case IPPROTO_ICMPV6:
			p->l4 = L4_ICMP;
			break;
		}
	} else if (proto == bpf_htons(ETH_P_ARP)) {
		struct arphdr_eth_ip4 *arp = nh;

		if ((void *)(arp + 1) <= end)
			p->l3hdr = arp;
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

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return *(const __u32 *)a == *(const __u32 *)b &&
	       *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
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

// guard returns the drop reason for a spoofed frame, or -1 to let it pass.
// Runts carry nothing to spoof and pass. A truncated IPv4/IPv6/ARP header
// cannot be verified and is dropped.
static __always_inline int guard(const struct endpoint *ep, const struct pkt *p)
{
	if (!p->eth)
		return -1;
	if (!mac_eq(p->eth->h_source, ep->mac))
		return DROP_SRC_MAC;

	if (p->proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = p->l3hdr;

		if (!ip)
			return DROP_SRC_IP4;
		/* 0.0.0.0 is allowed (DHCP). */
		if (ip->saddr != 0 && ip->saddr != *(const __u32 *)ep->ip4)
			return DROP_SRC_IP4;
	} else if (p->proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = p->l3hdr;
		const __u32 *s;

		if (!ip6)
			return DROP_SRC_IP6;
		s = ip6->saddr.in6_u.u6_addr32;
		/* :: is allowed (duplicate address detection). */
		if (ip6_is_zero(s))
			return -1;
		if (!ip6_is_zero((const __u32 *)ep->ip6) && ip6_eq(s, (const __u32 *)ep->ip6))
			return -1;
		if (ip6_is_eui64_ll(ip6->saddr.in6_u.u6_addr8, ep->mac))
			return -1;
		return DROP_SRC_IP6;
	} else if (p->proto == bpf_htons(ETH_P_ARP)) {
		struct arphdr_eth_ip4 *arp = p->l3hdr;

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

// fastpath redirects an untagged IPv4/IPv6 unicast frame to the peer of the
// destination endpoint's host veth when both endpoints are in fast-path mode.
// Counts tx for the sender, rx for the receiver, and fastpath_* for the
// sender. Returns TC_ACT_REDIRECT when it took the packet, else
// TC_ACT_UNSPEC (nothing counted).
static __always_inline int fastpath(struct __sk_buff *skb, const struct endpoint *ep,
				    struct counters *c, const struct pkt *p, __u64 len)
{
	struct ip_key key = {};
	struct endpoint *dst;
	struct counters *dc;
	__u32 *dst_ifindex;
	__u32 ifindex;

	if (!p->eth || !p->l3hdr || p->vlan)
		return TC_ACT_UNSPEC;
	if (p->eth->h_dest[0] & 1) /* broadcast or multicast */
		return TC_ACT_UNSPEC;

	if (p->l3 == L3_IPV4) {
		struct iphdr *ip = p->l3hdr;

		key.family = 4;
		*(__u32 *)key.addr = ip->daddr;
	} else if (p->l3 == L3_IPV6) {
		struct ipv6hdr *ip6 = p->l3hdr;

		key.family = 6;
		__builtin_memcpy(key.addr, ip6->daddr.in6_u.u6_addr8, 16);
	} else {
		return TC_ACT_UNSPEC;
	}

	dst_ifindex = bpf_map_lookup_elem(&endpoints_by_ip, &key);
	if (!dst_ifindex)
		return TC_ACT_UNSPEC;
	ifindex = *dst_ifindex;
	if (ifindex == ep->ifindex || ifindex == skb->ifindex)
		return TC_ACT_UNSPEC;
	dst = bpf_map_lookup_elem(&endpoints, &ifindex);
	if (!dst || dst->mode != MODE_FASTPATH)
		return TC_ACT_UNSPEC;
	dc = bpf_map_lookup_elem(&ep_counters, &dst->slot);
	if (!dc)
		return TC_ACT_UNSPEC;

	count(c, DIR_TX, p, len);
	count(dc, DIR_RX, p, len);
	c->fastpath_packets++;
	c->fastpath_bytes += len;

	/* Invalidates the packet pointers in p; nothing reads them after. */
	if (!mac_eq(p->eth->h_dest, dst->mac))
		bpf_skb_store_bytes(skb, 0, dst->mac, ETH_ALEN, 0);

	return bpf_redirect_peer(ifindex, 0);
}

SEC("tc")
int from_container(struct __sk_buff *skb)
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

	if (ep->flags & FLAG_GUARD) {
		int reason = guard(ep, &p);

		if (reason >= 0 && reason < N_DROP_REASONS) {
			c->drops[reason]++;
			return TC_ACT_SHOT;
		}
	}

	if (ep->mode == MODE_FASTPATH && fastpath(skb, ep, c, &p, len) == TC_ACT_REDIRECT)
		return TC_ACT_REDIRECT;

	count(c, DIR_TX, &p, len);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int to_container(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint *ep;
	struct counters *c;
	struct pkt p;

	ep = bpf_map_lookup_elem(&endpoints, &ifindex);
	if (!ep)
		return TC_ACT_UNSPEC;
	c = bpf_map_lookup_elem(&ep_counters, &ep->slot);
	if (!c)
		return TC_ACT_UNSPEC;

	ensure_linear(skb);
	parse(skb, &p);
	count(c, DIR_RX, &p, skb->len);
	return TC_ACT_UNSPEC;
}
