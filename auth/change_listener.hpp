// A thread that LISTENs on one PostgreSQL NOTIFY channel of the schema's triggers and
// reconnects (every second) after the connection fails. Used by the identity cache and by
// the server's DKIM key watcher.
// Thread-safety: start()/stop() from one thread; the callbacks run on the listener thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "auth/identity_store.hpp"

namespace truefrom::auth {

class ChangeListener {
 public:
  struct Callbacks {
    /// Listening (again): changes made while nobody listened are unknown.
    std::function<void()> on_up;
    /// One notification's payload.
    std::function<void(const std::string& payload)> on_change;
    /// The connection failed or could not be made; `first`: the first failure since the
    /// last on_up (report an outage once, not once per retry).
    std::function<void(const std::string& detail, bool first)> on_down;
  };

  /// `store` must outlive the listener.
  ChangeListener(IdentityStore& store, std::string channel, Callbacks callbacks);
  ~ChangeListener();
  ChangeListener(const ChangeListener&) = delete;
  ChangeListener& operator=(const ChangeListener&) = delete;

  void start();
  /// Stops and joins the thread (also done by the destructor); no callback runs after it.
  void stop();

 private:
  void loop();

  IdentityStore& store_;
  const std::string channel_;
  const Callbacks callbacks_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::thread thread_;
};

/// A started listener that keeps a copy of `what` (e.g. "DKIM keys") current: `load` runs
/// when the listener (re)connects and on every notification; a failed load and each outage
/// (once) are reported through `log(false, line)` and the previous copy stays in use.
std::unique_ptr<ChangeListener> start_reloader(IdentityStore& store, const std::string& channel,
                                               const std::string& what,
                                               std::function<StoreStatus()> load,
                                               std::function<void(bool, const std::string&)> log);

}  // namespace truefrom::auth
