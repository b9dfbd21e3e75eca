#include "submission/app/config.hpp"

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <unistd.h>

#include <charconv>
#include <map>
#include <set>
#include <toml.hpp>

#include "auth/identity_syntax.hpp"

namespace truefrom::app {
namespace {

// A value whose location is known, so an error can point at it.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void bad(const toml::value& v, const std::string& what, const std::string& hint) {
  throw ConfigError(toml::format_error("[error] " + what, v, hint));
}

const std::map<std::string, std::set<std::string>> kKnownKeys{
    {"server",
     {"hostname", "max_message_size", "max_recipients", "max_connections", "io_threads",
      "worker_threads", "idle_timeout", "session_timeout", "greeting_delay_ms", "user",
      "drain_timeout", "run_as_root"}},
    {"listen", {"submission", "submissions"}},
    {"tls", {"certificate", "private_key", "ciphers", "ciphersuites", "min_version"}},
    {"database", {"url"}},
    {"relay",
     {"mode", "host", "port", "hosts", "starttls", "ca_file", "fingerprint", "username", "password",
      "timeout", "connect_timeout", "greeting_timeout", "command_timeout", "data_timeout",
      "connections", "idle_limit", "check_after", "check_timeout", "probe_max"}},
    {"queue", {"dir", "retry_first", "retry_max", "lifetime"}},
    {"state", {"dir"}},
    {"trace", {"authenticated"}},
    {"policy",
     {"subaddress_separators", "local_part_case_sensitive", "allow_null_sender",
      "refuse_address_in_display_name", "require_alignment"}},
    {"dkim", {"key_dir", "canonicalization", "fallback_domain", "on_key_error"}},
    {"srs", {"domain", "secrets_file", "hash_length", "max_age", "socketmap"}},
    {"throttle",
     {"enabled", "auth_window", "auth_delay_after", "auth_first_delay_ms", "auth_max_delay_ms",
      "auth_block_after", "auth_block_time", "account_block_after", "remember_good_days",
      "connections_per_network", "connections_per_minute", "allow"}},
    {"limits",
     {"enabled", "messages_per_hour", "messages_per_day", "recipients_per_message",
      "recipients_per_day", "sync_interval_ms"}},
    {"suspension",
     {"enabled", "limit_hours", "login_networks", "binding_refusals", "contact", "notify"}},
};

std::string known_list(const std::set<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "" : ", ") + k;
  return out;
}

void check_keys(const toml::value& root) {
  for (const auto& [section, value] : root.as_table()) {
    const auto known = kKnownKeys.find(section);
    if (known == kKnownKeys.end()) {
      std::string sections;
      for (const auto& [name, keys] : kKnownKeys) sections += (sections.empty() ? "" : ", ") + name;
      bad(value, "unknown section [" + section + "]", "known sections: " + sections);
    }
    if (!value.is_table())
      bad(value, "[" + section + "] must be a table", "write it as [" + section + "]");
    for (const auto& [key, v] : value.as_table()) {
      if (!known->second.count(key)) {
        bad(v, "unknown key \"" + key + "\" in [" + section + "]",
            "known keys: " + known_list(known->second));
      }
    }
  }
}

const toml::value* lookup(const toml::value& root, const std::string& section,
                          const std::string& key) {
  if (!root.contains(section)) return nullptr;
  const auto& t = root.at(section);
  if (!t.contains(key)) return nullptr;
  return &t.at(key);
}

std::string get_string(const toml::value& v, const std::string& name) {
  if (!v.is_string()) bad(v, name + " must be a string", "put the value in double quotes");
  std::string s = v.as_string();
  if (s.empty()) bad(v, name + " must not be empty", "give a value or remove the key");
  return s;
}

bool get_bool(const toml::value& v, const std::string& name) {
  if (!v.is_boolean()) bad(v, name + " must be true or false", "write true or false, no quotes");
  return v.as_boolean();
}

std::uint64_t get_count(const toml::value& v, const std::string& name, std::uint64_t min,
                        std::uint64_t max) {
  if (!v.is_integer()) bad(v, name + " must be an integer", "write a number without quotes");
  const auto n = v.as_integer();
  if (n < 0 || static_cast<std::uint64_t>(n) < min || static_cast<std::uint64_t>(n) > max) {
    bad(v, name + " is out of range",
        "allowed: " + std::to_string(min) + " to " + std::to_string(max));
  }
  return static_cast<std::uint64_t>(n);
}

std::filesystem::path get_path(const toml::value& v, const std::string& name,
                               const std::filesystem::path& base) {
  std::filesystem::path p = get_string(v, name);
  return p.is_absolute() ? p : (base / p).lexically_normal();
}

// "sha256:AB:CD:..." or plain hex (colons optional), 32 octets.
std::optional<std::vector<unsigned char>> parse_fingerprint(std::string text) {
  if (text.rfind("sha256:", 0) == 0 || text.rfind("SHA256:", 0) == 0) text = text.substr(7);
  long len = 0;
  unsigned char* raw = OPENSSL_hexstr2buf(text.c_str(), &len);  // skips ':' separators
  if (!raw) return std::nullopt;
  std::vector<unsigned char> out(raw, raw + len);
  OPENSSL_free(raw);
  if (out.size() != 32) return std::nullopt;
  return out;
}

// [tls] ciphers and ciphersuites are checked against OpenSSL when the server starts (the
// TLS context is built then); here only their shape and min_version's value.
void load_tls_policy(const toml::value& root, Config& c) {
  for (const char* key : {"ciphers", "ciphersuites"}) {
    const auto* v = lookup(root, "tls", key);
    if (v == nullptr) continue;
    const std::string name = std::string("tls.") + key;
    std::string text = get_string(*v, name);
    if (text.empty() || text.find_first_of(" \t\r\n,") != std::string::npos) {
      bad(*v, name + " must be a non-empty OpenSSL list separated by colons",
          std::string(key) == "ciphers"
              ? "e.g. \"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256\" (TLS 1.2)"
              : "e.g. \"TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256\" (TLS 1.3)");
    }
    (std::string(key) == "ciphers" ? c.tls_ciphers : c.tls_ciphersuites) = std::move(text);
  }
  if (const auto* v = lookup(root, "tls", "min_version")) {
    const std::string s = get_string(*v, "tls.min_version");
    if (s == "TLSv1.2") {
      c.tls_min_version = TLS1_2_VERSION;
    } else if (s == "TLSv1.3") {
      c.tls_min_version = TLS1_3_VERSION;
    } else if (s == "TLSv1" || s == "TLSv1.0" || s == "TLSv1.1" || s == "SSLv3") {
      bad(*v, "tls.min_version " + s + " is not offered: TLS 1.0 and 1.1 are deprecated (RFC 8996)",
          "use \"TLSv1.2\" (the default) or \"TLSv1.3\"");
    } else {
      bad(*v, "tls.min_version must be \"TLSv1.2\" or \"TLSv1.3\"",
          "e.g. min_version = \"TLSv1.3\"");
    }
  }
}

void load_relay(const toml::value& root, const std::filesystem::path& path,
                const std::filesystem::path& base, Config& c) {
  if (auto* v = lookup(root, "relay", "mode")) {
    const std::string mode = get_string(*v, "relay.mode");
    if (mode == "queue") {
      c.queue_mode = true;
    } else if (mode == "passthrough") {
      c.queue_mode = false;
    } else {
      bad(*v, "relay.mode must be queue or passthrough",
          "queue (the default) answers 250 once the message is on disk; passthrough only "
          "after the relay took it");
    }
  }
  auto* host = lookup(root, "relay", "host");
  auto* hosts = lookup(root, "relay", "hosts");
  if (host && hosts) bad(*hosts, "give either relay.host (and port) or relay.hosts", "not both");
  c.relay.hosts.clear();
  if (host) {
    relay::RelayHost h;
    h.host = get_string(*host, "relay.host");
    if (auto* v = lookup(root, "relay", "port")) {
      h.port = static_cast<std::uint16_t>(get_count(*v, "relay.port", 1, 65535));
    }
    c.relay.hosts.push_back(h);
  } else if (hosts) {
    if (lookup(root, "relay", "port")) {
      bad(*lookup(root, "relay", "port"), "relay.port goes with relay.host",
          "with relay.hosts write each as \"host:port\"");
    }
    if (!hosts->is_array() || hosts->as_array().empty()) {
      bad(*hosts, "relay.hosts must be a list of \"host:port\"",
          "e.g. hosts = [\"relay1.example.net:25\", \"relay2.example.net:25\"]");
    }
    for (const auto& item : hosts->as_array()) {
      const auto e = item.is_string() ? parse_endpoint(item.as_string().str) : std::nullopt;
      if (!e)
        bad(item, "not \"host:port\"", "e.g. \"relay1.example.net:25\" or \"[2001:db8::1]:25\"");
      c.relay.hosts.push_back({e->host, e->port});
    }
  } else {
    throw ConfigError(path.string() +
                      ": [relay] host is required (the smarthost that delivers accepted mail)");
  }
  if (auto* v = lookup(root, "relay", "starttls")) {
    const std::string mode = get_string(*v, "relay.starttls");
    if (mode == "none") {
      c.relay.starttls = relay::RelayTls::kNone;
    } else if (mode == "opportunistic") {
      c.relay.starttls = relay::RelayTls::kOpportunistic;
    } else if (mode == "required") {
      c.relay.starttls = relay::RelayTls::kRequired;
    } else {
      bad(*v, "relay.starttls must be none, opportunistic or required",
          "e.g. starttls = \"required\"");
    }
  }
  if (auto* v = lookup(root, "relay", "ca_file")) {
    c.relay.ca_file = get_path(*v, "relay.ca_file", base).string();
  }
  if (auto* v = lookup(root, "relay", "fingerprint")) {
    const auto fp = parse_fingerprint(get_string(*v, "relay.fingerprint"));
    if (!fp) {
      bad(*v, "relay.fingerprint is not a SHA-256 fingerprint",
          "the output of: openssl x509 -noout -fingerprint -sha256 -in relay.pem");
    }
    c.relay.fingerprint = *fp;
  }
  if ((!c.relay.ca_file.empty() || !c.relay.fingerprint.empty()) &&
      c.relay.starttls != relay::RelayTls::kRequired) {
    bad(*lookup(root, "relay", "starttls"),
        "relay.ca_file and relay.fingerprint need starttls = \"required\"",
        "the certificate is only checked when TLS is required");
  }
  auto* user = lookup(root, "relay", "username");
  auto* password = lookup(root, "relay", "password");
  if (user && !password)
    bad(*user, "relay.username needs relay.password", "add password = \"...\"");
  if (password && !user) bad(*password, "relay.password needs relay.username", "add username");
  if (user) {
    c.relay.username = get_string(*user, "relay.username");
    c.relay.password = get_string(*password, "relay.password");
    if (c.relay.starttls != relay::RelayTls::kRequired) {
      bad(*user, "relay.username needs starttls = \"required\"",
          "the password is only sent over TLS with the relay's certificate verified");
    }
  }
  if (auto* v = lookup(root, "relay", "timeout")) {
    // Until 2026-12 one bound for a connection setup or a whole transaction (default 120):
    // a relay that stopped answering held its messages that long. Its meaning cannot be kept
    // (a transaction's phases now have bounds of their own), so say what to write instead.
    bad(*v, "relay.timeout is replaced by one timeout per phase",
        "write connect_timeout, greeting_timeout, command_timeout and data_timeout (seconds; "
        "defaults 10, 30, 30 and 120), e.g. command_timeout = " +
            std::to_string(get_count(*v, "relay.timeout", 1, 3600)) +
            " to keep the old bound for each reply");
  }
  const auto seconds = [&](const char* key, std::chrono::seconds& out, std::uint64_t min,
                           std::uint64_t max) {
    if (auto* v = lookup(root, "relay", key)) {
      out = std::chrono::seconds(get_count(*v, std::string("relay.") + key, min, max));
    }
  };
  seconds("connect_timeout", c.relay.timeouts.connect, 1, 3600);
  seconds("greeting_timeout", c.relay.timeouts.greeting, 1, 3600);
  seconds("command_timeout", c.relay.timeouts.command, 1, 3600);
  seconds("data_timeout", c.relay.timeouts.data, 1, 3600);
  seconds("idle_limit", c.relay.idle_limit, 1, 3600);
  seconds("check_after", c.relay.check_after, 0, 3600);
  seconds("check_timeout", c.relay.check_timeout, 1, 600);
  seconds("probe_max", c.relay.probe_max, 1, 3600);
  if (auto* v = lookup(root, "relay", "connections")) {
    c.relay.max_idle_connections = get_count(*v, "relay.connections", 1, 1000);
  }
}

void load_srs(const toml::value& root, const std::filesystem::path& path,
              const std::filesystem::path& base, Config& c) {
  if (!root.contains("srs")) return;
  auto* domain = lookup(root, "srs", "domain");
  if (!domain) {
    throw ConfigError(path.string() +
                      ": [srs] domain is required to enable SRS (the domain rewritten senders "
                      "use, whose MX and SPF point at the provider), or remove [srs]");
  }
  const auto d = auth::normalize_domain(get_string(*domain, "srs.domain"));
  if (!d || d->find('.') == std::string::npos) {
    bad(*domain, "srs.domain is not a domain name", "e.g. \"srs.example.net\"");
  }
  c.srs_enabled = true;
  c.srs.domain = *d;
  auto* secrets = lookup(root, "srs", "secrets_file");
  if (!secrets) {
    throw ConfigError(path.string() +
                      ": [srs] secrets_file is required (one secret per line, mode 0600)");
  }
  c.srs_secrets_file = get_path(*secrets, "srs.secrets_file", base);
  if (auto* v = lookup(root, "srs", "hash_length")) {
    c.srs.hash_length = get_count(*v, "srs.hash_length", 4, 27);
  }
  if (auto* v = lookup(root, "srs", "max_age")) {
    c.srs.max_age_days = static_cast<unsigned>(get_count(*v, "srs.max_age", 1, 1000));
  }
  if (auto* v = lookup(root, "srs", "socketmap")) {
    c.srs_socketmap = parse_endpoint(get_string(*v, "srs.socketmap"));
    if (!c.srs_socketmap) bad(*v, "srs.socketmap is not \"host:port\"", "e.g. \"127.0.0.1:10003\"");
  }
}

// [throttle]: login throttling and connections per network (policy/login_throttle.hpp,
// policy/connection_limits.hpp).
void load_throttle(const toml::value& root, Config& c) {
  if (auto* v = lookup(root, "throttle", "enabled"))
    c.throttle_enabled = get_bool(*v, "throttle.enabled");
  auto count = [&](const char* key, std::uint64_t min, std::uint64_t max, auto apply) {
    if (auto* v = lookup(root, "throttle", key))
      apply(get_count(*v, std::string("throttle.") + key, min, max));
  };
  auto& t = c.throttle;
  count("auth_window", 1, 86400, [&](auto n) { t.window = std::chrono::seconds(n); });
  count("auth_delay_after", 1, 1000, [&](auto n) { t.delay_after = static_cast<unsigned>(n); });
  count("auth_first_delay_ms", 0, 60000,
        [&](auto n) { t.first_delay = std::chrono::milliseconds(n); });
  count("auth_max_delay_ms", 0, 60000, [&](auto n) { t.max_delay = std::chrono::milliseconds(n); });
  count("auth_block_after", 1, 100000, [&](auto n) { t.block_after = static_cast<unsigned>(n); });
  count("auth_block_time", 1, 7 * 86400, [&](auto n) { t.block_time = std::chrono::seconds(n); });
  count("account_block_after", 1, 1000000,
        [&](auto n) { t.account_block_after = static_cast<unsigned>(n); });
  count("remember_good_days", 0, 3650,
        [&](auto n) { t.remember_good = std::chrono::seconds(n * 86400); });
  count("connections_per_network", 0, 1000000,
        [&](auto n) { c.connection_limits.concurrent = static_cast<unsigned>(n); });
  count("connections_per_minute", 0, 1000000,
        [&](auto n) { c.connection_limits.per_minute = static_cast<unsigned>(n); });
  if (t.max_delay < t.first_delay) {
    const char* key =
        lookup(root, "throttle", "auth_max_delay_ms") ? "auth_max_delay_ms" : "auth_first_delay_ms";
    bad(*lookup(root, "throttle", key),
        "throttle.auth_max_delay_ms is below throttle.auth_first_delay_ms",
        "the delays double from the first up to the maximum");
  }
  if (auto* v = lookup(root, "throttle", "allow")) {
    if (!v->is_array()) {
      bad(*v, "throttle.allow must be a list of networks",
          "e.g. allow = [\"127.0.0.0/8\", \"::1\", \"192.0.2.0/24\"]");
    }
    t.allow.clear();
    for (const auto& item : v->as_array()) {
      std::string why = "not a string";
      const auto n =
          item.is_string() ? policy::parse_network(item.as_string().str, &why) : std::nullopt;
      if (!n) bad(item, "throttle.allow: " + why, "e.g. \"192.0.2.0/24\" or \"2001:db8::/32\"");
      t.allow.push_back(*n);
    }
  }
  c.connection_limits.allow = t.allow;
}

// [limits]: per-account sending limits (policy/sending_limits.hpp); the database's rows
// override these values per domain and per account.
void load_limits(const toml::value& root, Config& c) {
  if (auto* v = lookup(root, "limits", "enabled"))
    c.limits_enabled = get_bool(*v, "limits.enabled");
  for (std::size_t i = 0; i < policy::kLimitKeys; ++i) {
    const std::string key(policy::kLimitNames[i]);
    if (auto* v = lookup(root, "limits", key)) {
      c.limits[i] = static_cast<std::uint32_t>(get_count(*v, "limits." + key, 0, 100000000));
    }
  }
  if (auto* v = lookup(root, "limits", "sync_interval_ms")) {
    c.limits_sync_interval =
        std::chrono::milliseconds(get_count(*v, "limits.sync_interval_ms", 10, 60000));
  }
}

// [suspension]: automatic suspension of a compromised account (policy/suspension.hpp).
void load_suspension(const toml::value& root, Config& c) {
  if (auto* v = lookup(root, "suspension", "enabled"))
    c.suspension_enabled = get_bool(*v, "suspension.enabled");
  auto count = [&](const char* key, unsigned& out) {
    if (auto* v = lookup(root, "suspension", key))
      out = static_cast<unsigned>(get_count(*v, std::string("suspension.") + key, 0, 1000000));
  };
  count("limit_hours", c.suspension.limit_hours);
  count("login_networks", c.suspension.login_networks);
  count("binding_refusals", c.suspension.binding_refusals);
  if (c.suspension.limit_hours > 24) {
    bad(*lookup(root, "suspension", "limit_hours"), "suspension.limit_hours is above 24",
        "it counts the hours of one day in which the hourly limit was reached (0 = off)");
  }
  if (auto* v = lookup(root, "suspension", "contact")) {
    const std::string text = get_string(*v, "suspension.contact");
    for (char octet : text) {
      const auto ch = static_cast<unsigned char>(octet);
      if (ch < 0x20 || ch == 0x7f) {
        bad(*v, "suspension.contact has a control character",
            "one line of text, e.g. \"contact support at +1 555 0100\"");
      }
    }
    if (text.size() > 200) {
      bad(*v, "suspension.contact is longer than 200 characters", "it goes into an SMTP reply");
    }
    c.policy.suspended_contact = text;
  }
  if (auto* v = lookup(root, "suspension", "notify")) {
    if (!v->is_array()) {
      bad(*v, "suspension.notify must be a list of addresses",
          "e.g. notify = [\"abuse@example.net\"]");
    }
    for (const auto& item : v->as_array()) {
      std::string why = "not a string";
      const std::string text = item.is_string() ? item.as_string().str : std::string{};
      const auto at = text.rfind('@');
      bool ok = item.is_string() && at != std::string::npos && at > 0 && at + 1 < text.size();
      for (char octet : text) {
        const auto ch = static_cast<unsigned char>(octet);
        ok = ok && ch > 0x20 && ch != 0x7f && ch != '<' && ch != '>';
      }
      if (!ok) bad(item, "suspension.notify: not an address", "e.g. \"abuse@example.net\"");
      c.suspension_notify.push_back(text);
    }
  }
}

}  // namespace

std::vector<policy::Network> default_throttle_allow() {
  return {*policy::parse_network("127.0.0.0/8"), *policy::parse_network("::1")};
}

std::string Endpoint::to_string() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

std::optional<Endpoint> parse_endpoint(const std::string& text) {
  Endpoint e;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return std::nullopt;
    e.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) return std::nullopt;
    e.host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (e.host.empty() || ec != std::errc{} || p != port.data() + port.size() || value == 0 ||
      value > 65535) {
    return std::nullopt;
  }
  e.port = static_cast<std::uint16_t>(value);
  return e;
}

std::optional<Config> load_config(const std::filesystem::path& path, std::string& error) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    error = path.string() +
            ": no such configuration file (give one with --config FILE; "
            "contrib/truefrom.toml.sample documents every key)";
    return std::nullopt;
  }
  try {
    const toml::value root = toml::parse(path.string());
    check_keys(root);
    Config c;
    c.file = std::filesystem::absolute(path).lexically_normal();
    const auto base = c.file.parent_path();

    if (auto* v = lookup(root, "server", "hostname")) {
      c.hostname = get_string(*v, "server.hostname");
      if (c.hostname.find_first_of(" \t()<>[]@\\\"") != std::string::npos) {
        bad(*v, "server.hostname is not a host name", "use a fully qualified domain name");
      }
    } else {
      char buf[256] = {};
      gethostname(buf, sizeof buf - 1);
      c.hostname = buf[0] ? buf : "localhost";
    }
    if (auto* v = lookup(root, "server", "max_message_size")) {
      c.max_message_size = get_count(*v, "server.max_message_size", 1024, 1ULL << 31);
    }
    if (auto* v = lookup(root, "server", "max_recipients")) {
      c.max_recipients = get_count(*v, "server.max_recipients", 1, 100000);
    }
    if (auto* v = lookup(root, "server", "max_connections")) {
      c.max_connections = get_count(*v, "server.max_connections", 1, 1000000);
    }
    if (auto* v = lookup(root, "server", "io_threads")) {
      c.io_threads = static_cast<unsigned>(get_count(*v, "server.io_threads", 0, 1024));
    }
    if (auto* v = lookup(root, "server", "worker_threads")) {
      c.worker_threads = static_cast<unsigned>(get_count(*v, "server.worker_threads", 0, 1024));
    }
    if (auto* v = lookup(root, "server", "idle_timeout")) {
      c.idle_timeout = static_cast<unsigned>(get_count(*v, "server.idle_timeout", 1, 86400));
    }
    if (auto* v = lookup(root, "server", "session_timeout")) {
      c.session_timeout = static_cast<unsigned>(get_count(*v, "server.session_timeout", 1, 86400));
    }
    if (auto* v = lookup(root, "server", "drain_timeout")) {
      c.drain_timeout = static_cast<unsigned>(get_count(*v, "server.drain_timeout", 0, 3600));
    }
    if (auto* v = lookup(root, "server", "user")) {
      c.user = get_string(*v, "server.user");
      if (c.user.empty() || c.user.find_first_of(" \t:/") != std::string::npos) {
        bad(*v, "server.user is not a user name",
            "name the account to serve as, e.g. \"truefrom\"");
      }
    }
    if (auto* v = lookup(root, "server", "run_as_root")) {
      c.run_as_root = get_bool(*v, "server.run_as_root");
    }
    if (auto* v = lookup(root, "server", "greeting_delay_ms")) {
      c.greeting_delay_ms =
          static_cast<unsigned>(get_count(*v, "server.greeting_delay_ms", 0, 30000));
    }
    for (const char* key : {"submission", "submissions"}) {
      if (auto* v = lookup(root, "listen", key)) {
        auto ep = parse_endpoint(get_string(*v, std::string("listen.") + key));
        if (!ep)
          bad(*v, std::string("listen.") + key + " is not host:port",
              "e.g. \"0.0.0.0:587\" or \"[::]:587\"");
        (std::string(key) == "submission" ? c.submission : c.submissions) = ep;
      }
    }
    if (!c.submission && !c.submissions) {
      throw ConfigError(path.string() +
                        ": [listen] needs submission = \"host:port\" (STARTTLS) "
                        "and/or submissions = \"host:port\" (implicit TLS)");
    }
    auto* cert = lookup(root, "tls", "certificate");
    auto* key = lookup(root, "tls", "private_key");
    if (cert == nullptr || key == nullptr) {
      throw ConfigError(path.string() +
                        ": [tls] certificate and private_key are required "
                        "(AUTH is only offered over TLS)");
    }
    c.certificate = get_path(*cert, "tls.certificate", base);
    c.private_key = get_path(*key, "tls.private_key", base);
    load_tls_policy(root, c);
    if (auto* v = lookup(root, "database", "url")) c.database_url = get_string(*v, "database.url");
    load_relay(root, path, base, c);
    c.relay.helo_name = c.hostname;
    if (auto* v = lookup(root, "state", "dir")) c.state_dir = get_path(*v, "state.dir", base);
    if (auto* v = lookup(root, "policy", "subaddress_separators")) {
      if (!v->is_string()) bad(*v, "policy.subaddress_separators must be a string", "e.g. \"+\"");
      c.policy.subaddress_separators = v->as_string();
      for (char ch : c.policy.subaddress_separators) {
        const auto u = static_cast<unsigned char>(ch);
        if (u <= 32 || u >= 127 || ch == '@' || ch == '.' || ch == '"' || ch == '\\') {
          bad(*v, "policy.subaddress_separators may only hold printable ASCII other than @ . \" \\",
              "e.g. \"+\" or \"+-\"; \"\" disables subaddresses");
        }
      }
    }
    if (auto* v = lookup(root, "policy", "local_part_case_sensitive")) {
      c.policy.local_part_case_sensitive = get_bool(*v, "policy.local_part_case_sensitive");
    }
    if (auto* v = lookup(root, "policy", "allow_null_sender")) {
      c.policy.allow_null_sender = get_bool(*v, "policy.allow_null_sender");
    }
    if (auto* v = lookup(root, "policy", "refuse_address_in_display_name")) {
      c.policy.refuse_address_in_display_name =
          get_bool(*v, "policy.refuse_address_in_display_name");
    }
    if (auto* v = lookup(root, "policy", "require_alignment")) {
      c.policy.require_alignment = get_bool(*v, "policy.require_alignment");
    }
    if (auto* v = lookup(root, "trace", "authenticated")) {
      c.policy.trace_authenticated = get_bool(*v, "trace.authenticated");
    }
    c.queue_dir = c.state_dir / "queue";
    if (auto* v = lookup(root, "queue", "dir")) c.queue_dir = get_path(*v, "queue.dir", base);
    if (auto* v = lookup(root, "queue", "retry_first")) {
      c.queue.retry_first = std::chrono::seconds(get_count(*v, "queue.retry_first", 1, 86400));
    }
    if (auto* v = lookup(root, "queue", "retry_max")) {
      c.queue.retry_max = std::chrono::seconds(get_count(*v, "queue.retry_max", 1, 7 * 86400));
      if (c.queue.retry_max < c.queue.retry_first) {
        bad(*v, "queue.retry_max is shorter than queue.retry_first",
            "the delay doubles from retry_first up to retry_max");
      }
    }
    if (auto* v = lookup(root, "queue", "lifetime")) {
      c.queue.lifetime = std::chrono::seconds(get_count(*v, "queue.lifetime", 1, 30 * 86400));
    }
    c.queue.hostname = c.hostname;
    c.queue.concurrency = c.relay.max_idle_connections;
    c.dkim_key_dir = c.state_dir / "dkim";
    if (auto* v = lookup(root, "dkim", "key_dir"))
      c.dkim_key_dir = get_path(*v, "dkim.key_dir", base);
    if (auto* v = lookup(root, "dkim", "canonicalization")) {
      const std::string text = get_string(*v, "dkim.canonicalization");
      if (!signer::parse_canonicalization(text, c.dkim_signing)) {
        bad(*v, "dkim.canonicalization must be HEADER/BODY, each relaxed or simple",
            "e.g. \"relaxed/relaxed\" (the default) or \"relaxed/simple\"");
      }
    }
    if (auto* v = lookup(root, "dkim", "fallback_domain")) {
      if (!v->is_string()) bad(*v, "dkim.fallback_domain must be a string", "e.g. \"example.net\"");
      const std::string text = v->as_string().str;
      if (!text.empty()) {
        const auto d = auth::normalize_domain(text);
        if (!d || d->find('.') == std::string::npos) {
          bad(*v, "dkim.fallback_domain is not a domain name",
              "the provider's own domain, e.g. \"example.net\"; \"\" for none");
        }
        c.dkim_fallback_domain = *d;
      }
    }
    if (auto* v = lookup(root, "dkim", "on_key_error")) {
      const std::string mode = get_string(*v, "dkim.on_key_error");
      if (mode == "tempfail") {
        c.dkim_tempfail_on_key_error = true;
      } else if (mode == "unsigned") {
        c.dkim_tempfail_on_key_error = false;
      } else {
        bad(*v, "dkim.on_key_error must be tempfail or unsigned",
            "tempfail answers 451 4.3.5 until the key is fixed; unsigned sends without it");
      }
    }
    load_srs(root, path, base, c);
    load_throttle(root, c);
    load_limits(root, c);
    load_suspension(root, c);
    return c;
  } catch (const ConfigError& e) {
    error = e.what();
  } catch (const toml::exception& e) {
    error = e.what();
  } catch (const std::exception& e) {
    error = path.string() + ": " + e.what();
  }
  return std::nullopt;
}

}  // namespace truefrom::app
