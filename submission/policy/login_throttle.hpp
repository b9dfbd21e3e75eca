// Login throttling (the abuse controls' first line): failed logins are counted per client
// network (client_network.hpp: an IPv4 address or an IPv6 /64) and per account, in sliding
// windows. Past `delay_after` failures a network's further AUTH attempts wait, doubling from
// `first_delay` up to `max_delay`, before their credentials are checked (so an early 235
// cannot tell success from a delayed failure); past `block_after` the network is refused
// for `block_time` (454 4.7.0 at AUTH, 421 4.7.0 at connect). An account with
// `account_block_after` failures in the window (an attack from many networks) is refused
// like a wrong password (same reply, same work: its password is never checked), except from
// a network that logged in to it successfully within `remember_good`: an attacker cannot
// lock its owner out. Allowed networks are never
// delayed or blocked. Memory is bounded (`max_tracked` networks and accounts each; when
// the tables are full of entries that still count, newcomers are not tracked).
//
// Sans-IO: the caller passes the time and performs the delays. State is per process (a
// restart forgets it). Thread-safe: one mutex, held for a map look-up.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "submission/policy/client_network.hpp"

namespace truefrom::policy {

struct ThrottleOptions {
  using seconds = std::chrono::seconds;
  using milliseconds = std::chrono::milliseconds;
  seconds window{600};       ///< failures older than this no longer count
  unsigned delay_after = 3;  ///< failures of a network before its attempts wait
  milliseconds first_delay{1000};
  milliseconds max_delay{8000};
  unsigned block_after = 10;          ///< failures of a network that block it
  seconds block_time{900};            ///< how long a blocked network stays refused
  unsigned account_block_after = 30;  ///< failures of one account (from anywhere) that block it
  seconds remember_good{30 * 86400};  ///< a successful (network, account) pair stays trusted
  std::vector<Network> allow;         ///< never delayed or blocked
  std::size_t max_tracked = 65536;    ///< networks (and accounts) remembered at most
};

class LoginThrottle {
 public:
  using Clock = std::chrono::steady_clock;

  explicit LoginThrottle(ThrottleOptions options = {});

  const ThrottleOptions& options() const { return options_; }

  struct Gate {
    bool blocked = false;           ///< refuse: 454 at AUTH, 421 at connect
    Clock::duration retry_after{};  ///< blocked: until the block ends
    Clock::duration delay{};        ///< wait this long before checking credentials
    unsigned failures = 0;          ///< of the network, in the window
  };
  /// Before a connection is served or an AUTH exchange starts.
  Gate check(const IpAddress& client, Clock::time_point now);

  /// A failed login from `client` for `login` (as typed; "" when none was given). Returns the
  /// network's failures in the window and whether this one blocked it.
  struct Recorded {
    unsigned failures = 0;
    bool blocked_now = false;
  };
  Recorded record_failure(const IpAddress& client, const std::string& login, Clock::time_point now);

  /// Before the credentials of `login` are checked: true when the account is blocked for
  /// this network (`account_block_after` failures in the window from anywhere, and this
  /// network has not logged in to it within `remember_good`). The caller then answers as
  /// for a wrong password, after the same work, whatever the password is.
  bool account_blocked(const IpAddress& client, const std::string& login, Clock::time_point now);

  /// The credentials of `login` were right: the (network, account) pair is remembered as
  /// the owner's, and the account's failures from this network are cleared.
  void record_success(const IpAddress& client, const std::string& login, Clock::time_point now);

 private:
  struct Source {
    std::deque<Clock::time_point> failures;
    Clock::time_point blocked_until{};
    Clock::time_point last{};
  };
  struct Account {
    std::deque<std::pair<Clock::time_point, std::string>> failures;  ///< (when, network)
    std::map<std::string, Clock::time_point> good;                   ///< network -> last success
    Clock::time_point last{};
  };

  bool allowed(const IpAddress& client) const;
  void prune(std::deque<Clock::time_point>& d, Clock::time_point now) const;
  void prune(Account& a, Clock::time_point now) const;
  bool room_for_source(const std::string& key, Clock::time_point now);
  bool room_for_account(const std::string& key, Clock::time_point now);

  ThrottleOptions options_;
  std::mutex mutex_;
  std::map<std::string, Source> sources_;
  std::map<std::string, Account> accounts_;
  Clock::time_point next_source_sweep_{};
  Clock::time_point next_account_sweep_{};
};

/// ASCII lower-case login, the key accounts are counted by.
std::string throttle_account_key(const std::string& login);

}  // namespace truefrom::policy
