"""Per-message cost by stage, from a call-graph profile of the truefrom process.

`perf record --call-graph dwarf -p PID` samples the server's threads with whole call chains;
`perf script` prints them. Each sample goes to the stage of the innermost frame that one of
RULES recognizes (the leaf side first: a libcrypto function inside a TLS handshake is the
handshake's, the same function inside the DKIM signer is signing's; a kernel function inside
the spool's fdatasync is the spool's). A sample whose chain names no stage counts as "other".
Kernel time is counted within each stage as well, so that the table tells what the
cryptography costs and what the system calls and thread hand-offs around it cost.

Standard library only: compare imports it, and tests/unit/bench/test_stages.py feeds
it canned `perf script` text.
"""

import re

# (stage, pattern over "symbol (dso)"), tried in this order on each frame.
RULES = [
    ("TLS handshake", re.compile(
        r"SSL_do_handshake|ossl_statem_|tls_construct_|tls_process_|tls_post_process_|"
        r"SSL_accept|TlsSocket::handshake")),
    ("TLS records", re.compile(
        r"\bSSL_read|\bSSL_write|ssl3_read|ssl3_write|tls_get_more_records|tls_write_records|"
        r"TlsSocket::(?:read_some|write_all)")),
    ("AUTH", re.compile(
        r"\bsasl_|SaslExchange|VerifiedPasswords|make_credential_check|verify_password|"
        r"\bcrypt_|yescrypt|\(.*libsasl2[^)]*\)|\(.*libcrypt\.so[^)]*\)")),
    ("signing", re.compile(r"truefrom::signer::|::sign_message\b")),
    ("spool", re.compile(r"truefrom::queue::Spool")),
    ("delivery (scheduler, relay client)", re.compile(
        r"truefrom::queue::|truefrom::relay::")),
    ("policy and header parsing", re.compile(
        r"truefrom::auth::|truefrom::smtp::parse_header_section|truefrom::smtp::.*[Aa]ddress|"
        r"truefrom::smtp::.*Mailbox|truefrom::smtp::.*HeaderSection")),
    ("SMTP session", re.compile(r"truefrom::smtp::|truefrom::net::Connection")),
    ("plain socket I/O, accept, close", re.compile(
        r"reactive_socket_\w+_op|reactive_socket_service_base::close|socket_ops::")),
    ("logging", re.compile(r"truefrom::net::log\b")),
    ("event loop and thread hand-offs", re.compile(
        r"boost::asio::|truefrom::net::|std::condition_variable|pthread_cond_|"
        r"__futex|futex_")),
]
OTHER = "other"
STAGES = [name for name, _ in RULES] + [OTHER]
# A helper in a file's anonymous namespace (after bare(): "truefrom::queue::::pwrite_all")
# works for its caller: spool.cpp's and scheduler.cpp's helpers share a namespace, so the
# frame decides nothing and the next one out does.
_FILE_HELPER = re.compile(r"^truefrom::\w+::::")

_FRAME = re.compile(r"^\s+[0-9a-f]+\s+(.*?)(?:\+0x[0-9a-f]+)?\s+\((.*)\)\s*$")


def samples(perf_script_text):
    """Yields each sample's call chain, leaf first, as (symbol, dso) pairs."""
    chain = []
    for line in perf_script_text.splitlines():
        m = _FRAME.match(line)
        if m:
            chain.append((m.group(1), m.group(2)))
        elif not line.strip():
            if chain:
                yield chain
            chain = []
        elif chain:  # a new sample header without a blank line in between
            yield chain
            chain = []
    if chain:
        yield chain


def is_kernel(dso):
    return dso.startswith("[kernel")


def bare(symbol):
    """A demangled name without template arguments and parameter lists: an Asio operation
    whose template arguments name a session's handler is still the event loop's."""
    out = []
    depth = 0
    for c in symbol:
        if c in "<(":
            depth += 1
        elif c in ">)" and depth:
            depth -= 1
        elif not depth:
            out.append(c)
    return "".join(out)


def classify(chain):
    """The stage of one sample's chain (leaf first)."""
    for symbol, dso in chain:
        name = bare(symbol)
        if _FILE_HELPER.match(name):
            continue
        text = "%s (%s)" % (name, dso)
        for name, pattern in RULES:
            if pattern.search(text):
                return name
    return OTHER


def breakdown(perf_script_text):
    """{stage: (samples, samples whose leaf is in the kernel)} and the number of samples."""
    counts = {name: [0, 0] for name in STAGES}
    total = 0
    for chain in samples(perf_script_text):
        stage = classify(chain)
        counts[stage][0] += 1
        if is_kernel(chain[0][1]):
            counts[stage][1] += 1
        total += 1
    return {k: tuple(v) for k, v in counts.items()}, total


def rows(perf_script_text, cpu_ms_per_msg):
    """[(stage, share of the process's samples, ms per message or None, kernel share of the
    stage)] for the stages that have samples, in STAGES order."""
    counts, total = breakdown(perf_script_text)
    out = []
    for name in STAGES:
        n, kernel = counts[name]
        if not n:
            continue
        share = n / total
        out.append((name, share, share * cpu_ms_per_msg if cpu_ms_per_msg else None,
                    kernel / n))
    return out


# System calls counted beside the profile (perf stat on syscall tracepoints): the ones a
# message's path makes, in the order the report lists them.
SYSCALLS = ("read", "write", "recvfrom", "sendmsg", "sendto", "pwritev", "pwrite64",
            "fdatasync", "futex", "epoll_wait", "epoll_ctl")


def perf_stat_events():
    """The -e list for `perf stat`: every system call (raw_syscalls) and SYSCALLS one by
    one."""
    return ",".join(["raw_syscalls:sys_enter"] +
                    ["syscalls:sys_enter_%s" % name for name in SYSCALLS])


def syscall_counts(perf_stat_csv):
    """{name: count} from `perf stat -x,` output ("all" for raw_syscalls); events perf
    could not count are left out."""
    counts = {}
    for line in perf_stat_csv.splitlines():
        fields = line.split(",")
        if len(fields) < 3 or not fields[0].strip().isdigit():
            continue
        event = fields[2].strip()
        if event == "raw_syscalls:sys_enter":
            counts["all"] = int(fields[0])
        elif event.startswith("syscalls:sys_enter_"):
            counts[event[len("syscalls:sys_enter_"):]] = int(fields[0])
    return counts

