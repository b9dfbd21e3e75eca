// In-memory cache of accounts and their sender identities, kept current by PostgreSQL
// LISTEN/NOTIFY (schema/0002 triggers), so the hot path does not query the database for
// every message yet sees every committed change within a second.
//
// A listener thread holds one connection that LISTENs on the change channel; each
// notification drops that account's entry. While the listener is not connected (start-up,
// PostgreSQL restarting, network trouble) the cache is stale: nothing is served from memory,
// every lookup goes to the store, and when the store is down the lookup fails, so callers
// answer 4xx and never decide on stale data. When the listener reconnects, the whole cache
// is dropped (changes may have been missed meanwhile).
//
// Entries are shared, immutable snapshots: a transaction keeps the one it started with.
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "auth/change_listener.hpp"
#include "auth/identity.hpp"
#include "auth/identity_store.hpp"

namespace truefrom::auth {

class IdentityCache {
 public:
  /// A snapshot of one account; null when there is no such account.
  using Entry = std::shared_ptr<const AccountIdentities>;
  /// Called by the listener thread when it connects (`up` true) or loses its connection.
  using StateCallback = std::function<void(bool up, const std::string& detail)>;

  /// `store` must outlive the cache. At most `max_entries` accounts are kept.
  explicit IdentityCache(IdentityStore& store, std::size_t max_entries = 100000);
  ~IdentityCache();
  IdentityCache(const IdentityCache&) = delete;
  IdentityCache& operator=(const IdentityCache&) = delete;

  /// Starts the listener thread. Without it the cache serves nothing from memory.
  /// `on_change` (optional) is told the lower-case login of every changed account ("" for
  /// all) on the listener thread, after its entry was dropped.
  void start(StateCallback on_state = {},
             std::function<void(const std::string& login_lower)> on_change = {});
  /// Stops the listener thread (also done by the destructor).
  void stop();

  /// The account from memory, when the cache is fresh and holds it. Never blocks.
  bool lookup(const std::string& login, Entry& out) const;
  /// The account from memory or, on a miss or while stale, from the store (blocking: call
  /// from the worker pool).
  StoreStatus get(const std::string& login, Entry& out);

  /// True while the listener is connected, i.e. memory can be trusted.
  bool fresh() const { return fresh_.load(); }

  /// Drops one account ("" drops all). Called for every change notification.
  void invalidate(const std::string& login_lower);

  /// Counts invalidations: a session compares it with what it saw to learn, without a
  /// look-up, that some account changed (its own may have been suspended).
  std::uint64_t changes() const { return changes_.load(std::memory_order_acquire); }

 private:
  IdentityStore& store_;
  const std::size_t max_entries_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  std::uint64_t epoch_ = 0;  // bumped by every invalidation, under mutex_
  std::atomic<bool> fresh_{false};
  std::atomic<std::uint64_t> changes_{0};
  StateCallback on_state_;
  std::function<void(const std::string&)> on_change_;
  std::unique_ptr<ChangeListener> listener_;
};

}  // namespace truefrom::auth
