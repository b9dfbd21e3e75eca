// The command line's shared parts: argument parsing, help texts, error output and the
// database a command works on. The commands themselves are in commands.cpp (server,
// accounts, senders, check), dkim_commands.cpp (DKIM keys) and queue_commands.cpp.
// Thread-safety: used by the single main thread of a command.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/identity_store.hpp"
#include "signer/srs/srs.hpp"
#include "submission/app/config.hpp"
#include "submission/app/embedded_postgres.hpp"

namespace truefrom::app {

struct Args {
  std::vector<std::string> positional;
  std::optional<std::string> config;
  bool help = false;
  bool version = false;
  bool json = false;
  bool password_stdin = false;
  bool on_behalf = false;
  std::optional<std::string> forwarder;
  std::optional<std::string> mail_from;
  std::optional<std::string> message;
  std::optional<std::string> selector;
  std::optional<std::string> algorithm;
  std::optional<std::string> bits;
  std::optional<std::string> account;
  std::optional<std::string> reason;
  std::string unknown_option;
};

Args parse_args(const std::vector<std::string>& in);

/// The help text of a command ("" for the overview); nullopt for an unknown command.
std::optional<std::string> help_text(const std::string& command);

/// Prints "truefrom: error: MESSAGE"; returns exit status 1.
int fail(const std::string& message);
/// Prints the error and the command's help; returns exit status 2.
int usage_error(const std::string& message, const std::string& topic);
/// A store error in words for the admin, with the fix where one is known.
std::string describe(const auth::StoreStatus& st);

/// `truefrom dkim ...` (dkim_commands.cpp).
int cmd_dkim(const Args& a, const Config& config);
/// `truefrom queue ...` (queue_commands.cpp).
int cmd_queue(const Args& a, const Config& config);
/// hold, release or delete every queued message of `login` (queue_commands.cpp): prints
/// one line per message and a count; tells a running server. No queue: nothing to do.
int queue_change_account(const Config& config, const std::string& verb, const std::string& login);
/// `truefrom limits ...` (limits_commands.cpp).
int cmd_limits(const Args& a, const Config& config);
/// The sending limits that apply to `login` (as stored), its counts of the last hour and
/// day in the database, and the refusal its next MAIL FROM would get (limits_commands.cpp).
struct LimitReport {
  policy::EffectiveLimits limits;
  policy::SendingCounter::Counts hour, day;
  std::optional<policy::LimitHit> hit;
  smtp::Reply reply;  ///< when hit
};
auth::StoreStatus load_limit_report(auth::IdentityStore& store, const Config& config,
                                    const std::string& login, LimitReport& out);
/// One line per limit: the value, where it comes from, the counts.
void print_limit_report(const LimitReport& report);
/// `truefrom config check` (config_check.cpp).
int cmd_config(const Args& a, const Config& config);
/// `truefrom srs ...` (srs_commands.cpp).
int cmd_srs(const Args& a, const Config& config);
/// The configured SRS with the secrets file read (srs_commands.cpp); nullopt with the
/// reason when [srs] is missing or the secrets file unusable.
std::optional<signer::srs::Srs> load_srs(const Config& config, std::string& error);

/// The database a command works on: the configured URL, or the embedded cluster.
class Database {
 public:
  explicit Database(const Config& config) : config_(config) {}
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  bool open(std::string& error);
  bool embedded() const { return embedded_ != nullptr; }
  auth::IdentityStore& store() { return *store_; }

 private:
  const Config& config_;
  std::unique_ptr<EmbeddedPostgres> embedded_;
  std::unique_ptr<auth::IdentityStore> store_;
  bool keep_running_ = false;
};

}  // namespace truefrom::app
