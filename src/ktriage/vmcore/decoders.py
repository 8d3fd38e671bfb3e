"""Object decoders for a vmcore session: plain registered functions `(prog, obj) -> list[str] | None`.

Each returns evidence lines a person can check (members and values read), or None when the object
is not what the decoder understands. `DECODERS` maps a struct tag to its decoder.
"""

from __future__ import annotations

import socket
from typing import Any, Callable

DECODERS: dict[str, Callable[[Any, Any], dict | None]] = {}

TCP_STATES = {1: "TCP_ESTABLISHED", 2: "TCP_SYN_SENT", 3: "TCP_SYN_RECV", 4: "TCP_FIN_WAIT1", 5: "TCP_FIN_WAIT2",
              6: "TCP_TIME_WAIT", 7: "TCP_CLOSE", 8: "TCP_CLOSE_WAIT", 9: "TCP_LAST_ACK", 10: "TCP_LISTEN",
              11: "TCP_CLOSING", 12: "TCP_NEW_SYN_RECV"}
FAMILIES = {1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET"}
IPPROTO = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP"}
ETH_P = {0x0800: "IPv4", 0x86DD: "IPv6", 0x0806: "ARP", 0x8100: "802.1Q"}
SLAB_TYPESAFE_BY_RCU = 0x00080000  # include/linux/slab.h (stable since 4.12, formerly SLAB_DESTROY_BY_RCU)


def decoder(tag: str):  # type: ignore[no-untyped-def]
    def wrap(fn):  # type: ignore[no-untyped-def]
        DECODERS[tag] = fn
        return fn

    return wrap


def ip4(v: int) -> str:
    return socket.inet_ntoa(int(v).to_bytes(4, "little"))


def slab_info(prog, addr: int) -> dict | None:  # type: ignore[no-untyped-def]
    """Slab cache, object start, offset, allocated/free, cache flags; None if not a slab address."""
    try:
        from drgn.helpers.linux.slab import slab_object_info

        info = slab_object_info(prog, addr)
    except Exception:  # noqa: BLE001
        return None
    if info is None:
        return None
    cache = info.slab_cache
    out = {"cache": cache.name.string_().decode("utf-8", "replace"), "object": info.address,
           "offset": addr - info.address if info.address else None, "allocated": info.allocated}
    try:
        out["object_size"] = cache.object_size.value_()
        out["flags"] = cache.flags.value_()
        out["typesafe_by_rcu"] = bool(out["flags"] & SLAB_TYPESAFE_BY_RCU)
    except Exception:  # noqa: BLE001
        pass
    try:
        from drgn.helpers.linux.slab import slab_cache_is_merged

        out["merged"] = bool(slab_cache_is_merged(cache))
    except Exception:  # noqa: BLE001
        pass
    return out


# Slab caches whose objects are one struct: a register pointing at the start of an allocated object of one of
# these is that struct, with no DWARF needed (seed 000 found its skb this way, from %r13 saved by nf_iterate).
CACHE_TYPES: dict[str, str] = {
    "skbuff_head_cache": "sk_buff", "skbuff_fclone_cache": "sk_buff",  # (not skbuff_small_head: packet data)
    "TCP": "sock", "TCPv6": "sock", "UDP": "sock", "UDPv6": "sock", "UDP-Lite": "sock", "UDPLITEv6": "sock",
    "RAW": "sock", "RAWv6": "sock", "PING": "sock", "PINGv6": "sock", "UNIX": "sock", "UNIX-STREAM": "sock",
    "NETLINK": "sock", "PACKET": "sock", "MPTCP": "sock",
    "request_sock_TCP": "request_sock", "request_sock_TCPv6": "request_sock",
    "tw_sock_TCP": "inet_timewait_sock", "tw_sock_TCPv6": "inet_timewait_sock",
    "nf_conntrack": "nf_conn", "task_struct": "task_struct", "net_namespace": "net",
}


def object_in_cache(prog, addr: int, tags: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """`(struct T *)addr` when addr is the start of an allocated object of a cache holding a T in `tags`."""
    si = slab_info(prog, addr)
    if not si or si.get("offset") or not si.get("allocated"):
        return None, si
    tag = None if si.get("merged") else CACHE_TYPES.get(si["cache"])
    if tag not in tags:
        return None, si
    try:
        import drgn

        return drgn.Object(prog, prog.type(f"struct {tag} *"), value=addr), si
    except Exception:  # noqa: BLE001 - the type is not in this kernel's debug info / BTF
        return None, si


def slab_text(si: dict) -> str:
    state = "allocated" if si["allocated"] else "FREE" if si["allocated"] is False else "state unknown"
    off = f"+{si['offset']:#x}" if si.get("offset") else ""
    size = f", object size {si['object_size']}" if si.get("object_size") else ""
    merged = ("; a merged cache: other caches of this size share it, so its name does not say the object's type"
              if si.get("merged") else "")
    return f"slab cache {si['cache']}: object {si['object']:#x}{off} ({state}{size}{merged})"


def identify(prog, addr: int) -> str | None:  # type: ignore[no-untyped-def]
    si = slab_info(prog, addr)
    if si:
        return slab_text(si)
    try:
        from drgn.helpers.common.memory import identify_address

        return identify_address(prog, addr)
    except Exception:  # noqa: BLE001
        return None


@decoder("sk_buff")
def decode_skb(prog, skb) -> dict | None:  # type: ignore[no-untyped-def]
    """Device, protocol, IPv4 addresses, UDP/TCP ports, length of the packet in flight."""
    d: dict = {"address": skb.value_(), "len": skb.len.value_(), "data_len": skb.data_len.value_()}
    ev = [f"skb = (struct sk_buff *){skb.value_():#x}: len {d['len']}, data_len {d['data_len']}"]
    dev = None
    try:
        if skb.dev.value_():
            dev = skb.dev.name.string_().decode()
            ev.append(f"skb->dev->name = {dev!r}")
    except Exception:  # noqa: BLE001
        pass
    if dev is None:
        try:
            from drgn import Object

            dst = Object(prog, "struct dst_entry *", skb._skb_refdst.value_() & ~1)
            if dst.value_() and dst.dev.value_():
                dev = dst.dev.name.string_().decode()
                ev.append(f"skb->dev is NULL; the route's device skb_dst(skb)->dev->name = {dev!r}")
        except Exception:  # noqa: BLE001
            pass
    d["dev"] = dev
    proto = socket.ntohs(skb.protocol.value_())
    d["protocol"] = ETH_P.get(proto, f"{proto:#06x}")
    ev.append(f"skb->protocol = {d['protocol']}")
    try:
        from drgn import Object

        head = skb.head.value_()
        nh = skb.network_header.value_()
        iph = Object(prog, "struct iphdr *", head + nh)
        if iph.version.value_() == 4:
            d["saddr"], d["daddr"] = ip4(iph.saddr.value_()), ip4(iph.daddr.value_())
            p = iph.protocol.value_()
            d["ip_protocol"] = IPPROTO.get(p, str(p))
            ev.append(f"IPv4 header at head+{nh:#x}: {d['saddr']} -> {d['daddr']}, protocol {d['ip_protocol']}, "
                      f"tot_len {socket.ntohs(iph.tot_len.value_())}, ttl {iph.ttl.value_()}")
            th = iph.value_() + iph.ihl.value_() * 4
            if p in (6, 17):
                l4 = Object(prog, "struct udphdr *" if p == 17 else "struct tcphdr *", th)
                d["sport"], d["dport"] = socket.ntohs(l4.source.value_()), socket.ntohs(l4.dest.value_())
                ev.append(f"{d['ip_protocol']} header at {th:#x}: port {d['sport']} -> {d['dport']}")
    except Exception as e:  # noqa: BLE001
        ev.append(f"network header not readable: {e}")
    try:
        if skb.sk.value_():
            d["sk"] = skb.sk.value_()
            ev.append(f"skb->sk = {d['sk']:#x}")
    except Exception:  # noqa: BLE001
        pass
    d["evidence"] = ev
    return d


def _sock_common(prog, addr: int):  # type: ignore[no-untyped-def]
    from drgn import Object

    return Object(prog, "struct sock_common *", addr)


@decoder("sock")
def decode_sock(prog, sk) -> dict | None:  # type: ignore[no-untyped-def]
    """Family, state, protocol; a TCP_NEW_SYN_RECV / TIME_WAIT "sock" is really a smaller object."""
    sc = _sock_common(prog, sk.value_())
    fam = sc.skc_family.value_()
    state = sc.skc_state.value_()
    d: dict = {"address": sk.value_(), "family": FAMILIES.get(fam, str(fam)),
               "state": TCP_STATES.get(state, str(state))}
    ev = [f"sock {sk.value_():#x}: skc_family = {d['family']}, skc_state = {d['state']} ({state})"]
    try:
        d["saddr"], d["daddr"] = ip4(sc.skc_rcv_saddr.value_()), ip4(sc.skc_daddr.value_())
        d["sport"], d["dport"] = sc.skc_num.value_(), socket.ntohs(sc.skc_dport.value_())
        ev.append(f"{d['saddr']}:{d['sport']} -> {d['daddr']}:{d['dport']}")
    except Exception:  # noqa: BLE001
        pass
    real = {12: "struct tcp_request_sock", 6: "struct inet_timewait_sock"}.get(state)
    if real:
        try:
            size = prog.type(real).size
        except LookupError:
            size = None
        d["really"], d["really_size"] = real, size
        ev.append(f"state {d['state']}: the object is a {real}" + (f" ({size:#x} bytes)" if size else "")
                  + f", not a full struct sock ({prog.type('struct sock').size:#x} bytes): members past its end "
                    f"are out of bounds")
    else:
        try:
            d["protocol"] = IPPROTO.get(sk.sk_protocol.value_(), str(sk.sk_protocol.value_()))
            ev.append(f"sk_protocol = {d['protocol']}")
        except Exception:  # noqa: BLE001
            pass
    si = slab_info(prog, sk.value_())
    if si:
        d["slab"] = si
        ev.append(slab_text(si))
    d["evidence"] = ev
    return d


DECODERS["sock_common"] = decode_sock
DECODERS["request_sock"] = decode_sock
DECODERS["inet_timewait_sock"] = decode_sock
