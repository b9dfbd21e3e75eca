#include "signer/dkim/key_ring.hpp"

#include <algorithm>

namespace truefrom::signer {

std::string Selection::problems() const {
  std::string out;
  for (const SigningKey* k : keys) {
    if (!k->usable()) out += (out.empty() ? "" : "; ") + k->error;
  }
  return out;
}

KeyRing::KeyRing(std::vector<SigningKey> keys) : keys_(std::move(keys)) {
  for (std::size_t i = 0; i < keys_.size(); ++i) by_domain_[keys_[i].record.domain].push_back(i);
}

Selection KeyRing::select(std::string_view from_domain, std::string_view fallback_domain) const {
  Selection out;
  auto take = [&](std::string_view domain) {
    const auto it = by_domain_.find(std::string(domain));
    if (it == by_domain_.end()) return false;
    out.domain = std::string(domain);
    for (std::size_t i : it->second) out.keys.push_back(&keys_[i]);
    return true;
  };
  // The domain itself, then each parent with at least two labels left (never a TLD).
  std::string_view d = from_domain;
  while (!d.empty() && d.find('.') != std::string_view::npos) {
    if (take(d)) return out;
    d.remove_prefix(d.find('.') + 1);
  }
  if (!fallback_domain.empty() && take(fallback_domain)) out.fallback = true;
  return out;
}

bool KeyRing::has_broken() const {
  for (const auto& k : keys_) {
    if (!k.usable()) return true;
  }
  return false;
}

KeyManager::KeyManager(unsigned owner, Log log, std::chrono::seconds retry)
    : owner_(owner), log_(std::move(log)), retry_(retry) {}

void KeyManager::replace(const std::vector<KeyRecord>& active) {
  // What the log said last: a reload that finds a key as it was says nothing again.
  std::shared_ptr<const KeyRing> before;
  {
    std::lock_guard lock(mutex_);
    before = ring_;
  }
  const auto unchanged = [&before](const SigningKey& k) {
    return std::any_of(before->keys().begin(), before->keys().end(), [&k](const SigningKey& b) {
      return b.record.id == k.record.id && b.record.path == k.record.path &&
             b.usable() == k.usable() && b.error == k.error;
    });
  };
  std::vector<SigningKey> keys;
  keys.reserve(active.size());
  for (const auto& r : active) {
    keys.push_back(load_signing_key(r, owner_));
    if (log_ && !unchanged(keys.back())) {
      const auto& k = keys.back();
      log_(k.usable(), k.usable() ? "DKIM key " + r.selector + "._domainkey." + r.domain + " (" +
                                        std::string(algorithm_name(r.algorithm)) + ") active"
                                  : k.error);
    }
  }
  auto ring = std::make_shared<const KeyRing>(std::move(keys));
  std::lock_guard lock(mutex_);
  ring_ = std::move(ring);
  last_attempt_ = Clock::now();
}

std::shared_ptr<const KeyRing> KeyManager::current() {
  std::shared_ptr<const KeyRing> ring;
  {
    std::lock_guard lock(mutex_);
    if (!ring_->has_broken() || Clock::now() - last_attempt_ < retry_) return ring_;
    last_attempt_ = Clock::now();
    ring = ring_;
  }
  std::vector<SigningKey> keys = ring->keys();
  bool fixed = false;
  for (auto& k : keys) {
    if (k.usable()) continue;
    SigningKey again = load_signing_key(k.record, owner_);
    if (again.usable()) {
      fixed = true;
      if (log_)
        log_(true, "DKIM key " + k.record.selector + "._domainkey." + k.record.domain +
                       " can be used again");
    }
    k = std::move(again);
  }
  if (!fixed) return ring;
  auto updated = std::make_shared<const KeyRing>(std::move(keys));
  std::lock_guard lock(mutex_);
  if (ring_ == ring) ring_ = updated;  // unless replace() put a newer ring meanwhile
  return ring_;
}

}  // namespace truefrom::signer
