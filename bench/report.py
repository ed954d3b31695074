#!/usr/bin/env python3
"""Turns one run of bench/run.sh into a Markdown report: the table, the
ratios the performance targets are stated in, memory, login and refresh
figures. Prints it, and with --write replaces the generated block of that
file (between the bench:begin and bench:end markers)."""

import argparse
import re
import sys

BEGIN = "<!-- bench:begin (written by bench/run.sh; edit outside the markers) -->"
END = "<!-- bench:end -->"


def ms(text):
    """wrk latency ("812.00us", "1.59ms", "2.01s") in milliseconds."""
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", text or "")
    if not m:
        return None
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]


def fmt_ms(v):
    return "–" if v is None else (f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms")


def load_results(path):
    rows = {}
    order = []
    for line in open(path):
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 8:
            continue
        key, label, conns, rps, p50, p99, non2xx, errors = parts[:8]
        try:
            rps_v = float(rps)
        except ValueError:
            rps_v = None
        try:
            cpu_v = float(parts[8]) if len(parts) > 8 else None
        except ValueError:
            cpu_v = None
        rows[(key, int(conns))] = {
            "label": label,
            "rps": rps_v,
            "p50": ms(p50),
            "p99": ms(p99),
            "non2xx": int(non2xx or 0),
            "errors": int(errors or 0),
            "cpu": cpu_v,
        }
        if key not in order:
            order.append(key)
    return rows, order


def load_memory(path):
    mem = {}
    for line in open(path):
        k, _, v = line.rstrip("\n").partition("\t")
        mem[k] = v
    return mem


def mib(kib):
    try:
        return f"{int(kib) / 1024:.1f} MiB"
    except (TypeError, ValueError):
        return "–"


def ratio(rows, num, den, conns, field="rps"):
    a, b = rows.get((num, conns)), rows.get((den, conns))
    if not a or not b or not a[field] or not b[field]:
        return None
    return a[field] / b[field]


def ratio_table(w, rows, conns_list, targets, field, at_most):
    """One row a ratio, one column a connection count; a target is met
    when every column is at least (or, with at_most, at most) it."""
    w("| ratio | " + " | ".join(f"{c} conns" for c in conns_list) + " | target |")
    w("|---|" + "---|" * len(conns_list) + "---|")
    for label, num, den, target in targets:
        vals = [ratio(rows, num, den, c, field) for c in conns_list]
        if all(v is None for v in vals):
            continue
        cells = " | ".join("–" if v is None else f"{v:.2f}" for v in vals)
        if target is None:
            verdict = ""
        elif at_most:
            met = all(v is not None and v <= target for v in vals)
            verdict = f"≤ {target:g}: {'met' if met else 'missed'}"
        else:
            met = all(v is not None and v >= target for v in vals)
            verdict = f"≥ {target:g}: {'met' if met else 'missed'}"
        w(f"| {label} | {cells} | {verdict} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--memory", required=True)
    ap.add_argument("--machine", default="")
    ap.add_argument("--versions", default="")
    ap.add_argument("--duration", default="")
    ap.add_argument("--threads", default="")
    ap.add_argument("--callback", default="")
    ap.add_argument("--refresh", default="")
    ap.add_argument("--notes", default="")
    ap.add_argument("--write")
    args = ap.parse_args()

    rows, order = load_results(args.results)
    mem = load_memory(args.memory)
    conns_list = sorted({c for (_, c) in rows if c != 1000})
    out = []
    w = out.append
    w(f"Machine: {args.machine}.  ")
    w(f"Versions: {args.versions}.  ")
    w(
        f"Load: `wrk -t2 -d{args.duration}s`; wrk, the upstream nginx (1 worker), "
        f"the nginx proxy ({args.threads} workers), tollgate ({args.threads} threads), "
        "the peers, Redis and the provider all share the same cores."
    )
    w("")
    w("| | target | conns | requests/s | p50 | p99 | CPU µs/request | non-2xx | socket errors |")
    w("|---|---|---|---|---|---|---|---|---|")
    for conns in conns_list:
        for key in order:
            r = rows.get((key, conns))
            if not r:
                continue
            rps = "–" if r["rps"] is None else f"{r['rps']:,.0f}"
            cpu = "–" if r["cpu"] is None else f"{r['cpu']:.1f}"
            w(
                f"| ({key}) | {r['label']} | {conns} | {rps} | {fmt_ms(r['p50'])} | "
                f"{fmt_ms(r['p99'])} | {cpu} | {r['non2xx']} | {r['errors']} |"
            )
    w("")
    w("Ratios (requests/s, same run):")
    w("")
    targets = [
        ("(c)/(a) tollgate vs upstream directly", "c", "a", None),
        ("(c)/(b) tollgate vs nginx plain proxy", "c", "b", 1.0),
        ("(c)/(c0) tollgate vs the baseline binary", "c", "c0", None),
        ("(c')/(b) tollgate without access log vs nginx plain proxy", "c'", "b", None),
        ("(d)/(c) Redis store vs cookie store", "d", "c", 0.9),
        ("(j)/(c) bearer JWT vs cookie session", "j", "c", 0.9),
        ("(e)/(b) /oauth2/auth vs nginx plain proxy", "e", "b", 1.2),
        ("(e)/(c) /oauth2/auth vs proxied request", "e", "c", None),
        ("(k)/(c) 16 hosts routed vs one upstream", "k", "c", 0.95),
        ("(ct)/(bt) tollgate vs nginx, both over HTTPS", "ct", "bt", 1.0),
        ("(ct2)/(bt2) tollgate vs nginx, both over HTTPS with HTTP/2", "ct2", "bt2", 1.0),
        ("(g)/(g0) 1 MiB through tollgate vs directly", "g", "g0", None),
        ("(c)/(h) tollgate vs Apache + mod_auth_openidc", "c", "h", 6.0),
        ("(c)/(i) tollgate vs oauth2-proxy", "c", "i", 2.0),
    ]
    ratio_table(w, rows, conns_list, targets, "rps", at_most=False)
    w("")
    w(
        "CPU per request (user + system time of the processes serving the "
        "port under test, every thread, over the run, divided by the "
        "requests), same run:"
    )
    w("")
    ratio_table(
        w,
        rows,
        conns_list,
        [
            ("(c)/(b) tollgate vs nginx plain proxy", "c", "b", 1.1),
            ("(c)/(c0) tollgate vs the baseline binary", "c", "c0", None),
            ("(ct)/(bt) tollgate vs nginx, both over HTTPS", "ct", "bt", 1.1),
            ("(ct2)/(bt2) the same with HTTP/2", "ct2", "bt2", 1.1),
            ("(e)/(b) /oauth2/auth vs nginx plain proxy", "e", "b", None),
        ],
        "cpu",
        at_most=True,
    )
    w("")
    w("Latency tollgate adds over the upstream directly, (c) − (a):")
    w("")
    for conns in conns_list:
        a, c = rows.get(("a", conns)), rows.get(("c", conns))
        if a and c and a["p99"] is not None and c["p99"] is not None:
            w(
                f"- {conns} connections: p50 {c['p50'] - a['p50']:+.2f} ms, "
                f"p99 {c['p99'] - a['p99']:+.2f} ms"
                + (" (target at 32: p99 ≤ 0.5 ms)" if conns == 32 else "")
            )
    w("")
    w("tollgate's memory (resident set):")
    w("")
    w(f"- idle, after start: {mib(mem.get('rss_idle_kib'))}")
    if "rss_1000_open_kib" in mem:
        kib, _, held = mem["rss_1000_open_kib"].partition("\t")
        w(f"- with 1,000 connections open, each after one authenticated request ({held} answered 200): {mib(kib)}")
    if "hwm_1000_kib" in mem:
        r = rows.get(("c1000", 1000))
        extra = f" ({r['rps']:,.0f} requests/s, {r['non2xx']} non-2xx, {r['errors']} socket errors)" if r and r["rps"] else ""
        w(f"- peak with 1,000 connections open and busy: {mib(mem['hwm_1000_kib'])}{extra}")
    if "hwm_big_32_kib" in mem and "hwm_huge_32_kib" in mem:
        w(
            f"- peak while 32 clients stream 1 MiB bodies: {mib(mem['hwm_big_32_kib'])}; "
            f"64 MiB bodies: {mib(mem['hwm_huge_32_kib'])}"
        )
    if "soak_kib" in mem:
        samples = [int(s) for s in mem["soak_kib"].split()]
        if samples:
            w(
                f"- soak, 256 connections for {len(samples) * 5} s "
                f"({float(mem.get('soak_rps') or 0):,.0f} requests/s), every 5 s: "
                + ", ".join(f"{s / 1024:.1f}" for s in samples)
                + f" MiB (first to last: {(samples[-1] - samples[0]) / 1024:+.1f} MiB)"
            )
    w(f"- after the run: {mib(mem.get('rss_after_kib'))}")
    if args.callback:
        n, med, p99, prov = args.callback.split("\t")
        w("")
        w(
            f"Login callback, time inside tollgate excluding the provider ({n} logins): "
            f"median {med} ms, p99 {p99} ms (the provider's token endpoint: median {prov} ms)."
        )
    if args.refresh:
        with_r, n_r, without_r, n_plain = args.refresh.split("\t")
        w("")
        w(
            f"A request that refreshes its token: median {with_r} ms ({n_r} refreshes in 50 requests) "
            f"against {without_r} ms for one that does not ({n_plain} refreshes): "
            f"+{float(with_r) - float(without_r):.2f} ms, the provider's token endpoint included."
        )
    notes = [n for n in args.notes.split("\n") if n.strip()]
    if notes:
        w("")
        for n in notes:
            w(f"- {n}")
    text = "\n".join(out) + "\n"
    print(text)

    if args.write:
        try:
            doc = open(args.write).read()
        except FileNotFoundError:
            doc = f"# Benchmarks\n\n{BEGIN}\n{END}\n"
        if BEGIN in doc and END in doc:
            head, rest = doc.split(BEGIN, 1)
            _, tail = rest.split(END, 1)
            doc = f"{head}{BEGIN}\n{text}{END}{tail}"
        else:
            doc = f"{doc.rstrip()}\n\n{BEGIN}\n{text}{END}\n"
        open(args.write, "w").write(doc)
        print(f"bench: report written to {args.write}", file=sys.stderr)


if __name__ == "__main__":
    main()
