// A short-lived memory of successful password verifications, so that a memory-hard hash
// (yescrypt: tens of milliseconds of CPU) is not paid on every connection of a client that
// logs in again and again (as Dovecot's auth cache does).
//
// An entry is keyed by HMAC-SHA-256 (a random per-process key) over the login, the stored
// hash and the password: a changed password (a new stored hash) never matches an old entry,
// and the memory holds no fast-to-crack digest of any password. Only successes are
// remembered; failures always pay the full cost. Whether the account is enabled is not
// cached here: callers check it on the current account snapshot every time.
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace truefrom::auth {

class VerifiedPasswords {
 public:
  using Clock = std::chrono::steady_clock;

  explicit VerifiedPasswords(std::chrono::seconds ttl = std::chrono::seconds(300),
                             std::size_t max_entries = 100000);

  /// True when this login/hash/password triple verified successfully less than ttl ago.
  bool contains(std::string_view login, std::string_view hash, std::string_view password,
                Clock::time_point now = Clock::now());
  /// Remembers a successful verification.
  void insert(std::string_view login, std::string_view hash, std::string_view password,
              Clock::time_point now = Clock::now());

 private:
  std::string key(std::string_view login, std::string_view hash, std::string_view password) const;

  const std::chrono::seconds ttl_;
  const std::size_t max_entries_;
  std::array<unsigned char, 32> secret_{};
  std::mutex mutex_;
  std::unordered_map<std::string, Clock::time_point> expiry_;
};

}  // namespace truefrom::auth
