// The server's side of the sending limits (policy/sending_limits.hpp) that talks to
// PostgreSQL: the rules (schema 0005's sending_limits rows, reloaded on NOTIFY so a change
// applies within a second) and the counts' sync thread. Every sync interval the thread
// writes the increments counted here in one statement, then reads back the totals of the
// accounts seen here within the last hour (all accounts seen within the day once a
// minute), so every node sees the others' counts within two intervals. While PostgreSQL
// is down the increments wait (the limits hold on the counts at hand) and are written when
// it is back; the outage is logged once. stop() writes what is left.
//
// Overshoot: with N nodes and sync interval T, an account sending at R messages/s through
// each node can pass a limit by at most about (N - 1) x R x 2T (plus its transactions open
// at that moment) before every node refuses it.
// Thread-safety: start()/stop() from one thread; load_account() from any (a worker).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "auth/change_listener.hpp"
#include "auth/identity_store.hpp"
#include "submission/policy/sending_limits.hpp"

namespace truefrom::app {

/// The policy's view of the rows (values out of range are skipped).
std::vector<policy::LimitRule> to_limit_rules(const std::vector<auth::LimitRuleRow>& rows);

class SendingLimitSync {
 public:
  using Log = std::function<void(bool ok, const std::string& line)>;

  SendingLimitSync(auth::IdentityStore& store, policy::LimitRuleHolder& rules,
                   policy::SendingCounter& counter, std::chrono::milliseconds interval, Log log);
  ~SendingLimitSync();
  SendingLimitSync(const SendingLimitSync&) = delete;
  SendingLimitSync& operator=(const SendingLimitSync&) = delete;

  /// Loads the rules now (blocking).
  auth::StoreStatus load_rules();
  /// Starts the rules' listener and the sync thread.
  void start();
  /// Stops both; the increments not yet written are written (one attempt).
  void stop();

  /// An account's first sight on this node (MAIL FROM, on a worker): reads its totals.
  /// False when PostgreSQL could not tell: it is counted on what is at hand, and the sync
  /// thread reads it next time.
  bool load_account(const std::string& login);

 private:
  void loop();
  void sync_once(bool all);

  auth::IdentityStore& store_;
  policy::LimitRuleHolder& rules_;
  policy::SendingCounter& counter_;
  const std::chrono::milliseconds interval_;
  Log log_;
  std::unique_ptr<auth::ChangeListener> listener_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::thread thread_;
  bool down_ = false;  ///< sync thread only: an outage has been logged
};

}  // namespace truefrom::app
