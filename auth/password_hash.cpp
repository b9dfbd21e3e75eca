#include "auth/password_hash.hpp"

#include <crypt.h>

#include <memory>

namespace truefrom::auth {
namespace {

std::optional<std::string> crypt_string(std::string_view password, const char* setting) {
  // crypt_rn refuses NUL inside the phrase; a password holding one can never match.
  if (password.find('\0') != std::string_view::npos) return std::nullopt;
  const std::string phrase(password);
  auto data = std::make_unique<crypt_data>();
  const char* out = crypt_rn(phrase.c_str(), setting, data.get(), sizeof(crypt_data));
  if (out == nullptr || out[0] == '*') return std::nullopt;
  return std::string(out);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = static_cast<unsigned char>(diff | (a[i] ^ b[i]));
  }
  return diff == 0;
}

}  // namespace

bool verify_password(std::string_view password, const std::string& hash) {
  if (hash.empty() || hash[0] != '$') return false;
  const auto computed = crypt_string(password, hash.c_str());
  return computed && constant_time_equal(*computed, hash);
}

void verify_password_dummy(std::string_view password) {
  static const std::optional<std::string> kDummy = hash_password("truefrom-dummy-password");
  if (kDummy) (void)verify_password(password, *kDummy);
}

std::optional<std::string> hash_password(std::string_view password) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$y$", 0, nullptr, 0, setting, sizeof setting) == nullptr) {
    return std::nullopt;
  }
  return crypt_string(password, setting);
}

}  // namespace truefrom::auth
