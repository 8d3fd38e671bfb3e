"""Object decoders for a vmcore session: plain registered functions `(prog, obj) -> dict | None`.

Each returns the facts read and, under "evidence", lines a person can check (members and values read), or None
when the object is not what the decoder understands. `DECODERS` maps a struct tag to its decoder: sk_buff, sock
(and its smaller request/timewait forms), net_device, task_struct here; nf_conn in ktriage.vmcore.conntrack.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

DECODERS: dict[str, Callable[[Any, Any], dict | None]] = {}

TCP_STATES = {
    1: "TCP_ESTABLISHED",
    2: "TCP_SYN_SENT",
    3: "TCP_SYN_RECV",
    4: "TCP_FIN_WAIT1",
    5: "TCP_FIN_WAIT2",
    6: "TCP_TIME_WAIT",
    7: "TCP_CLOSE",
    8: "TCP_CLOSE_WAIT",
    9: "TCP_LAST_ACK",
    10: "TCP_LISTEN",
    11: "TCP_CLOSING",
    12: "TCP_NEW_SYN_RECV",
}
FAMILIES = {1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET"}
IPPROTO = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP"}
ETH_P = {0x0800: "IPv4", 0x86DD: "IPv6", 0x0806: "ARP", 0x8100: "802.1Q"}
IFF = {
    0x1: "UP",
    0x2: "BROADCAST",
    0x8: "LOOPBACK",
    0x10: "POINTOPOINT",
    0x40: "RUNNING",
    0x100: "PROMISC",
    0x1000: "MULTICAST",
}  # include/uapi/linux/if.h
TCP_FLAGS = {0x01: "FIN", 0x02: "SYN", 0x04: "RST", 0x08: "PSH", 0x10: "ACK", 0x20: "URG", 0x40: "ECE", 0x80: "CWR"}
PF_KTHREAD = 0x00200000  # include/linux/sched.h (stable since 2.6.27)
SLAB_TYPESAFE_BY_RCU = 0x00080000  # include/linux/slab.h (stable since 4.12, formerly SLAB_DESTROY_BY_RCU)


def decoder(tag: str):
    def wrap(fn):
        DECODERS[tag] = fn
        return fn

    return wrap


def ip4(v: int) -> str:
    return socket.inet_ntoa(int(v).to_bytes(4, "little"))


def slab_info(prog, addr: int) -> dict | None:
    """Slab cache, object start, offset, allocated/free, cache flags; None if not a slab address."""
    try:
        from drgn.helpers.linux.slab import slab_object_info

        info = slab_object_info(prog, addr)
    except Exception:  # noqa: BLE001
        return None
    if info is None:
        return None
    cache = info.slab_cache
    out = {
        "cache": cache.name.string_().decode("utf-8", "replace"),
        "object": info.address,
        "offset": addr - info.address if info.address else None,
        "allocated": info.allocated,
    }
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
# these is that struct, with no DWARF needed (the CentOS 7 nf_conntrack post-mortem found its skb this way, from %r13 saved by nf_iterate).
CACHE_TYPES: dict[str, str] = {
    "skbuff_head_cache": "sk_buff",
    "skbuff_fclone_cache": "sk_buff",  # (not skbuff_small_head: packet data)
    "TCP": "sock",
    "TCPv6": "sock",
    "UDP": "sock",
    "UDPv6": "sock",
    "UDP-Lite": "sock",
    "UDPLITEv6": "sock",
    "RAW": "sock",
    "RAWv6": "sock",
    "PING": "sock",
    "PINGv6": "sock",
    "UNIX": "sock",
    "UNIX-STREAM": "sock",
    "NETLINK": "sock",
    "PACKET": "sock",
    "MPTCP": "sock",
    "request_sock_TCP": "request_sock",
    "request_sock_TCPv6": "request_sock",
    "tw_sock_TCP": "inet_timewait_sock",
    "tw_sock_TCPv6": "inet_timewait_sock",
    "nf_conntrack": "nf_conn",
    "task_struct": "task_struct",
    "net_namespace": "net",
}


def object_in_cache(prog, addr: int, tags: tuple[str, ...]):
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
    merged = (
        "; a merged cache: other caches of this size share it, so its name does not say the object's type"
        if si.get("merged")
        else ""
    )
    return f"slab cache {si['cache']}: object {si['object']:#x}{off} ({state}{size}{merged})"


def identify(prog, addr: int) -> str | None:
    si = slab_info(prog, addr)
    if si:
        text = slab_text(si)
        if si["cache"] == "task_struct" and si.get("allocated") and not si.get("offset"):
            who = task_text(prog, addr)
            text += f" = {who}" if who else ""
        return text
    try:
        from drgn.helpers.common.memory import identify_address

        return identify_address(prog, addr)
    except Exception:  # noqa: BLE001
        return None


@decoder("net_device")
def decode_net_device(prog, dev) -> dict | None:
    """Name, ifindex, flags, MTU and the driver (named by its `netdev_ops` table, e.g. `loopback_ops`)."""
    d: dict = {"address": dev.value_(), "name": dev.name.string_().decode("utf-8", "replace")}
    ev = []
    try:
        d["ifindex"], d["mtu"] = dev.ifindex.value_(), dev.mtu.value_()
        fl = dev.flags.value_()
        d["flags"] = [n for b, n in IFF.items() if fl & b]
        ev.append(
            f"net_device {d['name']!r} ({dev.value_():#x}): ifindex {d['ifindex']}, mtu {d['mtu']}, "
            f"flags {fl:#x} ({'|'.join(d['flags']) or 'down'})"
        )
    except Exception:  # noqa: BLE001 - drgn.FaultError: the object is not in the dump
        ev.append(f"net_device {d['name']!r} ({dev.value_():#x})")
    try:
        ops = dev.netdev_ops.value_()
        sym = prog.symbol(ops)
        if sym.address == ops:
            d["ops"] = sym.name
            mod = module_name(prog, ops)
            d["driver_module"] = mod
            ev.append(f"dev->netdev_ops = {sym.name}" + (f" [{mod}]" if mod else "") + " (names the driver)")
    except Exception:  # noqa: BLE001
        pass
    d["evidence"] = ev
    return d


def module_name(prog, addr: int) -> str | None:
    """The module whose memory holds `addr`, None for the kernel image (or no module loaded there)."""
    try:
        import drgn

        m = prog.module(addr)
        return None if isinstance(m, drgn.MainModule) else m.name
    except Exception:  # noqa: BLE001
        return None


@decoder("task_struct")
def decode_task(prog, task) -> dict | None:
    """comm, pid, tgid, state letter, CPU, kernel thread or not: who a task_struct pointer is."""
    from drgn.helpers.linux.sched import task_cpu, task_state_to_char

    d: dict = {
        "address": task.value_(),
        "comm": task.comm.string_().decode("utf-8", "replace"),
        "pid": task.pid.value_(),
        "tgid": task.tgid.value_(),
    }
    try:
        d["state"] = task_state_to_char(task)
        d["cpu"] = task_cpu(task)
    except Exception:  # noqa: BLE001
        pass
    try:
        d["kthread"] = bool(task.flags.value_() & PF_KTHREAD)
    except Exception:  # noqa: BLE001
        pass
    d["evidence"] = [
        f"task {d['comm']}[{d['pid']}] (tgid {d['tgid']}"
        + (f", state {d['state']}" if "state" in d else "")
        + (f", CPU {d['cpu']}" if "cpu" in d else "")
        + (", kernel thread" if d.get("kthread") else "")
        + ")"
    ]
    return d


def task_text(prog, addr: int) -> str | None:
    try:
        import drgn

        return decode_task(prog, drgn.Object(prog, "struct task_struct *", addr))["evidence"][0]
    except Exception:  # noqa: BLE001
        return None


@decoder("sk_buff")
def decode_skb(prog, skb) -> dict | None:
    """Device, protocol, IPv4/IPv6 addresses, UDP/TCP ports and TCP flags, length, and the conntrack the packet
    carries (decoded: both tuples, status, use count)."""
    d: dict = {"address": skb.value_(), "len": skb.len.value_(), "data_len": skb.data_len.value_()}
    ev = [f"skb = (struct sk_buff *){skb.value_():#x}: len {d['len']}, data_len {d['data_len']}"]
    dev = None
    try:
        if skb.dev.value_():
            nd = decode_net_device(prog, skb.dev)
            dev = nd["name"]
            d["device"] = {k: v for k, v in nd.items() if k != "evidence"}
            ev += [f"skb->dev: {e}" for e in nd["evidence"]]
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
        _network(prog, skb, d, ev)
    except Exception as e:  # noqa: BLE001
        ev.append(f"network header not readable: {e}")
    try:
        if skb.sk.value_():
            d["sk"] = skb.sk.value_()
            ev.append(f"skb->sk = {d['sk']:#x}")
    except Exception:  # noqa: BLE001
        pass
    _conntrack(prog, skb, d, ev)
    d["evidence"] = ev
    return d


def _network(prog, skb, d: dict, ev: list[str]) -> None:
    """The IP header at skb->head + network_header, and the TCP/UDP header after it."""
    from drgn import Object

    head = skb.head.value_()
    nh = skb.network_header.value_()
    if nh == 0xFFFF:  # (u16)~0U: not set yet
        ev.append("skb->network_header is not set (~0): no IP header to read")
        return
    version = prog.read_u8(head + nh) >> 4
    if version == 4:
        iph = Object(prog, "struct iphdr *", head + nh)
        d["saddr"], d["daddr"] = ip4(iph.saddr.value_()), ip4(iph.daddr.value_())
        p = iph.protocol.value_()
        th = iph.value_() + iph.ihl.value_() * 4
        ev.append(
            f"IPv4 header at head+{nh:#x}: {d['saddr']} -> {d['daddr']}, protocol {IPPROTO.get(p, p)}, "
            f"tot_len {socket.ntohs(iph.tot_len.value_())}, ttl {iph.ttl.value_()}"
        )
    elif version == 6:
        raw = prog.read(head + nh, 40)
        d["saddr"] = socket.inet_ntop(socket.AF_INET6, raw[8:24])
        d["daddr"] = socket.inet_ntop(socket.AF_INET6, raw[24:40])
        p = raw[6]
        th = head + nh + 40
        ev.append(
            f"IPv6 header at head+{nh:#x}: {d['saddr']} -> {d['daddr']}, next header {IPPROTO.get(p, p)}, "
            f"payload_len {int.from_bytes(raw[4:6], 'big')}, hop_limit {raw[7]}"
        )
    else:
        ev.append(f"no IP header at head+{nh:#x} (version nibble {version})")
        return
    d["ip_protocol"] = IPPROTO.get(p, str(p))
    if p not in (6, 17):
        return
    l4 = prog.read(th, 14)
    d["sport"], d["dport"] = int.from_bytes(l4[0:2], "big"), int.from_bytes(l4[2:4], "big")
    line = f"{d['ip_protocol']} header at {th:#x}: port {d['sport']} -> {d['dport']}"
    if p == 6:
        d["tcp_flags"] = [n for b, n in TCP_FLAGS.items() if l4[13] & b]
        line += f", flags {'|'.join(d['tcp_flags']) or 'none'}"
    ev.append(line)


def _conntrack(prog, skb, d: dict, ev: list[str]) -> None:
    from ktriage.vmcore.conntrack import CTINFO, ct_object, decode_nf_conn, flow_text, skb_conntrack

    try:
        found = skb_conntrack(prog, skb)
    except Exception:  # noqa: BLE001 - drgn.FaultError
        return
    if found is None:
        return
    ct, info = found
    line = f"skb->_nfct = {ct | info:#x}: nf_conn {ct:#x}, ctinfo {CTINFO.get(info, info)}"
    try:
        c = decode_nf_conn(prog, ct_object(prog, ct))
    except Exception as e:  # noqa: BLE001
        ev.append(f"{line}; the nf_conn is not readable: {e}")
        d["conntrack"] = {"address": ct, "ctinfo": CTINFO.get(info, info)}
        return
    c.pop("evidence")
    d["conntrack"] = {**c, "ctinfo": CTINFO.get(info, info)}
    if "original" in c:
        d["conntrack"]["flow"] = flow_text(c["original"])
        line += f": {d['conntrack']['flow']}"
    if "status" in c:
        line += f", status {c['status']:#x}" + ("" if c["confirmed"] else " (not confirmed)")
    ev.append(line + " (decoded in vmcore.conntrack)")


def _sock_common(prog, addr: int):
    from drgn import Object

    return Object(prog, "struct sock_common *", addr)


@decoder("sock")
def decode_sock(prog, sk) -> dict | None:
    """Family, state, protocol; a TCP_NEW_SYN_RECV / TIME_WAIT "sock" is really a smaller object."""
    sc = _sock_common(prog, sk.value_())
    fam = sc.skc_family.value_()
    state = sc.skc_state.value_()
    d: dict = {
        "address": sk.value_(),
        "family": FAMILIES.get(fam, str(fam)),
        "state": TCP_STATES.get(state, str(state)),
    }
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
        ev.append(
            f"state {d['state']}: the object is a {real}"
            + (f" ({size:#x} bytes)" if size else "")
            + f", not a full struct sock ({prog.type('struct sock').size:#x} bytes): members past its end "
            f"are out of bounds"
        )
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


def _decode_nf_conn(prog, ct) -> dict | None:
    from ktriage.vmcore.conntrack import decode_nf_conn

    return decode_nf_conn(prog, ct)


DECODERS["nf_conn"] = _decode_nf_conn
