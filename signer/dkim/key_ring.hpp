// The active DKIM keys and the choice of signing domain for a message.
//
// KeyRing is an immutable snapshot of the active keys (loaded, or with the reason they
// cannot be used). The signing domain for a From: domain is the domain itself when it has an
// active key, else its closest parent domain with one (relaxed alignment, RFC 7489 3.1.1),
// else the configured fallback domain (the provider's own), else none. All active keys of
// that domain sign: RSA and Ed25519 together give a dual signature (RFC 8463).
//
// KeyManager holds the current snapshot and replaces it when the key records change (the
// server calls replace() on a database notification). Keys whose file could not be used are
// read again, at most once per retry interval, when a message needs the current ring, so a
// fixed file applies without a restart.
// Thread-safety: KeyRing is immutable; KeyManager's methods may be called concurrently.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "signer/dkim/dkim_key.hpp"

namespace truefrom::signer {

struct Selection {
  std::string domain;                   ///< the d= domain; empty when no key applies
  std::vector<const SigningKey*> keys;  ///< its active keys, usable or not
  bool fallback = false;                ///< chosen as the fallback domain
  /// The keys that cannot be used, as one line for the log (empty when all can).
  std::string problems() const;
};

class KeyRing {
 public:
  KeyRing() = default;
  explicit KeyRing(std::vector<SigningKey> keys);

  /// `from_domain` and `fallback_domain` in lower-case A-labels; either may be empty.
  Selection select(std::string_view from_domain, std::string_view fallback_domain) const;

  const std::vector<SigningKey>& keys() const { return keys_; }
  bool has_broken() const;

 private:
  std::vector<SigningKey> keys_;
  std::unordered_map<std::string, std::vector<std::size_t>> by_domain_;
};

class KeyManager {
 public:
  /// Called with a line for the log: `ok` false for a key that cannot be used.
  using Log = std::function<void(bool ok, const std::string& line)>;

  /// Key files must belong to uid `owner`.
  explicit KeyManager(unsigned owner, Log log = {},
                      std::chrono::seconds retry = std::chrono::seconds(2));

  /// Loads the files of `active` and makes them the current ring (blocking file I/O).
  void replace(const std::vector<KeyRecord>& active);
  /// The current ring, after reading broken keys' files again when the retry interval has
  /// passed (blocking file I/O then: call from the worker pool).
  std::shared_ptr<const KeyRing> current();

 private:
  using Clock = std::chrono::steady_clock;
  const unsigned owner_;
  const Log log_;
  const std::chrono::seconds retry_;
  std::mutex mutex_;
  std::shared_ptr<const KeyRing> ring_ = std::make_shared<KeyRing>();
  Clock::time_point last_attempt_{};
};

}  // namespace truefrom::signer
