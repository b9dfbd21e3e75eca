#include "contrib/bench/loadgen_options.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <string_view>
#include <vector>

namespace truefrom::bench {

const char* const kLoadgenUsage = R"(usage: truefrom-loadgen [OPTIONS]
Load an SMTP submission server the way many mail clients would, then print one JSON line.

Each of C connections runs sessions one after another: greeting, EHLO, STARTTLS (or implicit
TLS), EHLO, AUTH PLAIN, then M messages (MAIL FROM, RCPT TO, DATA, message, "."), QUIT;
until N messages were sent or T seconds have passed. Certificates are not verified, every
connection makes a full TLS handshake (no session resumption).

server:
  --host HOST               server address (default 127.0.0.1)
  --port PORT               default 587, or 465 with --tls implicit
  --tls MODE                starttls (default), implicit (RFC 8314) or none (plain SMTP)
  --helo NAME               EHLO name (default loadgen.example.test)
account and message:
  --user LOGIN              AUTH PLAIN as LOGIN (without it: no AUTH)
  --password PW             its password (visible in ps: prefer --password-file)
  --password-file FILE      the password is the first line of FILE
  --from ADDRESS            envelope sender and From: header (required)
  --to ADDRESS              recipient (required)
  --size S                  body octets, CRLF line ends of lines <= 78 chars (default 4096)
load:
  --connections C           concurrent connections (default 8)
  --messages-per-conn M     messages per session (default 1)
  --total N                 stop after N messages
  --duration T              stop after T seconds (sessions finish their current message)
  --threads K               I/O threads sharing the connections (default 1)
  --timeout SECS            limit for any one step (default 30)
  --max-errors E            stop the run after E failed sessions (default 100)
idle-connection test (instead of the load):
  --idle K                  open K connections that EHLO and then stay idle
  --server-pid PID          read the server's VmRSS before and after (required with --idle)
  --idle-tls                also STARTTLS and EHLO again on each (implied by --tls implicit)
  --idle-parallel P         connections being opened at once (default 64)
  --idle-settle SECS        wait between the last open and the reading (default 2)
  --idle-hold SECS          keep them open this long after the reading (default 0)
  --help                    this text

Output (load): {"accepted","refused","errors","seconds","messages_per_s","data_end_ms":{p50,
p90,p99},"session_ms":{...},"loadgen_cpu_s","loadgen_cpu_share","first_refusal",
"first_error",...}. "refused": a message got a 4xx/5xx reply; "errors": sessions that failed
(refused greeting, EHLO, STARTTLS or AUTH; I/O failure; timeout). data_end_ms: from the
final "." to its reply. A loadgen_cpu_share near 1 means the load generator, not the server,
was the bottleneck: add --threads or CPUs.
Output (idle): {"requested","open","failed","rss_before_kib","rss_after_kib",
"per_connection_kib",...}.

example:
  truefrom-loadgen --host 127.0.0.1 --port 587 --user alice@example.com \
    --password-file pw.txt --from alice@example.com --to sink@example.net \
    --connections 8 --messages-per-conn 10 --size 4096 --duration 20
)";

const char* to_string(TlsMode mode) {
  switch (mode) {
    case TlsMode::kNone:
      return "none";
    case TlsMode::kStartTls:
      return "starttls";
    case TlsMode::kImplicit:
      return "implicit";
  }
  return "?";
}

namespace {

using Apply = std::function<std::string(const std::string&)>;

struct Flag {
  std::string_view name;
  bool takes_value;
  Apply apply;  ///< returns an error text, or "" when the value is good
};

template <class T>
std::string parse_whole(const std::string& text, T min, T max, T& out, std::string_view flag,
                        std::string_view example) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    return std::string(flag) + ": \"" + text + "\" is not a whole number from " +
           std::to_string(min) + " to " + std::to_string(max) + "; e.g. " + std::string(flag) +
           " " + std::string(example);
  }
  out = value;
  return "";
}

std::string parse_seconds(const std::string& text, double min, double& out, std::string_view flag,
                          std::string_view example) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value) || value < min ||
      value > 1e7) {
    char least[32];
    std::snprintf(least, sizeof least, "%g", min);
    return std::string(flag) + ": \"" + text + "\" is not a number of seconds (at least " + least +
           "); e.g. " + std::string(flag) + " " + std::string(example);
  }
  out = value;
  return "";
}

std::string check_address(const std::string& text, std::string_view flag) {
  const auto at = text.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == text.size() ||
      text.find_first_of("<> \t\r\n") != std::string::npos) {
    return std::string(flag) + ": \"" + text +
           "\" is not a plain address local@domain (no angle brackets); e.g. " + std::string(flag) +
           " alice@example.com";
  }
  return "";
}

std::vector<Flag> make_flags(LoadgenOptions& o, bool& help, bool& port_given) {
  std::vector<Flag> flags;
  auto add = [&flags](std::string_view name, bool takes_value, Apply apply) {
    flags.push_back(Flag{name, takes_value, std::move(apply)});
  };
  add("--help", false, [&help](const std::string&) {
    help = true;
    return std::string();
  });
  add("--host", true, [&o](const std::string& v) {
    o.host = v;
    return v.empty() ? std::string("--host: give an address, e.g. --host 127.0.0.1")
                     : std::string();
  });
  add("--port", true, [&o, &port_given](const std::string& v) {
    port_given = true;
    return parse_whole<std::uint16_t>(v, 1, 65535, o.port, "--port", "587");
  });
  add("--tls", true, [&o](const std::string& v) {
    if (v == "starttls") {
      o.tls = TlsMode::kStartTls;
    } else if (v == "implicit") {
      o.tls = TlsMode::kImplicit;
    } else if (v == "none") {
      o.tls = TlsMode::kNone;
    } else {
      return "--tls: \"" + v + "\" is not a TLS mode; use starttls, implicit or none";
    }
    return std::string();
  });
  add("--helo", true, [&o](const std::string& v) {
    o.helo = v;
    return v.empty() || v.find_first_of(" \t\r\n") != std::string::npos
               ? std::string("--helo: give one domain name, e.g. --helo client.example.com")
               : std::string();
  });
  add("--user", true, [&o](const std::string& v) {
    o.user = v;
    return v.empty() ? std::string("--user: give a login, e.g. --user alice@example.com")
                     : std::string();
  });
  add("--password", true, [&o](const std::string& v) {
    o.password = v;
    return std::string();
  });
  add("--password-file", true, [&o](const std::string& v) {
    std::ifstream in(v);
    if (!in) return "--password-file: cannot read \"" + v + "\"; check the path and its mode";
    std::getline(in, o.password);
    if (!o.password.empty() && o.password.back() == '\r') o.password.pop_back();
    return std::string();
  });
  add("--from", true, [&o](const std::string& v) {
    o.from = v;
    return check_address(v, "--from");
  });
  add("--to", true, [&o](const std::string& v) {
    o.to = v;
    return check_address(v, "--to");
  });
  add("--size", true, [&o](const std::string& v) {
    std::string e = parse_whole<std::size_t>(v, 0, 512 * 1024 * 1024, o.size, "--size", "4096");
    if (e.empty() && o.size == 1) e = "--size: a body is 0 octets or ends with CRLF (2 or more)";
    return e;
  });
  add("--connections", true, [&o](const std::string& v) {
    return parse_whole<unsigned>(v, 1, 1000000, o.connections, "--connections", "8");
  });
  add("--messages-per-conn", true, [&o](const std::string& v) {
    return parse_whole<unsigned>(v, 1, 1000000, o.messages_per_conn, "--messages-per-conn", "10");
  });
  add("--total", true, [&o](const std::string& v) {
    std::uint64_t n = 0;
    std::string e = parse_whole<std::uint64_t>(v, 1, std::numeric_limits<std::uint64_t>::max(), n,
                                               "--total", "10000");
    o.total = n;
    return e;
  });
  add("--duration", true, [&o](const std::string& v) {
    double s = 0;
    std::string e = parse_seconds(v, 0.1, s, "--duration", "20");
    o.duration = s;
    return e;
  });
  add("--threads", true, [&o](const std::string& v) {
    return parse_whole<unsigned>(v, 1, 256, o.threads, "--threads", "2");
  });
  add("--timeout", true,
      [&o](const std::string& v) { return parse_seconds(v, 0.1, o.timeout, "--timeout", "30"); });
  add("--max-errors", true, [&o](const std::string& v) {
    return parse_whole<std::uint64_t>(v, 1, std::numeric_limits<std::uint64_t>::max(), o.max_errors,
                                      "--max-errors", "100");
  });
  add("--idle", true, [&o](const std::string& v) {
    unsigned k = 0;
    std::string e = parse_whole<unsigned>(v, 1, 10000000, k, "--idle", "10000");
    o.idle = k;
    return e;
  });
  add("--server-pid", true, [&o](const std::string& v) {
    int pid = 0;
    std::string e = parse_whole<int>(v, 1, std::numeric_limits<int>::max(), pid, "--server-pid",
                                     "\"$(pidof truefrom)\"");
    o.server_pid = pid;
    return e;
  });
  add("--idle-tls", false, [&o](const std::string&) {
    o.idle_tls = true;
    return std::string();
  });
  add("--idle-parallel", true, [&o](const std::string& v) {
    return parse_whole<unsigned>(v, 1, 100000, o.idle_parallel, "--idle-parallel", "64");
  });
  add("--idle-settle", true, [&o](const std::string& v) {
    return parse_seconds(v, 0, o.idle_settle, "--idle-settle", "2");
  });
  add("--idle-hold", true,
      [&o](const std::string& v) { return parse_seconds(v, 0, o.idle_hold, "--idle-hold", "60"); });
  return flags;
}

// Checks between options, once all are read.
std::string check_combination(LoadgenOptions& o, bool port_given) {
  if (!port_given) o.port = o.tls == TlsMode::kImplicit ? 465 : 587;
  if (!o.user.empty() && o.password.empty()) {
    return "--user needs a password: add --password-file FILE (or --password PW)";
  }
  if (o.idle) {
    if (!o.server_pid) {
      return "--idle needs --server-pid PID: the server process whose memory is measured, "
             "e.g. --server-pid \"$(pidof truefrom)\"";
    }
    if (o.idle_tls && o.tls == TlsMode::kNone) {
      return "--idle-tls needs TLS: drop --tls none (STARTTLS is the default)";
    }
    if (o.tls == TlsMode::kImplicit) o.idle_tls = true;
    return "";
  }
  if (o.from.empty() || o.to.empty()) {
    return "give --from ADDRESS (envelope sender and From:, one the --user may send as) and "
           "--to ADDRESS (the recipient)";
  }
  if (!o.total && !o.duration) {
    return "say when to stop: --total N (messages) and/or --duration T (seconds)";
  }
  if (o.threads > o.connections) {
    return "--threads " + std::to_string(o.threads) + " is more than --connections " +
           std::to_string(o.connections) + ": each thread needs at least one connection";
  }
  return "";
}

}  // namespace

LoadgenCommandLine parse_loadgen_options(int argc, char** argv) {
  LoadgenCommandLine result;
  LoadgenOptions o;
  bool port_given = false;
  const std::vector<Flag> flags = make_flags(o, result.help, port_given);
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::optional<std::string> value;
    if (const auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    }
    const Flag* flag = nullptr;
    for (const Flag& f : flags) {
      if (f.name == arg) flag = &f;
    }
    if (flag == nullptr) {
      result.error = "unknown option \"" + arg + "\"; see truefrom-loadgen --help";
      return result;
    }
    if (flag->takes_value && !value) {
      if (i + 1 == argc) {
        result.error = arg + " needs a value; see truefrom-loadgen --help";
        return result;
      }
      value = argv[++i];
    } else if (!flag->takes_value && value) {
      result.error = arg + " takes no value";
      return result;
    }
    result.error = flag->apply(value.value_or(""));
    if (!result.error.empty()) return result;
    if (result.help) return result;
  }
  result.error = check_combination(o, port_given);
  if (result.error.empty()) result.options = std::move(o);
  return result;
}

}  // namespace truefrom::bench
