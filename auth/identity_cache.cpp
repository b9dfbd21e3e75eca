#include "auth/identity_cache.hpp"

#include "auth/identity_syntax.hpp"

namespace truefrom::auth {

IdentityCache::IdentityCache(IdentityStore& store, std::size_t max_entries)
    : store_(store), max_entries_(max_entries) {}

IdentityCache::~IdentityCache() { stop(); }

void IdentityCache::start(StateCallback on_state,
                          std::function<void(const std::string&)> on_change) {
  on_state_ = std::move(on_state);
  on_change_ = std::move(on_change);
  ChangeListener::Callbacks callbacks;
  callbacks.on_up = [this] {
    invalidate("");  // changes made while nobody listened are unknown
    fresh_ = true;
    if (on_state_) on_state_(true, "listening for identity changes");
  };
  callbacks.on_change = [this](const std::string& login) {
    invalidate(login);
    if (on_change_) on_change_(login);
  };
  callbacks.on_down = [this](const std::string& detail, bool first) {
    fresh_ = false;
    invalidate("");
    if (on_state_ && first) on_state_(false, detail);  // one report per outage
  };
  listener_ = std::make_unique<ChangeListener>(store_, kIdentityChannel, std::move(callbacks));
  listener_->start();
}

void IdentityCache::stop() {
  if (listener_) listener_->stop();
  fresh_ = false;
  invalidate("");
}

void IdentityCache::invalidate(const std::string& login_lower) {
  {
    std::lock_guard lock(mutex_);
    ++epoch_;
    if (login_lower.empty()) {
      entries_.clear();
    } else {
      entries_.erase(login_lower);
    }
  }
  changes_.fetch_add(1, std::memory_order_release);
}

bool IdentityCache::lookup(const std::string& login, Entry& out) const {
  if (!fresh_) return false;
  const std::string key = ascii_lower(login);
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  out = it->second;
  return true;
}

StoreStatus IdentityCache::get(const std::string& login, Entry& out) {
  const std::string key = ascii_lower(login);
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
