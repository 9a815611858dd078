#!/usr/bin/python3
"""Summarise a bench/run.sh run: parse wrk output, print the table, write JSON.

    report.py WORK_DIR RESULTS_DIR

WORK_DIR is laid out by run.sh:
    meta/KEY                 run settings (mode, duration, threads, ...)
    peers/NAME/KEY           per-peer facts (group, ref, status, note, port,
                             version, cmd, setup, app, path, keepalive,
                             rss_idle, rss_after = "KB NPROCS")
    raw/NAME-roundN.txt      wrk --latency output of each measured round
    raw/NAME-roundN.starved  connections never accepted during the round

Writes RESULTS_DIR/latest.json, RESULTS_DIR/latest.txt and a copy of the
JSON under RESULTS_DIR/history/. Standard library only.
"""

import datetime
import json
import os
import re
import statistics
import sys

SCHEMA = 1
UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def read(path, default=""):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return default


def to_ms(text):
    """wrk latency ("812.00us", "1.23ms", "2.01s") -> milliseconds."""
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    return round(float(m.group(1)) * UNITS_MS[m.group(2)], 4) if m else None


def parse_wrk(text):
    """The numbers we keep from one `wrk --latency` run, or None."""
    rps = re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.M)
    if not rps:
        return None
    out = {"requests_per_sec": float(rps.group(1))}
    for pct in ("50", "75", "90", "99"):
        m = re.search(r"^\s*%s%%\s+(\S+)" % pct, text, re.M)
        out["p%s_ms" % pct] = to_ms(m.group(1)) if m else None
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+\w+)", text, re.M)
    if m:
        out["requests"] = int(m.group(1))
        out["elapsed"] = m.group(2)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()))) if m else {}
    )
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx_3xx"] = int(m.group(1)) if m else 0
    return out


def rss_pair(text):
    parts = text.split()
    if len(parts) != 2:
        return None, None
    return int(parts[0]), int(parts[1])


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_rps(v):
    return "-" if v is None else "{:,.0f}".format(v)


def fmt_ms(v):
    if v is None:
        return "-"
    return "{:.0f}us".format(v * 1000) if v < 1 else "{:.2f}ms".format(v)


def fmt_kb(v):
    return "-" if v is None else "{:.1f} MiB".format(v / 1024)


def fmt_ratio(v):
    return "-" if v is None else "{:.2f}x".format(v)


HEADER = ("server", "setup", "keep-alive", "requests/s", "p99", "p50", "RSS after", "procs",
          "ratio req/s", "ratio p99", "")
RIGHT = {3, 4, 5, 6, 7, 8, 9}


def row(s, conns):
    """One table row for server s."""
    if s["status"] == "skipped":
        return (s["name"], "skipped") + ("",) * (len(HEADER) - 2)
    ref = s["reference"]
    flag = []
    if s.get("errors"):
        flag.append("%d errors" % s["errors"])
    if s.get("starved_connections"):
        flag.append("starved %g/%d" % (s["starved_connections"], conns))
    if s["status"] != "ok":
        flag.append(s["status"])
    return (
        s["name"],
        s.get("setup") or "",
        s.get("keepalive") or "",
        fmt_rps(s.get("requests_per_sec")),
        fmt_ms(s.get("p99_ms")),
        fmt_ms(s.get("p50_ms")),
        fmt_kb(s.get("rss_kb_after")),
        str(s.get("processes") or "-"),
        "(ref)" if ref == s["name"] else fmt_ratio(s["ratio_rps"]),
        "(ref)" if ref == s["name"] else fmt_ratio(s["ratio_p99"]),
        ", ".join(flag),
    )


def render(meta, servers, by_name, ratios, rounds):
    """The printed table: one section per group, then notes."""
    lines = []
    lines.append(
        "drover bench  mode=%s  wrk --latency -t%s -c%s -d%s  median of %d round(s)  "
        "%s CPUs shared by wrk and servers"
        % (meta["mode"], meta["threads"], meta["connections"], meta["duration"], rounds, meta["nproc"])
    )
    if meta.get("server_cpus") or meta.get("client_cpus"):
        lines.append("pinning: servers on CPUs %s, wrk on CPUs %s"
                     % (meta.get("server_cpus") or "any", meta.get("client_cpus") or "any"))
    conns = int(meta["connections"])
    groups = []
    for s in servers:
        if s["group"] not in groups:
            groups.append(s["group"])
    sections = []
    for g in groups:
        members = [s for s in servers if s["group"] == g]
        app = members[0].get("app") or ""
        if app not in ("", "-", "hello.so"):
            app = "bench/apps/%s.py" % app
        elif app == "hello.so":
            app = "examples/hello.so"
        title = "[%s] %s, wrk GET %s" % (g, app or "-", members[0].get("path") or "/")
        sections.append((title, [row(s, conns) for s in members]))
    all_rows = [r for _, rs in sections for r in rs]
    widths = [max(len(str(r[i])) for r in all_rows + [HEADER]) for i in range(len(HEADER))]

    def fmt_row(r):
        cells = [str(c).rjust(w) if i in RIGHT else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(r, widths))]
        return "  ".join(cells).rstrip()

    for title, rs in sections:
        lines.append("")
        lines.append(title)
        lines.append(fmt_row(HEADER))
        lines.append("  ".join("-" * w for w in widths).rstrip())
        lines.extend(fmt_row(r) for r in rs)
    lines.append("")
    lines.append("ratio = reference (drover) / server: req/s > 1 means drover is faster; "
                 "p99 < 1 means drover's p99 is lower.")
    lines.append("keep-alive no: the server closes the connection after every response, "
                 "so wrk reconnects for each request.")
    if any(s.get("starved_connections") for s in servers):
        lines.append("starved N/%d: N connections stayed unaccepted in the listen queue through "
                     "the round (median); their requests never completed, so requests/s and "
                     "latency describe only the connections that were served." % conns)
    for key, v in ratios.items():
        lines.append("%s: requests/s %s, p99 %s" % (key, fmt_ratio(v["requests_per_sec"]), fmt_ratio(v["p99"])))
    for s in servers:
        if s["status"] == "skipped":
            lines.append("skipped %s: %s" % (s["name"], s["note"]))
        elif s["status"] != "ok":
            lines.append("FAILED %s: %s" % (s["name"], s["note"]))
        ref = by_name.get(s["reference"])
        if ref is not None and ref is not s and ref["status"] != "ok" and s["status"] == "ok":
            lines.append("no ratio for %s: reference %s did not run" % (s["name"], ref["name"]))
    return "\n".join(lines) + "\n"


def main():
    work, results = sys.argv[1], sys.argv[2]
    meta_dir = os.path.join(work, "meta")
    meta = {k: read(os.path.join(meta_dir, k)) for k in sorted(os.listdir(meta_dir))}
    rounds = int(meta["rounds"])
    names = meta["peers"].split()

    servers = []
    by_name = {}
    for name in names:
        pdir = os.path.join(work, "peers", name)
        p = lambda key: read(os.path.join(pdir, key))  # noqa: E731
        s = {
            "name": name,
            "group": p("group"),
            "reference": p("ref"),
            "status": p("status") or "failed",
            "note": p("note"),
            "version": p("version"),
            "command": p("cmd"),
            "setup": p("setup"),
            "app": p("app"),
            "path": p("path"),
            "keepalive": p("keepalive"),
        }
        if s["status"] == "ok" or p("rss_after"):
            runs = []
            for r in range(1, rounds + 1):
                parsed = parse_wrk(read(os.path.join(work, "raw", "%s-round%d.txt" % (name, r))))
                runs.append(parsed)
            ok = [x for x in runs if x]
            if len(ok) < len(runs) and s["status"] == "ok":
                s["status"] = "failed"
                s["note"] = "wrk produced no result in %d of %d rounds" % (len(runs) - len(ok), len(runs))
            s["rounds"] = runs
            s["requests_per_sec"] = median(x["requests_per_sec"] for x in ok)
            s["p50_ms"] = median(x["p50_ms"] for x in ok)
            s["p99_ms"] = median(x["p99_ms"] for x in ok)
            starved = [read(os.path.join(work, "raw", "%s-round%d.starved" % (name, r)))
                       for r in range(1, rounds + 1)]
            starved = [int(x) for x in starved if x.isdigit()]
            s["starved_connections"] = median(starved) if starved else None
            s["errors"] = sum(sum(x["socket_errors"].values()) + x["non_2xx_3xx"] for x in ok)
            s["rss_kb_idle"], s["processes"] = rss_pair(p("rss_idle"))
            s["rss_kb_after"], n = rss_pair(p("rss_after"))
            s["processes"] = n or s["processes"]
        servers.append(s)
        by_name[name] = s

    # Ratios: reference (a drover peer) over this peer. requests/s: > 1 means
    # drover is faster; p99: < 1 means drover's tail latency is lower.
    ratios = {}
    for s in servers:
        ref = by_name.get(s["reference"])
        s["ratio_rps"] = s["ratio_p99"] = None
        if not ref or ref is s or s.get("requests_per_sec") is None or ref.get("requests_per_sec") is None:
            continue
        s["ratio_rps"] = ref["requests_per_sec"] / s["requests_per_sec"]
        if ref.get("p99_ms") and s.get("p99_ms"):
            s["ratio_p99"] = ref["p99_ms"] / s["p99_ms"]
        ratios["%s/%s" % (ref["name"], s["name"])] = {
            "requests_per_sec": s["ratio_rps"],
            "p99": s["ratio_p99"],
        }

    # ---- table
    text = render(meta, servers, by_name, ratios, rounds)
    sys.stdout.write("\n" + text)

    # ---- files
    doc = {
        "schema": SCHEMA,
        "mode": meta["mode"],
        "started_at": meta.get("started_at"),
        "finished_at": meta.get("finished_at"),
        "git": {"commit": meta.get("git_commit"), "dirty": meta.get("git_dirty") == "yes"},
        "host": {
            "nproc": int(meta["nproc"]),
            "kernel": meta.get("kernel"),
            "cpu": meta.get("cpu_model"),
            "loadavg_before": meta.get("loadavg_before"),
        },
        "wrk": {
            "version": meta.get("wrk_version"),
            "threads": int(meta["threads"]),
            "connections": int(meta["connections"]),
            "duration": meta["duration"],
            "warmup": meta["warmup"],
            "rounds": rounds,
            "aggregate": "median",
        },
        "pinning": {"server_cpus": meta.get("server_cpus") or None, "client_cpus": meta.get("client_cpus") or None},
        "python_workers": int(meta.get("workers") or 0) or None,
        "servers": servers,
        "ratios": ratios,
    }
    for s in servers:
        if s.get("requests_per_sec") is not None:
            s["requests_per_sec"] = round(s["requests_per_sec"], 2)
        for k in ("ratio_rps", "ratio_p99"):
            if s.get(k) is not None:
                s[k] = round(s[k], 4)
    for v in ratios.values():
        for k in v:
            if v[k] is not None:
                v[k] = round(v[k], 4)
    os.makedirs(os.path.join(results, "history"), exist_ok=True)
    blob = json.dumps(doc, indent=2) + "\n"
    with open(os.path.join(results, "latest.json"), "w") as f:
        f.write(blob)
    with open(os.path.join(results, "latest.txt"), "w") as f:
        f.write(text)
    stamp = (meta.get("started_at") or datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))
    stamp = stamp.replace(":", "").replace("-", "")
    mode = re.sub(r"[^A-Za-z0-9_]+", "-", meta["mode"])
    with open(os.path.join(results, "history", "%s-%s.json" % (stamp, mode)), "w") as f:
        f.write(blob)
    print("results: %s" % os.path.join(results, "latest.json"), file=sys.stderr)
    return 0 if all(s["status"] in ("ok", "skipped") for s in servers) else 1


if __name__ == "__main__":
    sys.exit(main())
