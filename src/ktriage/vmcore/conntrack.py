"""Netfilter conntrack objects in a dump: `struct nf_conn` and the packet's link to it (`skb->_nfct`).

The CentOS 7 nf_conntrack post-mortem (CVE-2022-49561) turned on one nf_conn: the UDP packet held in NFQUEUE carried a new, not yet confirmed conntrack,
a clash in `__nf_conntrack_confirm` freed it, and the SLAB_TYPESAFE_BY_RCU cache handed the memory to another
connection while the crashing CPU still used it. What a person reads for that is here: both tuples, the status
bits (IPS_CONFIRMED or not), the reference count, the namespace, and the object's slab state.

Layouts differ by release (3.10: `skb->nfct` + `nfctinfo`, `ct_general.use` an atomic_t, `ct_net` a pointer;
4.11+: `skb->_nfct` with ctinfo in the low 3 bits; 4.13+ refcount_t; `possible_net_t`): every read goes
through the types the dump's debug info or BTF gives, and what a kernel lacks is left out, not guessed.
"""

from __future__ import annotations

import socket
from typing import Any

from drgn import TypeKind

NFCT_INFOMASK = 7  # include/linux/skbuff.h: the ctinfo bits under the nf_conn pointer in skb->_nfct
# enum ip_conntrack_info (include/uapi/linux/netfilter/nf_conntrack_common.h)
CTINFO = {
    0: "IP_CT_ESTABLISHED",
    1: "IP_CT_RELATED",
    2: "IP_CT_NEW",
    3: "IP_CT_ESTABLISHED_REPLY",
    4: "IP_CT_RELATED_REPLY",
    7: "IP_CT_UNTRACKED",
}
# enum ip_conntrack_status bit numbers, used when the kernel's own enum is not in its debug info / BTF;
# bit 12 was IPS_UNTRACKED until 4.14, IPS_NAT_CLASH (same bit) since 5.7
STATUS_BITS = {
    0: "IPS_EXPECTED",
    1: "IPS_SEEN_REPLY",
    2: "IPS_ASSURED",
    3: "IPS_CONFIRMED",
    4: "IPS_SRC_NAT",
    5: "IPS_DST_NAT",
    6: "IPS_SEQ_ADJUST",
    7: "IPS_SRC_NAT_DONE",
    8: "IPS_DST_NAT_DONE",
    9: "IPS_DYING",
    10: "IPS_FIXED_TIMEOUT",
    11: "IPS_TEMPLATE",
    12: "IPS_UNTRACKED/IPS_NAT_CLASH",
    13: "IPS_HELPER",
    14: "IPS_OFFLOAD",
    15: "IPS_HW_OFFLOAD",
}
IPS_CONFIRMED, IPS_DYING = 1 << 3, 1 << 9
L4 = {1: "icmp", 6: "tcp", 17: "udp", 33: "dccp", 47: "gre", 58: "icmpv6", 132: "sctp"}


def status_bits(prog, value: int) -> list[str]:
    """Names of the set status bits, from the kernel's enum when its types have it."""
    names = dict(STATUS_BITS)
    try:
        for e in prog.type("enum ip_conntrack_status").enumerators:
            if e.name.endswith("_BIT"):
                names[e.value] = e.name[:-4]
    except (LookupError, AttributeError):
        pass
    return [names.get(b, f"bit{b}") for b in range(64) if value >> b & 1]


def _count(member) -> int:
    """refcount_t (`refs.counter`) or atomic_t (`counter`)."""
    for path in (("refs", "counter"), ("counter",)):
        o = member
        try:
            for p in path:
                o = getattr(o, p)
            return o.value_()
        except AttributeError:
            continue
    return member.value_()


def _addr(prog, u3, l3num: int) -> str:
    if l3num == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, prog.read(u3.address_of_().value_(), 16))
    return socket.inet_ntoa(prog.read(u3.address_of_().value_(), 4))


def tuple_text(prog, t) -> dict:
    """One direction's tuple as addresses, ports and protocol."""
    l3num = t.src.l3num.value_()
    proto = t.dst.protonum.value_()
    d = {
        "src": _addr(prog, t.src.u3, l3num),
        "dst": _addr(prog, t.dst.u3, l3num),
        "l3": l3num,
        "protocol": L4.get(proto, str(proto)),
    }
    if proto in (6, 17, 33, 132):
        d["sport"], d["dport"] = socket.ntohs(t.src.u.all.value_()), socket.ntohs(t.dst.u.all.value_())
    elif proto in (1, 58):
        d["type"], d["code"] = t.dst.u.icmp.type.value_(), t.dst.u.icmp.code.value_()
    return d


def flow_text(d: dict) -> str:
    if "sport" in d:
        return f"{d['protocol']} {d['src']}:{d['sport']} -> {d['dst']}:{d['dport']}"
    extra = f" type {d['type']} code {d['code']}" if "type" in d else ""
    return f"{d['protocol']} {d['src']} -> {d['dst']}{extra}"


def decode_nf_conn(prog, ct) -> dict:
    """Tuples, status, use count, namespace and slab state of an nf_conn, each with the member it was read from."""
    from ktriage.vmcore.decoders import slab_info, slab_text

    d: dict[str, Any] = {"address": ct.value_()}
    ev = []
    si = slab_info(prog, ct.value_())
    if si:
        d["slab"] = si
        ev.append(
            slab_text(si)
            + (
                " — SLAB_TYPESAFE_BY_RCU: a freed nf_conn is reused while RCU readers may still hold it"
                if si.get("typesafe_by_rcu")
                else ""
            )
        )
        if si.get("allocated") is False:
            ev.append("the object is FREE now: the members below are what its memory holds, not a live connection")
    try:
        for k, label in ((0, "original"), (1, "reply")):
            t = tuple_text(prog, ct.tuplehash[k].tuple)
            d[label] = t
            ev.append(f"ct->tuplehash[IP_CT_DIR_{label.upper()}].tuple: {flow_text(t)}")
    except Exception as e:  # noqa: BLE001 - drgn.FaultError / LookupError on a damaged or other-layout object
        ev.append(f"tuples not readable: {e}")
    try:
        st = ct.status.value_()
        d["status"], d["status_bits"] = st, status_bits(prog, st)
        d["confirmed"], d["dying"] = bool(st & IPS_CONFIRMED), bool(st & IPS_DYING)
        ev.append(
            f"ct->status = {st:#x} ({'|'.join(d['status_bits']) or 'no bits'})"
            + (
                ""
                if d["confirmed"]
                else ": not IPS_CONFIRMED, i.e. not yet in the conntrack hash (the first "
                "packet of the connection has not passed the confirm hook)"
            )
        )
    except Exception as e:  # noqa: BLE001
        ev.append(f"status not readable: {e}")
    try:
        d["use"] = _count(ct.ct_general.use)
        ev.append(f"ct->ct_general.use = {d['use']}")
    except Exception:  # noqa: BLE001
        pass
    try:
        net = ct.ct_net
        if net.type_.kind != TypeKind.POINTER:  # possible_net_t: a struct holding `net` only with CONFIG_NET_NS
            net = net.net
        v = net.value_()
        d["net"] = v
        name = None
        try:
            sym = prog.symbol(v)
            name = sym.name if sym.address == v else None
        except LookupError:
            pass
        d["net_name"] = name
        ev.append(f"ct->ct_net = {v:#x}" + (f" (&{name})" if name else " (NULL)" if not v else ""))
    except (AttributeError, LookupError):  # no CONFIG_NET_NS: an empty possible_net_t, one namespace only
        pass
    d["evidence"] = ev
    return d


def skb_conntrack(prog, skb) -> tuple[int, int] | None:
    """(nf_conn address, ctinfo) the packet points at, or None when it carries no conntrack."""
    try:
        v = skb._nfct.value_()
        ct, info = v & ~NFCT_INFOMASK, v & NFCT_INFOMASK
    except AttributeError:
        try:  # before 4.11
            ct, info = skb.nfct.value_(), skb.nfctinfo.value_()
        except AttributeError:
            return None
    return (ct, info) if ct else None


def ct_object(prog, addr: int):
    import drgn

    return drgn.Object(prog, "struct nf_conn *", addr)
