"""Tables for contrib/bench/compare: medians of its runs as Markdown.

Kept apart from the script that starts and measures the stacks; standard library only.
"""
import statistics
import time

from stages import SYSCALLS


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def crypto_budget_ms(speed, per_conn, key_type, size):
    """Server-side cryptography per message: a TLS 1.3 handshake with an RSA-2048 certificate
    (one RSA signature, X25519 key generation and agreement) shared by the session's
    messages, one DKIM signature, and per octet of the message its TLS decryption
    (AES-256-GCM) and the SHA-256 of the DKIM body hash."""
    handshake = speed["rsa2048_sign_ms"] + 2 * speed["x25519_ms"]
    dkim = speed["rsa2048_sign_ms"] if key_type == "rsa" else speed["ed25519_sign_ms"]
    bulk = size * (speed["aes256gcm_ns_per_byte"] + speed["sha256_ns_per_byte"]) / 1e6
    return handshake / per_conn + dkim + bulk


def fmt(v, digits=1):
    if v is None:
        return "–"
    return ("%%.%df" % digits) % v


def load_table(rows, speed, with_reference, server_cpu):
    out = ["| scenario | truefrom msg/s | ref msg/s | ratio | p99 end-of-DATA ms (tf / ref) "
           "| p99 session ms (tf / ref) | loadgen CPU share (tf / ref) |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    notes = []
    for key, sc, tf, ref, _ in rows:
        tf_rate = median(r["messages_per_s"] for r in tf)
        ref_rate = median(r["messages_per_s"] for r in ref) if ref else None
        ratio = "%.2f×" % (tf_rate / ref_rate) if tf_rate and ref_rate else "–"
        out.append("| %s %s | %s | %s | %s | %s / %s | %s / %s | %s / %s |" % (
            key, sc["title"], fmt(tf_rate), fmt(ref_rate), ratio,
            fmt(median(r["data_end_ms"]["p99"] for r in tf)),
            fmt(median(r["data_end_ms"]["p99"] for r in ref)) if ref else "–",
            fmt(median(r["session_ms"]["p99"] for r in tf)),
            fmt(median(r["session_ms"]["p99"] for r in ref)) if ref else "–",
            fmt(median(r["loadgen_cpu_share"] for r in tf), 2),
            fmt(median(r["loadgen_cpu_share"] for r in ref), 2) if ref else "–"))
        for r in tf + ref:
            if r["refused"] or r["errors"] or r["delivered"] != r["accepted"]:
                notes.append("%s %s: accepted %d, refused %d, errors %d, delivered %d; "
                             "first refusal: %s; first error: %s" % (
                                 key, r["stack"], r["accepted"], r["refused"], r["errors"],
                                 r["delivered"], r["first_refusal"], r["first_error"]))
    out.append("")
    out.append("| scenario | crypto budget ms/msg | truefrom process CPU ms/msg | CPU %d ms/msg "
               "(tf / ref) | truefrom ÷ budget | truefrom context switches/msg |" % server_cpu)
    out.append("|---|---:|---:|---:|---:|---:|")
    for key, sc, tf, ref, sc_speed in rows:
        budget = crypto_budget_ms(sc_speed, sc["per_conn"], sc["dkim"], sc["size"])
        proc = median(r["server_ms_per_msg"] for r in tf)
        switches = median(r.get("server_switches_per_msg") for r in tf)
        out.append("| %s | %.3f | %s | %s / %s | %s | %s |" % (
            key, budget, fmt(proc, 3), fmt(median(r["cpu0_ms_per_msg"] for r in tf), 3),
            fmt(median(r["cpu0_ms_per_msg"] for r in ref), 3) if ref else "–",
            "%.2f" % (proc / budget) if proc else "–", fmt(switches, 1)))
    notes.append("each scenario's crypto budget comes from openssl speed run just before it "
                 "(the VM's speed drifts): RSA-2048 sign " + ", ".join(
                     "%s %.3f ms" % (r[0], r[4]["rsa2048_sign_ms"]) for r in rows) +
                 "; AES-256-GCM + SHA-256 " + ", ".join(
                     "%s %.3f ns/octet" % (r[0], r[4]["aes256gcm_ns_per_byte"] +
                                           r[4]["sha256_ns_per_byte"]) for r in rows))
    if not with_reference:
        notes.append("reference stack not run (--no-reference)")
    return out, notes


def idle_table(results, requested):
    out = ["| idle connections | stack | open | server RSS before → after KiB | KiB per "
           "connection | server fds after | RSS after closing them KiB |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        closed = r.get("rss_after_close_kib")
        out.append("| %d, %s | %s | %d | %d → %d | %s | %s | %s |" % (
            requested, "STARTTLS + EHLO" if r["tls"] else "EHLO", r["stack"], r["open"],
            r["rss_before_kib"], r["rss_after_kib"], fmt(r["per_connection_kib"]),
            r["server_fds_after"], "–" if closed is None else closed))
    out.append("| %d | reference | – | – | not measured | – | – |" % requested)
    return out


def stage_crypto_ms(stage, speed, sc):
    """What the cryptography of one stage alone costs per message (openssl speed), for the
    stages that have any; None for the others."""
    if stage == "TLS handshake":
        return (speed["rsa2048_sign_ms"] + 2 * speed["x25519_ms"]) / sc["per_conn"]
    if stage == "TLS records":
        return sc["size"] * speed["aes256gcm_ns_per_byte"] / 1e6
    if stage == "signing":
        sig = speed["rsa2048_sign_ms"] if sc["dkim"] == "rsa" else speed["ed25519_sign_ms"]
        return sig + sc["size"] * speed["sha256_ns_per_byte"] / 1e6
    return None


def stage_table(p, speed, sc, handshake_ms=None):
    out = ["Scenario %s by stage (call chains; a sample counts for the innermost stage it "
           "is in; truefrom process CPU %s ms/msg in this run):" % (
               p["scenario"], fmt(p.get("cpu_ms_per_msg"), 3)), "",
           "| stage | share | ms/msg | of which kernel | its cryptography ms/msg |",
           "|---|---:|---:|---:|---:|"]
    for name, share, ms, kernel in p["stages"]:
        crypto = stage_crypto_ms(name, speed, sc) if speed and sc else None
        out.append("| %s | %.1f%% | %s | %.0f%% | %s |" % (
            name, 100 * share, fmt(ms, 3), 100 * kernel, fmt(crypto, 3)))
    out.append("")
    if handshake_ms and sc:
        out.append("OpenSSL's own handshake, in memory (truefrom-handshake): %.3f ms per "
                   "message (%.3f per connection)." % (handshake_ms / sc["per_conn"],
                                                      handshake_ms))
        out.append("")
    return out


def syscall_lines(per_msg):
    """One line: the truefrom process's system calls per message in the profile run."""
    named = ", ".join("%s %.1f" % (name, per_msg[name]) for name in SYSCALLS
                      if per_msg.get(name))
    total = per_msg.get("all")
    text = "System calls per message (perf stat, the same run): %s" % (
        "%.1f in all" % total if total is not None else "")
    if named:
        text += ("; " if total is not None else "") + named
    return [text + ".", ""]


def profile_lines(profiles, rows=(), handshake_ms=None):
    out = []
    by_key = {r[0]: (r[1], r[4]) for r in rows}
    for p in profiles:
        if p.get("stages"):
            sc, speed = by_key.get(p["scenario"], (None, None))
            out += stage_table(p, speed, sc, handshake_ms)
        if p.get("syscalls_per_msg"):
            out += syscall_lines(p["syscalls_per_msg"])
        out.append("Profile of the truefrom process, scenario %s (perf record -e cpu-clock, "
                   "one extra run), self time:" % p["scenario"])
        out.append("")
        out.append("- by library: " + ", ".join("%s %.1f%%" % (name, pct)
                                                for pct, name in p["by_library"]))
        out.append("- by function: " + ", ".join("%s %.1f%%" % (name, pct)
                                                 for pct, name in p["by_function"]))
        out.append("")
    return out


def abuse_table(ab_rows):
    """--abuse-controls both: the same scenarios with login throttling and sending limits on
    and off, runs alternating, medians and the ratio on ÷ off."""
    out = ["| scenario | on msg/s | off msg/s | on ÷ off | on CPU ms/msg | off CPU ms/msg "
           "| on ÷ off |", "|---|---:|---:|---:|---:|---:|---:|"]
    for key, sc, on, off in ab_rows:
        rate_on = median(r["messages_per_s"] for r in on)
        rate_off = median(r["messages_per_s"] for r in off)
        cpu_on = median(r["server_ms_per_msg"] for r in on)
        cpu_off = median(r["server_ms_per_msg"] for r in off)
        out.append("| %s %s | %s | %s | %s | %s | %s | %s |" % (
            key, sc["title"], fmt(rate_on), fmt(rate_off),
            "%.3f" % (rate_on / rate_off) if rate_on and rate_off else "–",
            fmt(cpu_on, 3), fmt(cpu_off, 3),
            "%.3f" % (cpu_on / cpu_off) if cpu_on and cpu_off else "–"))
    return out


def print_report(speed, args, rows, idle, profiles, started, machine, ab_rows=()):
    """Prints the whole report on stdout. rows: [(key, scenario, truefrom runs, reference
    runs, openssl speed measured just before them)]; idle: idle-test reports; profiles: from
    --profile; ab_rows: [(key, scenario, runs with abuse controls on, runs with them off)]."""
    lines = ["## contrib/bench/compare, %s" % time.strftime("%Y-%m-%d %H:%M UTC",
                                                          time.gmtime(started)), ""]
    lines.append("Machine: %s. Servers, their databases and sinks on CPU %s, load generator "
                 "on CPU %s. %d s per run, median of %d run(s); reference SASL: %s." % (
                     machine, args.server_cpu, args.loadgen_cpu, args.duration, args.repeat,
                     args.ref_sasl_used))
    lines.append("")
    if rows:
        table, notes = load_table(rows, speed, not args.no_reference, args.server_cpu)
        lines += table
        lines.append("")
        for n in notes:
            lines.append("- " + n)
        lines.append("")
    if ab_rows:
        lines.append("Abuse controls (login throttling, connections per network, sending "
                     "limits) on and off, two truefrom stacks, runs alternating:")
        lines.append("")
        lines += abuse_table(ab_rows)
        lines.append("")
    lines += profile_lines(profiles, rows, speed.get("openssl_handshake_ms"))
    if idle:
        lines += idle_table(idle, args.idle_connections)
        lines.append("")
        lines.append("Reference idle memory not measured: Postfix serves each connection "
                     "with its own smtpd process (at most default_process_limit = 100 here), "
                     "so 10,000 idle connections mostly wait in the listen queue and one "
                     "process's RSS says nothing per connection.")
        lines.append("")
    lines.append("openssl speed (%s, CPU %s): RSA-2048 sign %.3f ms, verify %.3f ms; Ed25519 "
                 "sign %.3f ms, verify %.3f ms; X25519 %.3f ms; AES-256-GCM %.3f ns/octet, "
                 "SHA-256 %.3f ns/octet (16 KiB blocks). Crypto budget per message = "
                 "(RSA-2048 sign + 2 × X25519) / messages per connection + one DKIM "
                 "signature (RSA-2048, or Ed25519 in e) + message size × (AES-256-GCM + "
                 "SHA-256)." % (
                     speed["version"], args.server_cpu, speed["rsa2048_sign_ms"],
                     speed["rsa2048_verify_ms"], speed["ed25519_sign_ms"],
                     speed["ed25519_verify_ms"], speed["x25519_ms"],
                     speed["aes256gcm_ns_per_byte"], speed["sha256_ns_per_byte"]))
    if speed.get("openssl_handshake_ms"):
        lines.append("")
        lines.append("OpenSSL's own full TLS 1.3 handshake with truefrom's certificate and "
                     "settings, server side, in memory, no sockets (truefrom-handshake, CPU "
                     "%s): %.3f ms, against %.3f ms of its primitives (RSA-2048 sign + 2 × "
                     "X25519)." % (args.server_cpu, speed["openssl_handshake_ms"],
                                   speed["rsa2048_sign_ms"] + 2 * speed["x25519_ms"]))
    print("\n".join(lines), flush=True)
