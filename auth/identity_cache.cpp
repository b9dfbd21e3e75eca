#include "auth/identity_cache.hpp"

#include <chrono>

#include "submission/core/address.hpp"

namespace truefrom::auth {
namespace {
constexpr std::chrono::seconds kReconnectDelay{1};
}  // namespace

IdentityCache::IdentityCache(IdentityStore& store, std::size_t max_entries)
    : store_(store), max_entries_(max_entries) {}

IdentityCache::~IdentityCache() { stop(); }

void IdentityCache::start(StateCallback on_state) {
  on_state_ = std::move(on_state);
  stopping_ = false;
  listener_ = std::thread([this] { listen_loop(); });
}

void IdentityCache::stop() {
  {
    std::lock_guard lock(stop_mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (listener_.joinable()) listener_.join();
  fresh_ = false;
}

void IdentityCache::listen_loop() {
  bool reported_down = false;  // one report per outage, not one per retry
  const std::function<void()> on_ready = [this, &reported_down] {
    invalidate("");  // changes made while nobody listened are unknown
    fresh_ = true;
    reported_down = false;
    if (on_state_) on_state_(true, "listening for identity changes");
  };
  const std::function<void(const std::string&)> on_change = [this](const std::string& login) {
    invalidate(login);
  };
  while (!stopping_) {
    const StoreStatus st =
        store_.listen_for_changes(kIdentityChannel, stopping_, on_ready, on_change);
    fresh_ = false;
    invalidate("");
    if (stopping_) break;
    if (on_state_ && !reported_down) {
      on_state_(false, st.detail.empty() ? "change listener stopped" : st.detail);
    }
    reported_down = true;
    std::unique_lock lock(stop_mutex_);
    stop_cv_.wait_for(lock, kReconnectDelay, [this] { return stopping_.load(); });
  }
}

void IdentityCache::invalidate(const std::string& login_lower) {
  std::lock_guard lock(mutex_);
  ++epoch_;
  if (login_lower.empty()) {
    entries_.clear();
  } else {
    entries_.erase(login_lower);
  }
}

bool IdentityCache::lookup(const std::string& login, Entry& out) const {
  if (!fresh_) return false;
  const std::string key = smtp::ascii_lower(login);
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  out = it->second;
  return true;
}

StoreStatus IdentityCache::get(const std::string& login, Entry& out) {
  const std::string key = smtp::ascii_lower(login);
  std::uint64_t epoch = 0;
  const bool was_fresh = fresh_;
  {
    std::lock_guard lock(mutex_);
    if (was_fresh) {
      const auto it = entries_.find(key);
      if (it != entries_.end()) {
        out = it->second;
        return StoreStatus{};
      }
    }
    epoch = epoch_;
  }
  std::optional<AccountIdentities> found;
  const StoreStatus st = store_.find_for_auth(login, found);
  if (!st) return st;
  out = found ? std::make_shared<const AccountIdentities>(std::move(*found)) : nullptr;
  std::lock_guard lock(mutex_);
  // Keep it only if no change was announced while it was read (else it may predate it).
  if (was_fresh && fresh_ && epoch == epoch_) {
    if (entries_.size() >= max_entries_) entries_.clear();
    entries_[key] = out;
  }
  return StoreStatus{};
}

}  // namespace truefrom::auth
