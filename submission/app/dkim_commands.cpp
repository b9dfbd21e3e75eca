// `truefrom dkim keygen|activate|retire|list|dns`: the DKIM key records of schema 0003 and
// the private key files under [dkim] key_dir.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>

#include "auth/identity_syntax.hpp"
#include "signer/dkim/dkim_key.hpp"
#include "submission/app/cli.hpp"
#include "submission/app/dkim_keys.hpp"
#include "submission/app/service_user.hpp"
#include "submission/policy/sender_policy.hpp"

namespace truefrom::app {
namespace {

namespace fs = std::filesystem;

std::string today() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y%m%d", &tm);
  return buf;
}

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

// The domain an admin typed, as stored: lower-case A-labels, at least two labels.
bool parse_domain(const std::string& text, std::string& out, std::string& error) {
  const auto d = auth::normalize_domain(text);
  if (!d || d->find('.') == std::string::npos) {
    error = "\"" + text + "\" is not a domain name (e.g. example.com)";
    return false;
  }
  out = *d;
  return true;
}

// Creates the key directory (mode 0700) when missing; its owner is the one key files get.
// The key directory, mode 0700; as root, owned by the user the server runs as (created
// if missing, handed over if root owns it).
bool prepare_key_dir(const fs::path& dir, const ServiceUser& user, std::string& error) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) {
      error = "cannot create [dkim] key_dir " + dir.string() + ": " + ec.message();
      return false;
    }
    ::chmod(dir.c_str(), 0700);
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    error = "[dkim] key_dir " + dir.string() + " is not a directory";
    return false;
  }
  return hand_over(dir, user, false, error);
}

// Writes the private key: a new file, mode 0600, flushed to disk; when run as root, owned
// by the user the server runs as.
bool write_key_file(const fs::path& path, const std::string& pem, const ServiceUser& user,
                    std::string& error) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    error = "cannot create key file " + path.string() + ": " + std::strerror(errno);
    return false;
  }
  bool ok = ::fchmod(fd, 0600) == 0;
  if (ok && user.drop) ok = ::fchown(fd, user.uid, user.gid) == 0;
  std::size_t done = 0;
  while (ok && done < pem.size()) {
    const ssize_t n = ::write(fd, pem.data() + done, pem.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok) {
    error = "cannot write key file " + path.string() + ": " + std::strerror(saved);
    ::unlink(path.c_str());
  }
  return ok;
}

int keygen(const Args& a, const Config& config, const std::string& domain) {
  std::string error;
  const auto algorithm = signer::parse_algorithm(a.algorithm.value_or("rsa"));
  if (!algorithm) {
    return usage_error("--algorithm must be rsa or ed25519, not \"" + *a.algorithm + "\"", "dkim");
  }
  unsigned bits = 2048;
  if (a.bits) {
    if (*algorithm != signer::Algorithm::kRsaSha256) {
      return usage_error("--bits applies to RSA keys only", "dkim");
    }
    const auto& t = *a.bits;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), bits);
    if (ec != std::errc{} || p != t.data() + t.size()) {
      return usage_error("--bits must be a number, e.g. 2048", "dkim");
    }
  }
  const bool rsa = *algorithm == signer::Algorithm::kRsaSha256;
  Database db(config);
  if (!db.open(error)) return fail(error);
  auto& store = db.store();
  if (auto st = store.check_schema(); !st) return fail(describe(st));

  std::vector<auth::DkimKeyRow> rows;
  if (auto st = store.list_dkim_keys(domain, false, rows); !st) return fail(describe(st));
  std::string selector;
  if (a.selector) {
    selector = lower(*a.selector);
    if (!signer::valid_selector(selector)) {
      return fail("\"" + *a.selector +
                  "\" is not a selector: use letters, digits, hyphens and dots, e.g. s1");
    }
    for (const auto& r : rows) {
      if (r.selector == selector) {
        return fail("there is already a key " + selector + "._domainkey." + domain + " (" +
                    r.state + "); choose another --selector");
      }
    }
  } else {
    const std::string base = today() + (rsa ? "-rsa" : "-ed25519");
    selector = base;
    for (int n = 2; std::any_of(rows.begin(), rows.end(),
                                [&](const auto& r) { return r.selector == selector; });
         ++n) {
      selector = base + "-" + std::to_string(n);
    }
  }
  const auto user = service_user(config, error);
  if (!user) return fail(error);
  if (!prepare_key_dir(config.dkim_key_dir, *user, error)) return fail(error);
  const auto key = signer::generate_key(*algorithm, bits, error);
  if (!key) return fail(error);
  const fs::path path = config.dkim_key_dir / (domain + "." + selector + ".pem");
  if (fs::exists(path)) {
    return fail("key file " + path.string() +
                " already exists; remove it if it is unused, or choose another --selector");
  }
  if (!write_key_file(path, key->pem, *user, error)) return fail(error);
  auth::DkimKeyRow row;
  row.domain = domain;
  row.selector = selector;
  row.algorithm = std::string(signer::algorithm_name(*algorithm));
  row.key_path = fs::absolute(path).string();
  row.public_key = key->public_key;
  if (auto st = store.add_dkim_key(row); !st) {
    ::unlink(path.c_str());
    return fail(describe(st));
  }
  signer::KeyRecord record;
  to_key_record(row, record);
  std::cout << "generated " << row.algorithm << (rsa ? " (" + std::to_string(bits) + " bits)" : "")
            << " key " << selector << " for " << domain << ", pending; private key in "
            << row.key_path << "\n"
            << "publish this DNS record, then run: truefrom dkim activate " << domain << " "
            << selector << "\n"
            << signer::dns_zone_line(record) << "\n";
  return 0;
}

int activate(Database& db, const Config& config, const std::string& domain,
             const std::string& selector) {
  auto& store = db.store();
  std::vector<auth::DkimKeyRow> rows;
  if (auto st = store.list_dkim_keys(domain, false, rows); !st) return fail(describe(st));
  const auto it =
      std::find_if(rows.begin(), rows.end(), [&](const auto& r) { return r.selector == selector; });
  if (it != rows.end() && it->state == "pending") {
    // Refuse a key the server could not use: check the file as it will (owner: the user
    // it runs as).
    signer::KeyRecord record;
    std::string error;
    const auto user = service_user(config, error);
    if (!user) return fail(error);
    const unsigned owner = user->uid;
    if (!to_key_record(*it, record)) return fail("unknown algorithm " + it->algorithm);
    const auto key = signer::load_signing_key(record, owner);
    if (!key.usable()) return fail(key.error + "; the key was not activated");
  }
  std::string retired;
  if (auto st = store.activate_dkim_key(domain, selector, &retired); !st) {
    return fail(describe(st));
  }
  std::cout << "key " << selector << "._domainkey." << domain
            << " is active: it signs mail from now on (running servers reload within a second)\n";
  if (!retired.empty()) {
    std::cout << "key " << retired << "._domainkey." << domain
              << " (same algorithm) is retired; keep its DNS record a few days for mail in "
                 "flight\n";
  }
  return 0;
}

int list(Database& db, const std::string& domain) {
  std::vector<auth::DkimKeyRow> rows;
  if (auto st = db.store().list_dkim_keys(domain, false, rows); !st) return fail(describe(st));
  for (const auto& r : rows) {
    std::cout << r.domain << "\t" << r.selector << "\t" << r.algorithm << "\t" << r.state
              << "\tcreated " << r.created_at;
    if (!r.activated_at.empty()) std::cout << "\tactivated " << r.activated_at;
    if (!r.retired_at.empty()) std::cout << "\tretired " << r.retired_at;
    std::cout << "\t" << r.key_path << "\n";
  }
  return 0;
}

int dns(Database& db, const std::string& domain) {
  std::vector<auth::DkimKeyRow> rows;
  if (auto st = db.store().list_dkim_keys(domain, false, rows); !st) return fail(describe(st));
  int printed = 0;
  for (const auto& r : rows) {
    signer::KeyRecord record;
    if (r.state == "retired" || !to_key_record(r, record)) continue;
    std::cout << signer::dns_zone_line(record) << "\n";
    ++printed;
  }
  if (printed == 0) {
    return fail("no pending or active DKIM key for " + domain +
                " (generate one with: truefrom dkim keygen " + domain + ")");
  }
  return 0;
}

}  // namespace

int cmd_dkim(const Args& a, const Config& config) {
  const auto& p = a.positional;
  if (p.size() < 2) return usage_error("expected a dkim command", "dkim");
  const std::string& verb = p[1];
  const bool keygen_verb = verb == "keygen";
  if (!keygen_verb && (a.selector || a.algorithm || a.bits)) {
    return usage_error("--selector, --algorithm and --bits belong to dkim keygen", "dkim");
  }
  std::size_t want = 0;
  if (verb == "keygen" || verb == "dns") {
    want = 3;
  } else if (verb == "activate" || verb == "retire") {
    want = 4;
  } else if (verb == "list") {
    if (p.size() > 3) return usage_error("expected: truefrom dkim list [DOMAIN]", "dkim");
    want = p.size();
  } else {
    return usage_error("unknown dkim command \"" + verb + "\"", "dkim");
  }
  if (p.size() != want) {
    return usage_error(
        "expected: truefrom dkim " + verb + (want == 4 ? " DOMAIN SELECTOR" : " DOMAIN"), "dkim");
  }
  std::string error;
  std::string domain;
  if (p.size() >= 3 && !parse_domain(p[2], domain, error)) return fail(error);
  if (keygen_verb) return keygen(a, config, domain);
  Database db(config);
  if (!db.open(error)) return fail(error);
  if (auto st = db.store().check_schema(); !st) return fail(describe(st));
  if (verb == "list") return list(db, domain);
  if (verb == "dns") return dns(db, domain);
  const std::string selector = lower(p[3]);
  if (verb == "activate") return activate(db, config, domain, selector);
  if (auto st = db.store().retire_dkim_key(domain, selector); !st) return fail(describe(st));
  std::cout << "key " << selector << "._domainkey." << domain
            << " is retired: it no longer signs (keep its DNS record a few days for mail in "
               "flight)\n";
  return 0;
}

}  // namespace truefrom::app
