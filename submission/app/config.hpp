// truefrom's configuration: one TOML file (toml11). Every key is documented in
// contrib/truefrom.toml.sample. Unknown keys and bad values are refused with the file, the
// line and the reason. Relative paths are relative to the file's directory.
// Thread-safety: a plain value once loaded.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "signer/dkim/dkim_signer.hpp"
#include "signer/srs/srs.hpp"
#include "submission/policy/connection_limits.hpp"
#include "submission/policy/login_throttle.hpp"
#include "submission/policy/sender_policy.hpp"
#include "submission/policy/sending_limits.hpp"
#include "submission/policy/suspension.hpp"
#include "submission/queue/scheduler.hpp"
#include "submission/relay/relay_client.hpp"

namespace truefrom::app {

struct Endpoint {
  std::string host;
  std::uint16_t port = 0;
  std::string to_string() const;
};

/// The networks [throttle] allow names when the config says nothing: loopback.
std::vector<policy::Network> default_throttle_allow();

struct Config {
  std::filesystem::path file;

  // [server]
  std::string hostname;
  std::size_t max_message_size = 25 * 1024 * 1024;
  std::size_t max_recipients = 100;
  std::size_t max_connections = 1000;
  unsigned io_threads = 0;          ///< 0: one per core
  unsigned worker_threads = 0;      ///< 0: two per core
  unsigned idle_timeout = 300;      ///< seconds without a complete command (RFC 5321 4.5.3.2.7)
  unsigned session_timeout = 3600;  ///< seconds a session may last in all
  unsigned drain_timeout = 30;      ///< seconds a stop waits for transactions under way
  /// Milliseconds the greeting waits for a client that talks first (554 and close); 0: only
  /// input already there when the greeting is due.
  unsigned greeting_delay_ms = 0;
  /// Started as root, the server binds its ports, reads its TLS key and SRS secrets, then
  /// runs as this user (its groups set) unless run_as_root. Not root: it stays who it is.
  std::string user = "truefrom";
  bool run_as_root = false;

  // [listen]
  std::optional<Endpoint> submission;   ///< STARTTLS (port 587 style)
  std::optional<Endpoint> submissions;  ///< implicit TLS (port 465 style, RFC 8314)

  // [tls]
  std::filesystem::path certificate;
  std::filesystem::path private_key;
  /// Overrides of the default suites (net/tls_options.hpp), OpenSSL syntax; empty: default.
  std::string tls_ciphers;       ///< TLS 1.2 cipher list
  std::string tls_ciphersuites;  ///< TLS 1.3 suites
  int tls_min_version = 0;       ///< TLS1_2_VERSION or TLS1_3_VERSION; 0: TLS 1.2

  // [database]
  std::optional<std::string> database_url;  ///< absent: the embedded cluster under [state] dir

  // [relay]
  bool queue_mode = true;  ///< false: passthrough (250 only after the relay's 250)
  relay::RelayOptions relay;

  // [queue]
  std::filesystem::path queue_dir;  ///< default <state dir>/queue
  queue::QueueOptions queue;

  // [state]
  std::filesystem::path state_dir = "/var/lib/truefrom";

  // [policy] (and [suspension] contact)
  policy::PolicyOptions policy{.suspended_contact = "contact your provider's support"};

  // [throttle]: login throttling and connections per network. Local clients (loopback:
  // webmail on this host) are allowed by default.
  bool throttle_enabled = true;
  policy::ThrottleOptions throttle{.allow = default_throttle_allow()};
  policy::ConnectionLimitOptions connection_limits{.allow = default_throttle_allow()};

  // [limits]: per-account sending limits (0 = none), overridden by the database's rows;
  // counts are written to PostgreSQL and read back every sync interval.
  bool limits_enabled = true;
  std::array<std::uint32_t, policy::kLimitKeys> limits{200, 1000, 100, 2000};
  std::chrono::milliseconds limits_sync_interval{1000};

  // [suspension]: automatic suspension of a compromised account; the contact text is in
  // policy.suspended_contact.
  bool suspension_enabled = true;
  policy::SuspensionOptions suspension;
  std::vector<std::string> suspension_notify;  ///< admins told of an automatic suspension

  // [dkim]
  std::filesystem::path dkim_key_dir;  ///< where keygen writes keys; default <state dir>/dkim
  signer::SignerOptions dkim_signing;
  std::string dkim_fallback_domain;  ///< lower-case A-labels; empty: none
  /// A broken key of the signing domain: 451 4.3.5 (true) or send unsigned (false).
  bool dkim_tempfail_on_key_error = true;

  // [srs]: enabled when `domain` is set (secrets are read from the file at start)
  bool srs_enabled = false;
  signer::srs::SrsOptions srs;
  std::filesystem::path srs_secrets_file;
  std::optional<Endpoint> srs_socketmap;  ///< the reverse service for the inbound MTA
};

/// Loads and checks `path`. On failure returns nullopt and a message naming the file, the
/// line and what to change.
std::optional<Config> load_config(const std::filesystem::path& path, std::string& error);

/// Parses "host:port" or "[v6]:port".
std::optional<Endpoint> parse_endpoint(const std::string& text);

}  // namespace truefrom::app
