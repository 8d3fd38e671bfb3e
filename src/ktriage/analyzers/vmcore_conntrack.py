"""vmcore.conntrack: the netfilter connections the crashed thread was handling, decoded (ktriage.vmcore.conntrack).

Found as the conntrack a packet in the crashed thread's frames carries (`skb->_nfct`, with its ctinfo), then as
DWARF frame variables (`struct nf_conn *ct`, `struct nf_conntrack *`) and as registers pointing at the start of an
allocated object of the `nf_conntrack` slab cache (no DWARF needed). The CentOS 7 nf_conntrack post-mortem's
question (CVE-2022-49561), "was this conntrack confirmed, and is its memory still the same connection?", is answered
from the status bits, the tuples and the slab state.
"""

from __future__ import annotations

from ktriage.analyzers import AnalysisContext, Skip, analyzer
from ktriage.analyzers.vmcore_analysis import _found_as, _frame_name, _session, _trace, _typed_in_frames
from ktriage.model import Finding


def _conns(prog, trace):
    """(frame index, how found, nf_conn address, ctinfo or None), each connection once."""
    from ktriage.vmcore.conntrack import skb_conntrack

    seen: set[int] = set()
    for i, n, skb in _typed_in_frames(trace, ("sk_buff",), prog=prog):
        try:
            found = skb_conntrack(prog, skb)
        except Exception:  # noqa: BLE001 - drgn.FaultError
            continue
        if found and found[0] not in seen:
            seen.add(found[0])
            var = n.split(" ")[0]
            yield (
                i,
                f"found as `{var}->_nfct`, the conntrack of packet `{n}` in frame #{i} {_frame_name(trace[i])}",
                found[0],
                found[1],
            )
    # then the connections held directly (a variable, or a register at an nf_conntrack object): after the packets,
    # so a connection that is both keeps its packet's ctinfo (5.10's hook left it in R8 too)
    for i, n, o in _typed_in_frames(trace, ("nf_conn", "nf_conntrack"), prog=prog):
        v = o.value_()
        if v not in seen:
            seen.add(v)
            yield i, _found_as(n, i, trace, "nf_conntrack"), v, None


@analyzer("vmcore.conntrack", order=67, needs=("vmcore",))
def analyze_conntrack(ctx: AnalysisContext) -> list[Finding]:
    from ktriage.vmcore.conntrack import CTINFO, ct_object, decode_nf_conn, flow_text

    s = _session(ctx)
    trace = _trace(s)
    out = []
    for i, how, addr, info in _conns(s.prog, trace):
        try:
            d = decode_nf_conn(s.prog, ct_object(s.prog, addr))
        except Exception:  # noqa: BLE001
            continue
        ev = [how] + d.pop("evidence")
        if info is not None:
            d["ctinfo"] = CTINFO.get(info, str(info))
        flow = flow_text(d["original"]) if "original" in d else "tuples unreadable"
        si = d.get("slab") or {}
        state = (
            ""
            if not si
            else ", FREE in its slab cache"
            if si.get("allocated") is False
            else f", allocated ({si['cache']}" + (", SLAB_TYPESAFE_BY_RCU)" if si.get("typesafe_by_rcu") else ")")
        )
        st = ""
        if "status" in d:
            st = (
                f", status {d['status']:#x}"
                + (" confirmed" if d["confirmed"] else " NOT confirmed")
                + (", dying" if d["dying"] else "")
            )
        summary = (
            f"Conntrack {addr:#x} in {_frame_name(trace[i])}: {flow}{st}"
            + (f", use {d['use']}" if "use" in d else "")
            + (f", {d['ctinfo']}" if "ctinfo" in d else "")
            + f"{state}."
        )
        conf = "high" if si.get("allocated") is not False else "medium"
        out.append(
            Finding("vmcore.conntrack", summary, tuple(ev), conf, "vmcore.conntrack", {**d, "frame": i, "found": how})
        )
        if len(out) >= 4:
            break
    if not out:
        raise Skip("no nf_conn among the crashed thread's frame variables, registers or packets")
    return out
