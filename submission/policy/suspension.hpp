// Automatic suspension of a compromised account (the abuse controls' last line): a stolen
// password shows itself by its traffic. Three triggers, each with its own threshold (0 =
// off):
//   - the hourly message limit reached in `limit_hours` different clock hours within a day
//     (one refusal or a thousand in the same hour count once);
//   - successful logins from more than `login_networks` distinct wide networks (/24, IPv6
//     /48: client_network.hpp) within an hour;
//   - more than `binding_refusals` refused sender-binding attempts (a foreign MAIL FROM or
//     From:) within an hour.
// A trigger fires once per account until reset() (the account was resumed): the caller
// suspends it (schema 0006), ends its sessions, holds its queue and notifies the admins.
//
// Sans-IO: the caller passes the time (Unix seconds). State is per process: with several
// nodes each counts what it sees. Memory: at most `max_tracked` accounts (newcomers past it
// are not tracked; accounts with nothing left in their windows are swept first).
// Thread-safety: one mutex, held for a map look-up.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace truefrom::policy {

struct SuspensionOptions {
  unsigned limit_hours = 3;        ///< hours of a day in which the hourly limit was reached
  unsigned login_networks = 5;     ///< distinct /24 (/48) networks with a login in an hour
  unsigned binding_refusals = 20;  ///< refused foreign senders in an hour
  std::size_t max_tracked = 65536;
};

struct SuspensionTrigger {
  std::string rule;      ///< "hourly limit", "login networks", "sender binding"
  std::string evidence;  ///< counts, networks, times, for the log and the admin
};

/// The admins' notification of an automatic suspension: a plain-text message (RFC 5322,
/// CRLF, 7-bit unless the login or evidence is UTF-8) from postmaster@hostname, sent with
/// the null envelope sender (it never bounces) through the normal relay.
struct SuspensionNotice {
  std::string hostname;
  std::string login;
  SuspensionTrigger trigger;
  std::vector<std::string> to;  ///< the admins' addresses
  std::int64_t now = 0;
  std::string message_id;  ///< "<...@hostname>"
};
std::string suspension_notice(const SuspensionNotice& n);

class SuspensionTriggers {
 public:
  using Time = std::int64_t;
  explicit SuspensionTriggers(SuspensionOptions options = {});

  std::optional<SuspensionTrigger> hourly_limit_reached(const std::string& login, Time now);
  std::optional<SuspensionTrigger> login_succeeded(const std::string& login,
                                                   const std::string& wide_network, Time now);
  /// `what`: the refused address and where ("MAIL FROM <x@y>", "From: x@y").
  std::optional<SuspensionTrigger> binding_refused(const std::string& login,
                                                   const std::string& what, Time now);
  /// The account was resumed: it starts afresh.
  void reset(const std::string& login);

 private:
  struct Account {
    std::set<Time> limit_hours;                           ///< clock hours (t / 3600)
    /// Wide network -> its last successful login; at most login_networks + 1 entries.
    std::map<std::string, Time> logins;
    /// (when, what), the newest last; at most binding_refusals + 1 entries.
    std::deque<std::pair<Time, std::string>> refusals;
    bool fired = false;
    Time last = 0;
  };
  Account* track(const std::string& login, Time now);
  std::optional<SuspensionTrigger> fire(Account& a, SuspensionTrigger t);

  SuspensionOptions options_;
  std::mutex mutex_;
  std::map<std::string, Account> accounts_;
  Time next_sweep_ = 0;
};

}  // namespace truefrom::policy
