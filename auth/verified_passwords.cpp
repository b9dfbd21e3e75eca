#include "auth/verified_passwords.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

#include "auth/identity_syntax.hpp"

namespace truefrom::auth {

VerifiedPasswords::VerifiedPasswords(std::chrono::seconds ttl, std::size_t max_entries)
    : ttl_(ttl), max_entries_(max_entries) {
  if (RAND_bytes(secret_.data(), static_cast<int>(secret_.size())) != 1) {
    throw std::runtime_error("cannot get random bytes for the verification cache key");
  }
}

std::string VerifiedPasswords::key(std::string_view login, std::string_view hash,
                                   std::string_view password) const {
  // Lengths first, so that no two different triples give the same input.
  std::string input = std::to_string(login.size()) + ":" + std::to_string(hash.size()) + ":";
  input += ascii_lower(login);
  input += hash;
  input += password;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  OPENSSL_cleanse(input.data(), input.size());
  return std::string(reinterpret_cast<const char*>(mac), len);
}

bool VerifiedPasswords::contains(std::string_view login, std::string_view hash,
                                 std::string_view password, Clock::time_point now) {
  const std::string k = key(login, hash, password);
  std::lock_guard lock(mutex_);
  const auto it = expiry_.find(k);
  if (it == expiry_.end()) return false;
  if (it->second <= now) {
    expiry_.erase(it);
    return false;
  }
  return true;
}

void VerifiedPasswords::insert(std::string_view login, std::string_view hash,
                               std::string_view password, Clock::time_point now) {
  std::string k = key(login, hash, password);
  std::lock_guard lock(mutex_);
  if (expiry_.size() >= max_entries_) {
    std::erase_if(expiry_, [now](const auto& e) { return e.second <= now; });
    if (expiry_.size() >= max_entries_) expiry_.clear();
  }
  expiry_[std::move(k)] = now + ttl_;
}

}  // namespace truefrom::auth
