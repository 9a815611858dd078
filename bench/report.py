#!/usr/bin/python3
"""Summarise a bench/run.sh run: parse wrk output, print the table, write JSON.

    report.py WORK_DIR RESULTS_DIR

WORK_DIR is laid out by run.sh:
    meta/KEY                 run settings (mode, duration, threads, ...)
    groups/GROUP/KEY         per-group facts (connections; optional baseline,
                             sleep_ms, goal_vs, goal_ideal)
    peers/NAME/KEY           per-peer facts (group, ref, status, note, port,
                             version, cmd, setup, app, path, keepalive,
                             connections, app_threads,
                             rss_idle, rss_after = "KB NPROCS")
    raw/NAME-roundN.txt      wrk --latency output of each measured round (or
                             bench/ws_load's, for a group whose client is
                             ws_load: the same lines with "messages" for
                             "requests", plus failed handshakes, bad echoes
                             and ws_load's own CPU use)
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
    """The numbers we keep from one `wrk --latency` (or bench/ws_load) run,
    or None. For ws_load, "requests" are echoed messages."""
    rps = re.search(r"^(?:Requests|Messages)/sec:\s*([0-9.]+)", text, re.M)
    if not rps:
        return None
    out = {"requests_per_sec": float(rps.group(1))}
    for pct in ("50", "75", "90", "99"):
        m = re.search(r"^\s*%s%%\s+(\S+)" % pct, text, re.M)
        out["p%s_ms" % pct] = to_ms(m.group(1)) if m else None
    m = re.search(r"^\s*(\d+) (?:requests|messages) in ([0-9.]+\w+)", text, re.M)
    if m:
        out["requests"] = int(m.group(1))
        out["elapsed"] = m.group(2)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()))) if m else {}
    )
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx_3xx"] = int(m.group(1)) if m else 0
    # ws_load only: WebSocket upgrades refused or malformed, echoes that did
    # not match what was sent, and its own CPU use (% of its one core).
    for key, label in (("failed_handshakes", "Failed handshakes"), ("bad_echoes", "Bad echoes")):
        m = re.search(r"%s: (\d+)" % label, text)
        if m:
            out[key] = int(m.group(1))
    m = re.search(r"^Client CPU: ([0-9.]+)%", text, re.M)
    if m:
        out["client_cpu_pct"] = float(m.group(1))
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


def fmt_spread(d):
    """min/median/max of a ratio over the rounds."""
    if d is None:
        return "-"
    return "min %s median %s max %s" % (fmt_ratio(d["min"]), fmt_ratio(d["median"]), fmt_ratio(d["max"]))


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def round_ratios(ref, s):
    """ref/s in each round where both ran: the two ran next to each other in
    time, so drift that hits a round hits both (min/median/max over rounds)."""
    rps, p99 = [], []
    for a, b in zip(ref.get("rounds") or [], s.get("rounds") or []):
        if not a or not b:
            continue
        if b["requests_per_sec"]:
            rps.append(a["requests_per_sec"] / b["requests_per_sec"])
        if (a.get("p99_ms") and b.get("p99_ms")
                and not a.get("p99_over_timeout") and not b.get("p99_over_timeout")):
            p99.append(a["p99_ms"] / b["p99_ms"])
    return {"rounds": len(rps), "requests_per_sec": spread(rps), "p99": spread(p99)}


def fmt_frac(v):
    return "-" if v is None else "{:.2f}".format(v)


def fmt_timeout(ms):
    return "{:g}s".format(ms / 1000)


def fmt_p99(s, timeout_ms):
    """p99, or ">timeout" when more than 1 % of the responses timed out."""
    if s.get("p99_over_timeout"):
        return ">" + fmt_timeout(timeout_ms)
    return fmt_ms(s.get("p99_ms"))


HEADER = ("server", "setup", "keep-alive", "requests/s", "p99", "p50", "RSS after", "procs",
          "ratio req/s", "ratio p99", "")
RIGHT = {3, 4, 5, 6, 7, 8, 9}
# A group with a baseline or a sleeping app (blocking) shows timeouts and
# errors in their own columns, the requests/s answered in time over the
# baseline's ("vs"), and the fraction of the ideal, instead of the ratios to
# drover (which stay in the JSON).
HEADER_VS = ("server", "setup", "keep-alive", "requests/s", "p99", "p50", "timeouts", "errors",
             "vs %s", "of ideal", "RSS after", "procs", "")
RIGHT_VS = {3, 4, 5, 6, 7, 8, 9, 10, 11}


def flags(s, conns, with_errors):
    flag = []
    if with_errors and s.get("errors"):
        flag.append("%d errors" % s["errors"])
    if s.get("starved_connections"):
        flag.append("starved %g/%d" % (s["starved_connections"], conns))
    if s["status"] != "ok":
        flag.append(s["status"])
    return ", ".join(flag)


def row(s, timeout_ms):
    """One table row for server s, in a section without a baseline."""
    if s["status"] == "skipped":
        return (s["name"], "skipped") + ("",) * (len(HEADER) - 2)
    ref = s["reference"]
    return (
        s["name"],
        s.get("setup") or "",
        s.get("keepalive") or "",
        fmt_rps(s.get("requests_per_sec")),
        fmt_p99(s, timeout_ms),
        fmt_ms(s.get("p50_ms")),
        fmt_kb(s.get("rss_kb_after")),
        str(s.get("processes") or "-"),
        "(ref)" if ref == s["name"] else fmt_ratio(s["ratio_rps"]),
        "(ref)" if ref == s["name"] else fmt_ratio(s["ratio_p99"]),
        flags(s, s["connections"], True),
    )


def row_vs(s, timeout_ms):
    """One table row for server s, in a section with a baseline or an ideal."""
    if s["status"] == "skipped":
        return (s["name"], "skipped") + ("",) * (len(HEADER_VS) - 2)
    have = s.get("requests_per_sec") is not None
    return (
        s["name"],
        s.get("setup") or "",
        s.get("keepalive") or "",
        fmt_rps(s.get("requests_per_sec")),
        fmt_p99(s, timeout_ms),
        fmt_ms(s.get("p50_ms")),
        str(s["timeouts"]) if have else "-",
        str(s["errors"] - s["timeouts"]) if have else "-",
        fmt_ratio(s.get("vs_baseline")),
        fmt_frac(s.get("of_ideal")),
        fmt_kb(s.get("rss_kb_after")),
        str(s.get("processes") or "-"),
        flags(s, s["connections"], False),
    )


def fmt_table(header, rows, right):
    """Lines of a table: header, rule, rows; columns as wide as their widest cell."""
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]

    def fmt_row(r):
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(r, widths))]
        return "  ".join(cells).rstrip()

    return [fmt_row(header), "  ".join("-" * w for w in widths).rstrip()] + [fmt_row(r) for r in rows]


def is_ws(facts):
    """The group is measured with bench/ws_load (WebSocket echo), not wrk."""
    return facts.get("client") == "ws_load"


def section_title(g, facts, members):
    app = members[0].get("app") or ""
    if app not in ("", "-", "hello.so"):
        app = "bench/apps/%s.py" % app
    elif app == "hello.so":
        app = "examples/hello.so"
    if facts.get("sleep_ms"):
        app += " (sleeps %s ms per request)" % facts["sleep_ms"]
    if is_ws(facts):
        return "[%s] %s, ws_load -c%s: WebSocket echo of %s-byte text messages on %s" % (
            g, app or "-", facts["connections"], facts.get("message_size") or "?",
            members[0].get("path") or "/")
    if facts.get("client") == "wrk16":
        return "[%s] %s, wrk -c%s, 16 pipelined GET %s per connection" % (
            g, app or "-", facts["connections"], members[0].get("path") or "/")
    return "[%s] %s, wrk -c%s GET %s" % (g, app or "-", facts["connections"],
                                          members[0].get("path") or "/")


def ws_lines(g, members):
    """What the numbers of a ws_load group mean, and ws_load's own CPU use:
    near 100 % of its core, the client, not the server, sets the rate."""
    lines = ["messages/s [%s]: echoes received per second, all clients together; p50/p99: "
             "round trip from sending a message to its echo." % g]
    cpu = [(s["name"], s.get("client_cpu_pct")) for s in members if s.get("client_cpu_pct") is not None]
    if cpu:
        lines.append("ws_load CPU [%s] (median round, of its one core): %s"
                     % (g, ", ".join("%s %.0f%%" % (n, c) for n, c in cpu)))
        busy = [n for n, c in cpu if c >= 90]
        if busy:
            lines.append("warning [%s]: ws_load used 90%% or more of its CPU for %s: the load "
                         "generator may be what limits messages/s there" % (g, ", ".join(busy)))
    return lines


def goal_lines(g, facts, members, by_name):
    """The group's goals, checked on its reference (drover) peer."""
    if not facts.get("goal_vs") and not facts.get("goal_ideal"):
        return []
    ref = by_name.get(members[0]["reference"])
    if ref is None or ref["status"] != "ok" or ref.get("requests_per_sec") is None:
        return ["goals [%s]: not checked, %s did not run" % (g, members[0]["reference"])]
    checks = []
    if facts.get("goal_vs"):
        checks.append(("%s vs %s" % (ref["name"], facts["baseline"]), ref.get("vs_baseline"),
                       float(facts["goal_vs"]), fmt_ratio))
    if facts.get("goal_ideal"):
        checks.append(("%s of ideal" % ref["name"], ref.get("of_ideal"),
                       float(facts["goal_ideal"]), fmt_frac))
    # Timeouts, errors and starved connections fail a goal whatever the rate.
    spoilers = []
    if ref.get("timeouts"):
        spoilers.append("%d timeouts" % ref["timeouts"])
    if ref["errors"] - ref["timeouts"]:
        spoilers.append("%d errors" % (ref["errors"] - ref["timeouts"]))
    if ref.get("starved_connections"):
        spoilers.append("%g starved connections" % ref["starved_connections"])
    parts = []
    for label, value, goal, fmt in checks:
        if value is None:
            verdict = "no figure"
        elif value >= goal and not spoilers:
            verdict = "met"
        else:
            verdict = "NOT met"
        parts.append("%s %s (goal >= %s): %s" % (label, fmt(value), fmt(goal), verdict))
    line = "goals [%s]: %s" % (g, "; ".join(parts))
    if spoilers:
        line += "; not met while %s has %s" % (ref["name"], ", ".join(spoilers))
    return [line]


def render(meta, groups, servers, by_name, ratios, rounds):
    """The printed table: one section per group, then notes."""
    timeout_ms = float(meta.get("wrk_timeout_ms") or 2000)
    lines = []
    conns = sorted({facts["connections"] for facts in groups.values() if not is_ws(facts)}, key=int)
    ws_conns = sorted({facts["connections"] for facts in groups.values() if is_ws(facts)}, key=int)
    pinned = meta.get("server_cpus") or meta.get("client_cpus")
    clients = []
    if conns:
        clients.append("wrk --latency -t%s -c%s -d%s" % (meta["threads"], "/".join(conns), meta["duration"]))
    if ws_conns:
        clients.append("ws_load -c%s -d%s" % ("/".join(ws_conns), meta["duration"]))
    client_names = " and ".join(c.split()[0] for c in clients)
    lines.append(
        "drover bench  mode=%s  %s  median of %d round(s)  %s CPUs%s"
        % (meta["mode"], ", ".join(clients), rounds, meta["nproc"],
           "" if pinned else " shared by %s and servers" % client_names)
    )
    if pinned:
        lines.append("pinning: servers on CPUs %s, %s on CPUs %s"
                     % (meta.get("server_cpus") or "any", client_names, meta.get("client_cpus") or "any"))
    notes = []
    any_plain = any_vs = False
    for g, facts in groups.items():
        members = [s for s in servers if s["group"] == g]
        if not members:
            continue
        lines.append("")
        lines.append(section_title(g, facts, members))
        if facts.get("baseline") or facts.get("sleep_ms"):
            any_vs = True
            header = list(HEADER_VS)
            header[8] = header[8] % (facts.get("baseline") or "-")
            lines.extend(fmt_table(tuple(header), [row_vs(s, timeout_ms) for s in members], RIGHT_VS))
            notes.extend(goal_lines(g, facts, members, by_name))
            ideals = {}
            for s in members:
                if s.get("ideal_rps"):
                    ideals.setdefault((s["app_threads"], s["ideal_rps"]), []).append(s["name"])
            for (threads, ideal), names in ideals.items():
                notes.append("ideal [%s] = app threads / sleep = %d / %.3f s = %s req/s (%s)"
                             % (g, threads, float(facts["sleep_ms"]) / 1000, fmt_rps(ideal),
                                ", ".join(names)))
        else:
            any_plain = True
            header = list(HEADER)
            if is_ws(facts):
                header[3] = "messages/s"
                header[8] = "ratio msg/s"
                notes.extend(ws_lines(g, members))
            lines.extend(fmt_table(tuple(header), [row(s, timeout_ms) for s in members], RIGHT))
    lines.append("")
    if any_plain:
        lines.append("ratio = reference (drover) / server: %s > 1 means drover is faster; "
                     "p99 < 1 means drover's p99 is lower."
                     % ("req/s (msg/s)" if any(is_ws(f) for f in groups.values()) else "req/s"))
    if any_vs:
        lines.append("timeouts: responses slower than wrk's %s timeout; wrk counts them in "
                     "requests/s but leaves them out of its percentiles (p99 shows >%s when they "
                     "are over 1 %%); errors: connect/read/write errors and non-2xx responses."
                     % (fmt_timeout(timeout_ms), fmt_timeout(timeout_ms)))
        lines.append("vs and of ideal count only 2xx responses within the timeout: "
                     "requests/s x (1 - (timeouts + non-2xx) / requests); vs = server / baseline.")
    lines.append("keep-alive no: the server closes the connection after every response, "
                 "so wrk reconnects for each request.")
    if any(s.get("starved_connections") for s in servers):
        lines.append("starved N/C: N of the C connections stayed unaccepted in the listen queue "
                     "through the round (median); their requests never completed, so requests/s "
                     "and latency describe only the connections that were served.")
    lines.extend(notes)
    for key, v in ratios.items():
        peer = by_name.get(key.split("/", 1)[1])
        unit = "messages/s" if peer and is_ws(groups.get(peer["group"], {})) else "requests/s"
        line = "%s: %s %s, p99 %s" % (key, unit, fmt_ratio(v["requests_per_sec"]), fmt_ratio(v["p99"]))
        spread = v.get("per_round", {})
        if spread.get("rounds", 0) > 1:
            line += "; per round (%d): %s %s, p99 %s" % (
                spread["rounds"], unit, fmt_spread(spread["requests_per_sec"]), fmt_spread(spread["p99"]))
        lines.append(line)
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
    timeout_ms = float(meta.get("wrk_timeout_ms") or 2000)
    groups = {}
    for g in meta.get("groups", "").split():
        gdir = os.path.join(work, "groups", g)
        keys = os.listdir(gdir) if os.path.isdir(gdir) else []
        groups[g] = {k: read(os.path.join(gdir, k)) for k in sorted(keys)}
        groups[g].setdefault("connections", meta["connections"])

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
            "connections": int(p("connections") or meta["connections"]),
            "app_threads": int(p("app_threads")) if p("app_threads").isdigit() else None,
        }
        groups.setdefault(s["group"], {"connections": str(s["connections"])})
        if s["status"] == "ok" or p("rss_after"):
            runs = []
            for r in range(1, rounds + 1):
                parsed = parse_wrk(read(os.path.join(work, "raw", "%s-round%d.txt" % (name, r))))
                runs.append(parsed)
            ok = [x for x in runs if x]
            if len(ok) < len(runs) and s["status"] == "ok":
                s["status"] = "failed"
                s["note"] = "%s produced no result in %d of %d rounds" % (
                    groups[s["group"]].get("client") or "wrk", len(runs) - len(ok), len(runs))
            s["rounds"] = runs
            s["requests_per_sec"] = median(x["requests_per_sec"] for x in ok)
            s["p50_ms"] = median(x["p50_ms"] for x in ok)
            # wrk leaves responses slower than its timeout out of the
            # percentiles: with more than 1 % of them, the real p99 is
            # above the timeout, whatever wrk prints.
            for x in ok:
                x["timeouts"] = x["socket_errors"].get("timeout", 0)
                x["p99_over_timeout"] = x["timeouts"] > 0.01 * max(x.get("requests") or 0, 1)
                good = (x.get("requests") or 0) - x["timeouts"] - x["non_2xx_3xx"]
                x["ok_requests_per_sec"] = (
                    x["requests_per_sec"] * max(good, 0) / x["requests"] if x.get("requests") else 0.0)
            p99 = median(float("inf") if x["p99_over_timeout"] else x["p99_ms"] for x in ok)
            s["p99_over_timeout"] = p99 == float("inf")
            s["p99_ms"] = None if s["p99_over_timeout"] else p99
            s["ok_requests_per_sec"] = median(x["ok_requests_per_sec"] for x in ok)
            s["timeouts"] = sum(x["timeouts"] for x in ok)
            starved = [read(os.path.join(work, "raw", "%s-round%d.starved" % (name, r)))
                       for r in range(1, rounds + 1)]
            starved = [int(x) for x in starved if x.isdigit()]
            s["starved_connections"] = median(starved) if starved else None
            s["errors"] = sum(sum(x["socket_errors"].values()) + x["non_2xx_3xx"]
                              + x.get("failed_handshakes", 0) + x.get("bad_echoes", 0) for x in ok)
            s["client_cpu_pct"] = median(x.get("client_cpu_pct") for x in ok)
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
            "per_round": round_ratios(ref, s),
        }

    # The baseline comparison and the ideal (groups that define them), on
    # the requests/s answered with 2xx within wrk's timeout.
    for s in servers:
        facts = groups.get(s["group"], {})
        base = by_name.get(facts.get("baseline"))
        rate = s.get("ok_requests_per_sec")
        s["vs_baseline"] = s["of_ideal"] = s["ideal_rps"] = None
        if rate is not None and base is not None and base.get("ok_requests_per_sec"):
            s["vs_baseline"] = rate / base["ok_requests_per_sec"]
        if facts.get("sleep_ms") and s.get("app_threads"):
            s["ideal_rps"] = s["app_threads"] * 1000.0 / float(facts["sleep_ms"])
            if rate is not None:
                s["of_ideal"] = rate / s["ideal_rps"]

    # ---- table
    text = render(meta, groups, servers, by_name, ratios, rounds)
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
            "timeout_ms": timeout_ms,
            "duration": meta["duration"],
            "warmup": meta["warmup"],
            "rounds": rounds,
            "aggregate": "median",
        },
        "ws_load": ({"binary": meta.get("ws_load"), "libraries": meta.get("ws_load_libs"),
                     "duration": meta["duration"], "warmup": meta["warmup"], "rounds": rounds,
                     "aggregate": "median"} if meta.get("ws_load") else None),
        "pinning": {"server_cpus": meta.get("server_cpus") or None, "client_cpus": meta.get("client_cpus") or None},
        "python_workers": int(meta.get("workers") or 0) or None,
        "groups": groups,
        "servers": servers,
        "ratios": ratios,
    }
    for facts in groups.values():
        facts["connections"] = int(facts["connections"])
        for k in ("sleep_ms", "goal_vs", "goal_ideal"):
            if k in facts:
                facts[k] = float(facts[k])
        if "message_size" in facts:
            facts["message_size"] = int(facts["message_size"])
    for s in servers:
        for k in ("requests_per_sec", "ok_requests_per_sec", "ideal_rps"):
            if s.get(k) is not None:
                s[k] = round(s[k], 2)
        for k in ("ratio_rps", "ratio_p99", "vs_baseline", "of_ideal"):
            if s.get(k) is not None:
                s[k] = round(s[k], 4)
    for v in ratios.values():
        for k in ("requests_per_sec", "p99"):
            if v[k] is not None:
                v[k] = round(v[k], 4)
            d = v["per_round"][k]
            for m in d or ():
                d[m] = round(d[m], 4)
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
