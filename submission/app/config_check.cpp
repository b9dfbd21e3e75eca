// `truefrom config check` (as `postfix check`): what `serve` would trip over, found before
// it is deployed. One line per finding, each with its fix: "problem:" lines make the exit
// status 1, "warning:" lines do not. Checks, in order: the config (already parsed by
// then), the user the server runs as, the TLS certificate and key (they load and match,
// validity, the host name, the key's mode), the SRS secrets, the database (reachable,
// schema version), the active DKIM keys' files (as the server will read them), the
// relays (a TCP connection and a 220 greeting).
#include <netdb.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <iostream>
#include <string>
#include <vector>

#include "auth/identity_store.hpp"
#include "signer/dkim/dkim_key.hpp"
#include "submission/app/cli.hpp"
#include "submission/app/dkim_keys.hpp"
#include "submission/app/service_user.hpp"
#include "submission/app/tls_context.hpp"

namespace truefrom::app {

namespace {

constexpr int kRelayTimeoutMs = 5000;
constexpr int kExpiryWarningDays = 14;

struct Findings {
  int problems = 0;
  int warnings = 0;
  void problem(const std::string& what) {
    ++problems;
    std::cout << "problem: " << what << "\n";
  }
  void warning(const std::string& what) {
    ++warnings;
    std::cout << "warning: " << what << "\n";
  }
};

void check_certificate(const Config& config, Findings& f) {
  std::string error;
  const auto ctx = make_tls_context(config, error);
  if (!ctx) {
    f.problem(error);
    return;
  }
  X509* cert = SSL_CTX_get0_certificate(ctx->native_handle());
  if (cert == nullptr) return;
  const std::string file = config.certificate.string();
  int days = 0;
  int seconds = 0;
  if (ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert)) == 1) {
    if (days < 0 || (days == 0 && seconds <= 0)) {
      f.problem("[tls] certificate " + file + " has expired: clients refuse it; renew it");
    } else if (days < kExpiryWarningDays) {
      f.warning("[tls] certificate " + file + " expires in " + std::to_string(days) +
                " day(s): renew it (then restart truefrom)");
    }
  }
  if (ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notBefore(cert)) == 1 &&
      (days > 0 || seconds > 0)) {
    f.problem("[tls] certificate " + file + " is not valid yet: check the clock or the file");
  }
  if (X509_check_host(cert, config.hostname.data(), config.hostname.size(), 0, nullptr) != 1) {
    f.warning("[tls] certificate " + file + " does not name [server] hostname \"" +
              config.hostname +
              "\": clients that check the name (most do) refuse it; use a certificate for "
              "that name or set hostname to the name it has");
  }
}

void check_srs(const Config& config, Findings& f) {
  if (!config.srs_enabled) return;
  std::string error;
  if (!load_srs(config, error)) f.problem(error);
}

void check_dkim(auth::IdentityStore& store, const ServiceUser& user, Findings& f) {
  std::vector<auth::DkimKeyRow> rows;
  if (const auto st = store.list_dkim_keys("", true, rows); !st) {
    f.problem("cannot list the DKIM keys: " + describe(st));
    return;
  }
  for (const auto& row : rows) {
    signer::KeyRecord record;
    if (!to_key_record(row, record)) {
      f.problem("DKIM key " + row.selector + "._domainkey." + row.domain +
                " has an unknown algorithm \"" + row.algorithm + "\"");
      continue;
    }
    const auto key = signer::load_signing_key(record, user.uid);
    if (!key.usable()) {
      f.problem("DKIM key " + row.selector + "._domainkey." + row.domain + ": " + key.error);
    }
  }
}

// A TCP connection to host:port and its first reply line, within kRelayTimeoutMs each.
// Returns "" when a 220 greeting came, or what went wrong.
std::string probe_relay(const relay::RelayHost& h) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(h.port);
  if (const int rc = ::getaddrinfo(h.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return std::string("cannot resolve the name: ") + ::gai_strerror(rc);
  }
  std::string why = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      err = errno;
    } else if (::poll(&p, 1, kRelayTimeoutMs) != 1) {
      err = ETIMEDOUT;
    } else {
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    }
    if (err != 0) {
      why = std::string("cannot connect: ") + std::strerror(err);
      ::close(fd);
      continue;
    }
    std::string line;
    p = pollfd{fd, POLLIN, 0};
    while (line.find('\n') == std::string::npos && line.size() < 512) {
      if (::poll(&p, 1, kRelayTimeoutMs) != 1) break;
      char buf[512];
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    ::freeaddrinfo(found);
    if (line.rfind("220", 0) == 0) return "";
    if (line.empty()) return "connected, but no greeting within 5 s";
    return "greeted with \"" + line.substr(0, line.find_first_of("\r\n")) + "\", not 220";
  }
  ::freeaddrinfo(found);
  return why;
}

}  // namespace

int cmd_config(const Args& a, const Config& config) {
  if (a.positional.size() != 2 || a.positional[1] != "check") {
    return usage_error("expected: truefrom config check", "config");
  }
  Findings f;
  std::string error;
  const auto user = service_user(config, error);
  if (!user) f.problem(error);
  check_certificate(config, f);
  check_srs(config, f);
  Database db(config);
  if (!db.open(error)) {
    f.problem("database: " + error);
  } else if (const auto st = db.store().check_schema(); !st) {
    f.problem("database: " + describe(st));
  } else if (user) {
    check_dkim(db.store(), *user, f);
  }
  for (const auto& h : config.relay.hosts) {
    if (const auto why = probe_relay(h); !why.empty()) {
      f.problem("[relay] " + h.to_string() + ": " + why +
                " (mail is queued until it answers; check the host, the port and a firewall)");
    }
  }
  std::cout << "config " << config.file.string() << ": "
            << (f.problems ? std::to_string(f.problems) + " problem(s)" : std::string("ok"))
            << (f.warnings ? ", " + std::to_string(f.warnings) + " warning(s)" : "") << "\n";
  return f.problems ? 1 : 0;
}

}  // namespace truefrom::app
