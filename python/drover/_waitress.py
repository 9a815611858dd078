"""waitress.serve()'s keywords as drover command-line flags.

command_line(kw) is the whole module: it takes the keywords a script gave
serve() and returns (flags, notes), drover's flags and one line of text
for each keyword drover has no use for. Values are converted as waitress's
Adjustments converts them (int("4"), booleans from "yes"/"true"/"1"), and
a keyword that is not waitress's (nor one of drover's own, workers and
timeout) raises ValueError("Unknown adjustment 'name'"), as waitress does.

Addresses are resolved here exactly as waitress resolves them (its listen
syntax, "*", the ipv4/ipv6 switches, getaddrinfo with AI_PASSIVE) and each
result becomes a numeric --bind. A keyword the script did not give keeps
waitress's behaviour where drover's default differs in a way the app would
notice: 0.0.0.0:8080, four threads, one process, no time limit on a
request.
"""

import os
import socket

TRUTHY = frozenset(("t", "true", "y", "yes", "on", "1"))


def asbool(value):
    if isinstance(value, bool) or value is None:
        return bool(value)
    return str(value).strip().lower() in TRUTHY


def aslist(value):
    """waitress's list syntax: a str is split on whitespace."""
    if isinstance(value, str):
        return value.split()
    return [word for item in value for word in item.split()]


def slash_fixed(value):
    value = value.strip()
    return "/" + value.strip("/") if value else None


def capped(limit):
    return lambda value: min(int(value), limit)


# Keywords that become flags: keyword -> [(flag, conversion)]. A value
# converted to None or "" passes no flag.
FLAGS = {
    "threads": [("--threads", int)],
    "backlog": [("--backlog", int)],
    "connection_limit": [("--worker-connections", int)],
    # waitress closes a connection idle this long, whether it is between
    # requests or in the middle of reading or writing one.
    "channel_timeout": [("--keep-alive", int), ("--io-timeout", int)],
    "inbuf_overflow": [("--body-buffer-size", int)],
    "max_request_body_size": [("--max-body-size", int)],
    # waitress limits the request line and all header fields together;
    # drover limits each, no further than these caps.
    "max_request_header_size": [("--limit-request-line", capped(8190)),
                                ("--limit-request-field-size",
                                 capped(1 << 20))],
    "url_prefix": [("--script-name", slash_fixed)],
    "trusted_proxy": [("--forwarded-allow-ips", lambda v: str(v or ""))],
    # drover's own
    "workers": [("--workers", int)],
    "timeout": [("--timeout", str)],
}

DROVER_ONLY = ("workers", "timeout")

# What serve() passes when the script does not say.
DEFAULTS = {"threads": 4, "workers": 1, "timeout": 0}

# Keywords that choose the addresses; see binds().
ADDRESS = ("host", "port", "listen", "unix_socket", "sockets", "ipv4", "ipv6")

HONOURED_PROXY_HEADERS = ("x-forwarded-for", "x-forwarded-proto", "forwarded")

# waitress keywords drover ignores, with what drover does instead ("" when
# nothing needs saying).
IGNORED = {
    "trusted_proxy_count": "drover skips every hop listed in trusted_proxy",
    "log_untrusted_proxy_headers": "",
    "clear_untrusted_proxy_headers":
        "headers from untrusted peers never change the environ",
    "url_scheme": "drover takes the scheme from a trusted proxy's "
                  "X-Forwarded-Proto",
    "recv_bytes": "",
    "send_bytes": "",
    "outbuf_overflow": "",
    "outbuf_high_watermark": "",
    "cleanup_interval": "",
    "log_socket_errors": "",
    "expose_tracebacks": "drover shows tracebacks only under drover --dev",
    "ident": "drover always sends Server: drover",
    "asyncore_loop_timeout": "",
    "asyncore_use_poll": "",
    "unix_socket_perms": "use a systemd socket unit with SocketMode=",
    "channel_request_lookahead": "",
    "server_name": "",
    "_quiet": "",
}

KNOWN = {*FLAGS, *ADDRESS, *IGNORED, "trusted_proxy_headers"}


def command_line(kw):
    """drover's flags for serve()'s keywords, and the notes to print."""
    for name in kw:
        if name not in KNOWN:
            raise ValueError(f"Unknown adjustment {name!r}")
    flags = [arg for addr in binds(kw) for arg in ("--bind", addr)]
    for name, value in {**DEFAULTS, **kw}.items():
        for flag, convert in FLAGS.get(name, ()):
            converted = convert(value)
            if converted is not None and converted != "":
                flags += [flag, str(converted)]
    notes = [f"drover.serve: ignoring waitress's {name}={value!r}"
             + (f" ({IGNORED[name]})" if IGNORED[name] else
                " (drover has no such setting)")
             for name, value in kw.items() if name in IGNORED]
    if "trusted_proxy_headers" in kw:
        notes += proxy_header_notes(kw["trusted_proxy_headers"])
    return flags, notes


def proxy_header_notes(value):
    headers = {h.lower() for h in aslist(value)}
    unhonoured = sorted(headers.difference(HONOURED_PROXY_HEADERS))
    if not unhonoured:
        return []
    return ["drover.serve: ignoring trusted_proxy_headers "
            f"{', '.join(unhonoured)} (from a trusted proxy drover reads "
            "X-Forwarded-For, X-Forwarded-Proto and Forwarded only)"]


def binds(kw):
    """The --bind values for waitress's address keywords."""
    given = set(kw).intersection(ADDRESS) - {"ipv4", "ipv6"}
    if "listen" in given and given & {"host", "port"}:
        raise ValueError("host or port may not be set if listen is set.")
    for exclusive in ("sockets", "unix_socket"):
        others = sorted(given - {exclusive})
        if exclusive in given and others:
            raise ValueError(f"{exclusive} may not be set if {others[0]} "
                             "is set")
    if "sockets" in kw:
        return [inherited(sock, int(kw.get("backlog", 1024)))
                for sock in kw["sockets"] if isinstance(sock, socket.socket)]
    if "unix_socket" in kw:
        return [f"unix:{kw['unix_socket']}"]
    port = int(kw.get("port", 8080))
    if "listen" in kw:
        listen = aslist(kw["listen"])
    else:
        listen = [f"{kw.get('host', '0.0.0.0')}:{port}"]
    family = socket.AF_UNSPEC
    ipv4, ipv6 = asbool(kw.get("ipv4", True)), asbool(kw.get("ipv6", True))
    if ipv4 and not ipv6:
        family = socket.AF_INET
    elif ipv6 and not ipv4:
        family = socket.AF_INET6
    out = []
    for entry in listen:
        for addr in resolve(entry, port, family):
            if addr not in out:
                out.append(addr)
    return out


def resolve(entry, default_port, family):
    """One listen entry ("host:port", "[::1]:80", "*:8080", "host") as
    numeric bind addresses, the way waitress reads it."""
    host, port = entry, str(default_port)
    if ":" in entry:
        host, port = entry.rsplit(":", 1)
        if "]" in port:
            host, port = entry, str(default_port)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        infos = socket.getaddrinfo(None if host == "*" else host, port,
                                   family, socket.SOCK_STREAM,
                                   socket.IPPROTO_TCP, socket.AI_PASSIVE)
    except (OSError, UnicodeError):
        raise ValueError("Invalid host/port specified.") from None
    return [f"[{addr[0]}]:{addr[1]}" if fam == socket.AF_INET6
            else f"{addr[0]}:{addr[1]}"
            for fam, _, _, _, addr in infos]


def inherited(sock, backlog):
    """fd://N for a socket the script made: drover serves it as it is."""
    sock.listen(backlog)   # waitress listens on the sockets it is given
    os.set_inheritable(sock.fileno(), True)
    return f"fd://{sock.fileno()}"
