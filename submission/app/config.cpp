#include "auth/identity_syntax.hpp"
#include "submission/app/config.hpp"
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
#include <openssl/crypto.h>
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
#include <unistd.h>
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
#include <charconv>
#include "auth/identity_syntax.hpp"
#include <map>
#include "auth/identity_syntax.hpp"
#include <set>
#include "auth/identity_syntax.hpp"
#include <toml.hpp>
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
namespace truefrom::app {
#include "auth/identity_syntax.hpp"
namespace {
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
// A value whose location is known, so an error can point at it.
#include "auth/identity_syntax.hpp"
class ConfigError : public std::runtime_error {
#include "auth/identity_syntax.hpp"
 public:
#include "auth/identity_syntax.hpp"
  using std::runtime_error::runtime_error;
#include "auth/identity_syntax.hpp"
};
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
[[noreturn]] void bad(const toml::value& v, const std::string& what, const std::string& hint) {
#include "auth/identity_syntax.hpp"
  throw ConfigError(toml::format_error("[error] " + what, v, hint));
#include "auth/identity_syntax.hpp"
}
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
const std::map<std::string, std::set<std::string>> kKnownKeys{
#include "auth/identity_syntax.hpp"
    {"server",
#include "auth/identity_syntax.hpp"
     {"hostname", "max_message_size", "max_recipients", "max_connections", "io_threads",
#include "auth/identity_syntax.hpp"
      "worker_threads", "idle_timeout", "session_timeout"}},
#include "auth/identity_syntax.hpp"
    {"listen", {"submission", "submissions"}},
#include "auth/identity_syntax.hpp"
    {"tls", {"certificate", "private_key"}},
#include "auth/identity_syntax.hpp"
    {"database", {"url"}},
#include "auth/identity_syntax.hpp"
    {"relay",
#include "auth/identity_syntax.hpp"
     {"mode", "host", "port", "hosts", "starttls", "ca_file", "fingerprint", "username", "password",
#include "auth/identity_syntax.hpp"
      "timeout", "connections"}},
#include "auth/identity_syntax.hpp"
    {"queue", {"dir", "retry_first", "retry_max", "lifetime"}},
#include "auth/identity_syntax.hpp"
    {"state", {"dir"}},
#include "auth/identity_syntax.hpp"
    {"policy",
#include "auth/identity_syntax.hpp"
     {"subaddress_separators", "local_part_case_sensitive", "allow_null_sender",
#include "auth/identity_syntax.hpp"
      "refuse_address_in_display_name", "require_alignment"}},
#include "auth/identity_syntax.hpp"
    {"dkim", {"key_dir", "canonicalization", "fallback_domain", "on_key_error"}},
#include "auth/identity_syntax.hpp"
    {"srs", {"domain", "secrets_file", "hash_length", "max_age", "socketmap"}},
#include "auth/identity_syntax.hpp"
};
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
std::string known_list(const std::set<std::string>& keys) {
#include "auth/identity_syntax.hpp"
  std::string out;
#include "auth/identity_syntax.hpp"
  for (const auto& k : keys) out += (out.empty() ? "" : ", ") + k;
#include "auth/identity_syntax.hpp"
  return out;
#include "auth/identity_syntax.hpp"
}
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
void check_keys(const toml::value& root) {
#include "auth/identity_syntax.hpp"
  for (const auto& [section, value] : root.as_table()) {
#include "auth/identity_syntax.hpp"
    const auto known = kKnownKeys.find(section);
#include "auth/identity_syntax.hpp"
    if (known == kKnownKeys.end()) {
#include "auth/identity_syntax.hpp"
      std::string sections;
#include "auth/identity_syntax.hpp"
      for (const auto& [name, keys] : kKnownKeys) sections += (sections.empty() ? "" : ", ") + name;
#include "auth/identity_syntax.hpp"
      bad(value, "unknown section [" + section + "]", "known sections: " + sections);
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    if (!value.is_table())
#include "auth/identity_syntax.hpp"
      bad(value, "[" + section + "] must be a table", "write it as [" + section + "]");
#include "auth/identity_syntax.hpp"
    for (const auto& [key, v] : value.as_table()) {
#include "auth/identity_syntax.hpp"
      if (!known->second.count(key)) {
#include "auth/identity_syntax.hpp"
        bad(v, "unknown key \"" + key + "\" in [" + section + "]",
#include "auth/identity_syntax.hpp"
            "known keys: " + known_list(known->second));
#include "auth/identity_syntax.hpp"
      }
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
}
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
const toml::value* lookup(const toml::value& root, const std::string& section,
#include "auth/identity_syntax.hpp"
                          const std::string& key) {
#include "auth/identity_syntax.hpp"
  if (!root.contains(section)) return nullptr;
#include "auth/identity_syntax.hpp"
  const auto& t = root.at(section);
#include "auth/identity_syntax.hpp"
  if (!t.contains(key)) return nullptr;
#include "auth/identity_syntax.hpp"
  return &t.at(key);
#include "auth/identity_syntax.hpp"
}
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
std::string get_string(const toml::value& v, const std::string& name) {
#include "auth/identity_syntax.hpp"
  if (!v.is_string()) bad(v, name + " must be a string", "put the value in double quotes");
#include "auth/identity_syntax.hpp"
  std::string s = v.as_string();
#include "auth/identity_syntax.hpp"
  if (s.empty()) bad(v, name + " must not be empty", "give a value or remove the key");
#include "auth/identity_syntax.hpp"
  return s;
#include "auth/identity_syntax.hpp"
}
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
bool get_bool(const toml::value& v, const std::string& name) {
#include "auth/identity_syntax.hpp"
  if (!v.is_boolean()) bad(v, name + " must be true or false", "write true or false, no quotes");
#include "auth/identity_syntax.hpp"
  return v.as_boolean();
#include "auth/identity_syntax.hpp"
}
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
std::uint64_t get_count(const toml::value& v, const std::string& name, std::uint64_t min,
#include "auth/identity_syntax.hpp"
                        std::uint64_t max) {
#include "auth/identity_syntax.hpp"
  if (!v.is_integer()) bad(v, name + " must be an integer", "write a number without quotes");
#include "auth/identity_syntax.hpp"
  const auto n = v.as_integer();
#include "auth/identity_syntax.hpp"
  if (n < 0 || static_cast<std::uint64_t>(n) < min || static_cast<std::uint64_t>(n) > max) {
#include "auth/identity_syntax.hpp"
    bad(v, name + " is out of range",
#include "auth/identity_syntax.hpp"
        "allowed: " + std::to_string(min) + " to " + std::to_string(max));
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
  return static_cast<std::uint64_t>(n);
#include "auth/identity_syntax.hpp"
}
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
std::filesystem::path get_path(const toml::value& v, const std::string& name,
#include "auth/identity_syntax.hpp"
                               const std::filesystem::path& base) {
#include "auth/identity_syntax.hpp"
  std::filesystem::path p = get_string(v, name);
#include "auth/identity_syntax.hpp"
  return p.is_absolute() ? p : (base / p).lexically_normal();
#include "auth/identity_syntax.hpp"
}
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
// "sha256:AB:CD:..." or plain hex (colons optional), 32 octets.
#include "auth/identity_syntax.hpp"
std::optional<std::vector<unsigned char>> parse_fingerprint(std::string text) {
#include "auth/identity_syntax.hpp"
  if (text.rfind("sha256:", 0) == 0 || text.rfind("SHA256:", 0) == 0) text = text.substr(7);
#include "auth/identity_syntax.hpp"
  long len = 0;
#include "auth/identity_syntax.hpp"
  unsigned char* raw = OPENSSL_hexstr2buf(text.c_str(), &len);  // skips ':' separators
#include "auth/identity_syntax.hpp"
  if (!raw) return std::nullopt;
#include "auth/identity_syntax.hpp"
  std::vector<unsigned char> out(raw, raw + len);
#include "auth/identity_syntax.hpp"
  OPENSSL_free(raw);
#include "auth/identity_syntax.hpp"
  if (out.size() != 32) return std::nullopt;
#include "auth/identity_syntax.hpp"
  return out;
#include "auth/identity_syntax.hpp"
}
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
void load_relay(const toml::value& root, const std::filesystem::path& path,
#include "auth/identity_syntax.hpp"
                const std::filesystem::path& base, Config& c) {
#include "auth/identity_syntax.hpp"
  if (auto* v = lookup(root, "relay", "mode")) {
#include "auth/identity_syntax.hpp"
    const std::string mode = get_string(*v, "relay.mode");
#include "auth/identity_syntax.hpp"
    if (mode == "queue") {
#include "auth/identity_syntax.hpp"
      c.queue_mode = true;
#include "auth/identity_syntax.hpp"
    } else if (mode == "passthrough") {
#include "auth/identity_syntax.hpp"
      c.queue_mode = false;
#include "auth/identity_syntax.hpp"
    } else {
#include "auth/identity_syntax.hpp"
      bad(*v, "relay.mode must be queue or passthrough",
#include "auth/identity_syntax.hpp"
          "queue (the default) answers 250 once the message is on disk; passthrough only "
#include "auth/identity_syntax.hpp"
          "after the relay took it");
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
  auto* host = lookup(root, "relay", "host");
#include "auth/identity_syntax.hpp"
  auto* hosts = lookup(root, "relay", "hosts");
#include "auth/identity_syntax.hpp"
  if (host && hosts) bad(*hosts, "give either relay.host (and port) or relay.hosts", "not both");
#include "auth/identity_syntax.hpp"
  c.relay.hosts.clear();
#include "auth/identity_syntax.hpp"
  if (host) {
#include "auth/identity_syntax.hpp"
    relay::RelayHost h;
#include "auth/identity_syntax.hpp"
    h.host = get_string(*host, "relay.host");
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "relay", "port")) {
#include "auth/identity_syntax.hpp"
      h.port = static_cast<std::uint16_t>(get_count(*v, "relay.port", 1, 65535));
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    c.relay.hosts.push_back(h);
#include "auth/identity_syntax.hpp"
  } else if (hosts) {
#include "auth/identity_syntax.hpp"
    if (lookup(root, "relay", "port")) {
#include "auth/identity_syntax.hpp"
      bad(*lookup(root, "relay", "port"), "relay.port goes with relay.host",
#include "auth/identity_syntax.hpp"
          "with relay.hosts write each as \"host:port\"");
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    if (!hosts->is_array() || hosts->as_array().empty()) {
#include "auth/identity_syntax.hpp"
      bad(*hosts, "relay.hosts must be a list of \"host:port\"",
#include "auth/identity_syntax.hpp"
          "e.g. hosts = [\"relay1.example.net:25\", \"relay2.example.net:25\"]");
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    for (const auto& item : hosts->as_array()) {
#include "auth/identity_syntax.hpp"
      const auto e = item.is_string() ? parse_endpoint(item.as_string().str) : std::nullopt;
#include "auth/identity_syntax.hpp"
      if (!e)
#include "auth/identity_syntax.hpp"
        bad(item, "not \"host:port\"", "e.g. \"relay1.example.net:25\" or \"[2001:db8::1]:25\"");
#include "auth/identity_syntax.hpp"
      c.relay.hosts.push_back({e->host, e->port});
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
  } else {
#include "auth/identity_syntax.hpp"
    throw ConfigError(path.string() +
#include "auth/identity_syntax.hpp"
                      ": [relay] host is required (the smarthost that delivers accepted mail)");
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
  if (auto* v = lookup(root, "relay", "starttls")) {
#include "auth/identity_syntax.hpp"
    const std::string mode = get_string(*v, "relay.starttls");
#include "auth/identity_syntax.hpp"
    if (mode == "none") {
#include "auth/identity_syntax.hpp"
      c.relay.starttls = relay::RelayTls::kNone;
#include "auth/identity_syntax.hpp"
    } else if (mode == "opportunistic") {
#include "auth/identity_syntax.hpp"
      c.relay.starttls = relay::RelayTls::kOpportunistic;
#include "auth/identity_syntax.hpp"
    } else if (mode == "required") {
#include "auth/identity_syntax.hpp"
      c.relay.starttls = relay::RelayTls::kRequired;
#include "auth/identity_syntax.hpp"
    } else {
#include "auth/identity_syntax.hpp"
      bad(*v, "relay.starttls must be none, opportunistic or required",
#include "auth/identity_syntax.hpp"
          "e.g. starttls = \"required\"");
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
  if (auto* v = lookup(root, "relay", "ca_file")) {
#include "auth/identity_syntax.hpp"
    c.relay.ca_file = get_path(*v, "relay.ca_file", base).string();
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
  if (auto* v = lookup(root, "relay", "fingerprint")) {
#include "auth/identity_syntax.hpp"
    const auto fp = parse_fingerprint(get_string(*v, "relay.fingerprint"));
#include "auth/identity_syntax.hpp"
    if (!fp) {
#include "auth/identity_syntax.hpp"
      bad(*v, "relay.fingerprint is not a SHA-256 fingerprint",
#include "auth/identity_syntax.hpp"
          "the output of: openssl x509 -noout -fingerprint -sha256 -in relay.pem");
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    c.relay.fingerprint = *fp;
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
  if ((!c.relay.ca_file.empty() || !c.relay.fingerprint.empty()) &&
#include "auth/identity_syntax.hpp"
      c.relay.starttls != relay::RelayTls::kRequired) {
#include "auth/identity_syntax.hpp"
    bad(*lookup(root, "relay", "starttls"),
#include "auth/identity_syntax.hpp"
        "relay.ca_file and relay.fingerprint need starttls = \"required\"",
#include "auth/identity_syntax.hpp"
        "the certificate is only checked when TLS is required");
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
  auto* user = lookup(root, "relay", "username");
#include "auth/identity_syntax.hpp"
  auto* password = lookup(root, "relay", "password");
#include "auth/identity_syntax.hpp"
  if (user && !password)
#include "auth/identity_syntax.hpp"
    bad(*user, "relay.username needs relay.password", "add password = \"...\"");
#include "auth/identity_syntax.hpp"
  if (password && !user) bad(*password, "relay.password needs relay.username", "add username");
#include "auth/identity_syntax.hpp"
  if (user) {
#include "auth/identity_syntax.hpp"
    c.relay.username = get_string(*user, "relay.username");
#include "auth/identity_syntax.hpp"
    c.relay.password = get_string(*password, "relay.password");
#include "auth/identity_syntax.hpp"
    if (c.relay.starttls != relay::RelayTls::kRequired) {
#include "auth/identity_syntax.hpp"
      bad(*user, "relay.username needs starttls = \"required\"",
#include "auth/identity_syntax.hpp"
          "the password is only sent over TLS with the relay's certificate verified");
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
  if (auto* v = lookup(root, "relay", "timeout")) {
#include "auth/identity_syntax.hpp"
    c.relay.timeout = std::chrono::seconds(get_count(*v, "relay.timeout", 1, 3600));
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
  if (auto* v = lookup(root, "relay", "connections")) {
#include "auth/identity_syntax.hpp"
    c.relay.max_idle_connections = get_count(*v, "relay.connections", 1, 1000);
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
}
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
void load_srs(const toml::value& root, const std::filesystem::path& path,
#include "auth/identity_syntax.hpp"
              const std::filesystem::path& base, Config& c) {
#include "auth/identity_syntax.hpp"
  if (!root.contains("srs")) return;
#include "auth/identity_syntax.hpp"
  auto* domain = lookup(root, "srs", "domain");
#include "auth/identity_syntax.hpp"
  if (!domain) {
#include "auth/identity_syntax.hpp"
    throw ConfigError(path.string() +
#include "auth/identity_syntax.hpp"
                      ": [srs] domain is required to enable SRS (the domain rewritten senders "
#include "auth/identity_syntax.hpp"
                      "use, whose MX and SPF point at the provider), or remove [srs]");
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
  const auto d = auth::normalize_domain(get_string(*domain, "srs.domain"));
#include "auth/identity_syntax.hpp"
  if (!d || d->find('.') == std::string::npos) {
#include "auth/identity_syntax.hpp"
    bad(*domain, "srs.domain is not a domain name", "e.g. \"srs.example.net\"");
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
  c.srs_enabled = true;
#include "auth/identity_syntax.hpp"
  c.srs.domain = *d;
#include "auth/identity_syntax.hpp"
  auto* secrets = lookup(root, "srs", "secrets_file");
#include "auth/identity_syntax.hpp"
  if (!secrets) {
#include "auth/identity_syntax.hpp"
    throw ConfigError(path.string() +
#include "auth/identity_syntax.hpp"
                      ": [srs] secrets_file is required (one secret per line, mode 0600)");
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
  c.srs_secrets_file = get_path(*secrets, "srs.secrets_file", base);
#include "auth/identity_syntax.hpp"
  if (auto* v = lookup(root, "srs", "hash_length")) {
#include "auth/identity_syntax.hpp"
    c.srs.hash_length = get_count(*v, "srs.hash_length", 4, 27);
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
  if (auto* v = lookup(root, "srs", "max_age")) {
#include "auth/identity_syntax.hpp"
    c.srs.max_age_days = static_cast<unsigned>(get_count(*v, "srs.max_age", 1, 1000));
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
  if (auto* v = lookup(root, "srs", "socketmap")) {
#include "auth/identity_syntax.hpp"
    c.srs_socketmap = parse_endpoint(get_string(*v, "srs.socketmap"));
#include "auth/identity_syntax.hpp"
    if (!c.srs_socketmap) bad(*v, "srs.socketmap is not \"host:port\"", "e.g. \"127.0.0.1:10003\"");
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
}
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
}  // namespace
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
std::string Endpoint::to_string() const {
#include "auth/identity_syntax.hpp"
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
#include "auth/identity_syntax.hpp"
         std::to_string(port);
#include "auth/identity_syntax.hpp"
}
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
std::optional<Endpoint> parse_endpoint(const std::string& text) {
#include "auth/identity_syntax.hpp"
  Endpoint e;
#include "auth/identity_syntax.hpp"
  std::string port;
#include "auth/identity_syntax.hpp"
  if (!text.empty() && text.front() == '[') {
#include "auth/identity_syntax.hpp"
    const auto close = text.find(']');
#include "auth/identity_syntax.hpp"
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
#include "auth/identity_syntax.hpp"
      return std::nullopt;
#include "auth/identity_syntax.hpp"
    e.host = text.substr(1, close - 1);
#include "auth/identity_syntax.hpp"
    port = text.substr(close + 2);
#include "auth/identity_syntax.hpp"
  } else {
#include "auth/identity_syntax.hpp"
    const auto colon = text.rfind(':');
#include "auth/identity_syntax.hpp"
    if (colon == std::string::npos || text.find(':') != colon) return std::nullopt;
#include "auth/identity_syntax.hpp"
    e.host = text.substr(0, colon);
#include "auth/identity_syntax.hpp"
    port = text.substr(colon + 1);
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
  unsigned value = 0;
#include "auth/identity_syntax.hpp"
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
#include "auth/identity_syntax.hpp"
  if (e.host.empty() || ec != std::errc{} || p != port.data() + port.size() || value == 0 ||
#include "auth/identity_syntax.hpp"
      value > 65535) {
#include "auth/identity_syntax.hpp"
    return std::nullopt;
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
  e.port = static_cast<std::uint16_t>(value);
#include "auth/identity_syntax.hpp"
  return e;
#include "auth/identity_syntax.hpp"
}
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
std::optional<Config> load_config(const std::filesystem::path& path, std::string& error) {
#include "auth/identity_syntax.hpp"
  std::error_code ec;
#include "auth/identity_syntax.hpp"
  if (!std::filesystem::is_regular_file(path, ec)) {
#include "auth/identity_syntax.hpp"
    error = path.string() +
#include "auth/identity_syntax.hpp"
            ": no such configuration file (give one with --config FILE; "
#include "auth/identity_syntax.hpp"
            "contrib/truefrom.toml.sample documents every key)";
#include "auth/identity_syntax.hpp"
    return std::nullopt;
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
  try {
#include "auth/identity_syntax.hpp"
    const toml::value root = toml::parse(path.string());
#include "auth/identity_syntax.hpp"
    check_keys(root);
#include "auth/identity_syntax.hpp"
    Config c;
#include "auth/identity_syntax.hpp"
    c.file = std::filesystem::absolute(path).lexically_normal();
#include "auth/identity_syntax.hpp"
    const auto base = c.file.parent_path();
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "server", "hostname")) {
#include "auth/identity_syntax.hpp"
      c.hostname = get_string(*v, "server.hostname");
#include "auth/identity_syntax.hpp"
      if (c.hostname.find_first_of(" \t()<>[]@\\\"") != std::string::npos) {
#include "auth/identity_syntax.hpp"
        bad(*v, "server.hostname is not a host name", "use a fully qualified domain name");
#include "auth/identity_syntax.hpp"
      }
#include "auth/identity_syntax.hpp"
    } else {
#include "auth/identity_syntax.hpp"
      char buf[256] = {};
#include "auth/identity_syntax.hpp"
      gethostname(buf, sizeof buf - 1);
#include "auth/identity_syntax.hpp"
      c.hostname = buf[0] ? buf : "localhost";
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "server", "max_message_size")) {
#include "auth/identity_syntax.hpp"
      c.max_message_size = get_count(*v, "server.max_message_size", 1024, 1ULL << 31);
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "server", "max_recipients")) {
#include "auth/identity_syntax.hpp"
      c.max_recipients = get_count(*v, "server.max_recipients", 1, 100000);
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "server", "max_connections")) {
#include "auth/identity_syntax.hpp"
      c.max_connections = get_count(*v, "server.max_connections", 1, 1000000);
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "server", "io_threads")) {
#include "auth/identity_syntax.hpp"
      c.io_threads = static_cast<unsigned>(get_count(*v, "server.io_threads", 0, 1024));
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "server", "worker_threads")) {
#include "auth/identity_syntax.hpp"
      c.worker_threads = static_cast<unsigned>(get_count(*v, "server.worker_threads", 0, 1024));
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "server", "idle_timeout")) {
#include "auth/identity_syntax.hpp"
      c.idle_timeout = static_cast<unsigned>(get_count(*v, "server.idle_timeout", 1, 86400));
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "server", "session_timeout")) {
#include "auth/identity_syntax.hpp"
      c.session_timeout = static_cast<unsigned>(get_count(*v, "server.session_timeout", 1, 86400));
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    for (const char* key : {"submission", "submissions"}) {
#include "auth/identity_syntax.hpp"
      if (auto* v = lookup(root, "listen", key)) {
#include "auth/identity_syntax.hpp"
        auto ep = parse_endpoint(get_string(*v, std::string("listen.") + key));
#include "auth/identity_syntax.hpp"
        if (!ep)
#include "auth/identity_syntax.hpp"
          bad(*v, std::string("listen.") + key + " is not host:port",
#include "auth/identity_syntax.hpp"
              "e.g. \"0.0.0.0:587\" or \"[::]:587\"");
#include "auth/identity_syntax.hpp"
        (std::string(key) == "submission" ? c.submission : c.submissions) = ep;
#include "auth/identity_syntax.hpp"
      }
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    if (!c.submission && !c.submissions) {
#include "auth/identity_syntax.hpp"
      throw ConfigError(path.string() +
#include "auth/identity_syntax.hpp"
                        ": [listen] needs submission = \"host:port\" (STARTTLS) "
#include "auth/identity_syntax.hpp"
                        "and/or submissions = \"host:port\" (implicit TLS)");
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    auto* cert = lookup(root, "tls", "certificate");
#include "auth/identity_syntax.hpp"
    auto* key = lookup(root, "tls", "private_key");
#include "auth/identity_syntax.hpp"
    if (cert == nullptr || key == nullptr) {
#include "auth/identity_syntax.hpp"
      throw ConfigError(path.string() +
#include "auth/identity_syntax.hpp"
                        ": [tls] certificate and private_key are required "
#include "auth/identity_syntax.hpp"
                        "(AUTH is only offered over TLS)");
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    c.certificate = get_path(*cert, "tls.certificate", base);
#include "auth/identity_syntax.hpp"
    c.private_key = get_path(*key, "tls.private_key", base);
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "database", "url")) c.database_url = get_string(*v, "database.url");
#include "auth/identity_syntax.hpp"
    load_relay(root, path, base, c);
#include "auth/identity_syntax.hpp"
    c.relay.helo_name = c.hostname;
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "state", "dir")) c.state_dir = get_path(*v, "state.dir", base);
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "policy", "subaddress_separators")) {
#include "auth/identity_syntax.hpp"
      if (!v->is_string()) bad(*v, "policy.subaddress_separators must be a string", "e.g. \"+\"");
#include "auth/identity_syntax.hpp"
      c.policy.subaddress_separators = v->as_string();
#include "auth/identity_syntax.hpp"
      for (char ch : c.policy.subaddress_separators) {
#include "auth/identity_syntax.hpp"
        const auto u = static_cast<unsigned char>(ch);
#include "auth/identity_syntax.hpp"
        if (u <= 32 || u >= 127 || ch == '@' || ch == '.' || ch == '"' || ch == '\\') {
#include "auth/identity_syntax.hpp"
          bad(*v, "policy.subaddress_separators may only hold printable ASCII other than @ . \" \\",
#include "auth/identity_syntax.hpp"
              "e.g. \"+\" or \"+-\"; \"\" disables subaddresses");
#include "auth/identity_syntax.hpp"
        }
#include "auth/identity_syntax.hpp"
      }
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "policy", "local_part_case_sensitive")) {
#include "auth/identity_syntax.hpp"
      c.policy.local_part_case_sensitive = get_bool(*v, "policy.local_part_case_sensitive");
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "policy", "allow_null_sender")) {
#include "auth/identity_syntax.hpp"
      c.policy.allow_null_sender = get_bool(*v, "policy.allow_null_sender");
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "policy", "refuse_address_in_display_name")) {
#include "auth/identity_syntax.hpp"
      c.policy.refuse_address_in_display_name =
#include "auth/identity_syntax.hpp"
          get_bool(*v, "policy.refuse_address_in_display_name");
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "policy", "require_alignment")) {
#include "auth/identity_syntax.hpp"
      c.policy.require_alignment = get_bool(*v, "policy.require_alignment");
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    c.queue_dir = c.state_dir / "queue";
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "queue", "dir")) c.queue_dir = get_path(*v, "queue.dir", base);
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "queue", "retry_first")) {
#include "auth/identity_syntax.hpp"
      c.queue.retry_first = std::chrono::seconds(get_count(*v, "queue.retry_first", 1, 86400));
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "queue", "retry_max")) {
#include "auth/identity_syntax.hpp"
      c.queue.retry_max = std::chrono::seconds(get_count(*v, "queue.retry_max", 1, 7 * 86400));
#include "auth/identity_syntax.hpp"
      if (c.queue.retry_max < c.queue.retry_first) {
#include "auth/identity_syntax.hpp"
        bad(*v, "queue.retry_max is shorter than queue.retry_first",
#include "auth/identity_syntax.hpp"
            "the delay doubles from retry_first up to retry_max");
#include "auth/identity_syntax.hpp"
      }
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "queue", "lifetime")) {
#include "auth/identity_syntax.hpp"
      c.queue.lifetime = std::chrono::seconds(get_count(*v, "queue.lifetime", 1, 30 * 86400));
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    c.queue.hostname = c.hostname;
#include "auth/identity_syntax.hpp"
    c.queue.concurrency = c.relay.max_idle_connections;
#include "auth/identity_syntax.hpp"
    c.dkim_key_dir = c.state_dir / "dkim";
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "dkim", "key_dir"))
#include "auth/identity_syntax.hpp"
      c.dkim_key_dir = get_path(*v, "dkim.key_dir", base);
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "dkim", "canonicalization")) {
#include "auth/identity_syntax.hpp"
      const std::string text = get_string(*v, "dkim.canonicalization");
#include "auth/identity_syntax.hpp"
      if (!signer::parse_canonicalization(text, c.dkim_signing)) {
#include "auth/identity_syntax.hpp"
        bad(*v, "dkim.canonicalization must be HEADER/BODY, each relaxed or simple",
#include "auth/identity_syntax.hpp"
            "e.g. \"relaxed/relaxed\" (the default) or \"relaxed/simple\"");
#include "auth/identity_syntax.hpp"
      }
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "dkim", "fallback_domain")) {
#include "auth/identity_syntax.hpp"
      if (!v->is_string()) bad(*v, "dkim.fallback_domain must be a string", "e.g. \"example.net\"");
#include "auth/identity_syntax.hpp"
      const std::string text = v->as_string().str;
#include "auth/identity_syntax.hpp"
      if (!text.empty()) {
#include "auth/identity_syntax.hpp"
        const auto d = auth::normalize_domain(text);
#include "auth/identity_syntax.hpp"
        if (!d || d->find('.') == std::string::npos) {
#include "auth/identity_syntax.hpp"
          bad(*v, "dkim.fallback_domain is not a domain name",
#include "auth/identity_syntax.hpp"
              "the provider's own domain, e.g. \"example.net\"; \"\" for none");
#include "auth/identity_syntax.hpp"
        }
#include "auth/identity_syntax.hpp"
        c.dkim_fallback_domain = *d;
#include "auth/identity_syntax.hpp"
      }
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    if (auto* v = lookup(root, "dkim", "on_key_error")) {
#include "auth/identity_syntax.hpp"
      const std::string mode = get_string(*v, "dkim.on_key_error");
#include "auth/identity_syntax.hpp"
      if (mode == "tempfail") {
#include "auth/identity_syntax.hpp"
        c.dkim_tempfail_on_key_error = true;
#include "auth/identity_syntax.hpp"
      } else if (mode == "unsigned") {
#include "auth/identity_syntax.hpp"
        c.dkim_tempfail_on_key_error = false;
#include "auth/identity_syntax.hpp"
      } else {
#include "auth/identity_syntax.hpp"
        bad(*v, "dkim.on_key_error must be tempfail or unsigned",
#include "auth/identity_syntax.hpp"
            "tempfail answers 451 4.3.5 until the key is fixed; unsigned sends without it");
#include "auth/identity_syntax.hpp"
      }
#include "auth/identity_syntax.hpp"
    }
#include "auth/identity_syntax.hpp"
    load_srs(root, path, base, c);
#include "auth/identity_syntax.hpp"
    return c;
#include "auth/identity_syntax.hpp"
  } catch (const ConfigError& e) {
#include "auth/identity_syntax.hpp"
    error = e.what();
#include "auth/identity_syntax.hpp"
  } catch (const toml::exception& e) {
#include "auth/identity_syntax.hpp"
    error = e.what();
#include "auth/identity_syntax.hpp"
  } catch (const std::exception& e) {
#include "auth/identity_syntax.hpp"
    error = path.string() + ": " + e.what();
#include "auth/identity_syntax.hpp"
  }
#include "auth/identity_syntax.hpp"
  return std::nullopt;
#include "auth/identity_syntax.hpp"
}
#include "auth/identity_syntax.hpp"

#include "auth/identity_syntax.hpp"
}  // namespace truefrom::app
