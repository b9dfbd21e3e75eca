// crypt(3) password hashes through libxcrypt: yescrypt for new hashes; yescrypt,
// sha512-crypt and bcrypt verify (the formats of /etc/shadow and Dovecot's CRYPT scheme).
// CPU-heavy by design (yescrypt costs tens of milliseconds): never call on an I/O thread.
// Thread-safe (crypt_rn with per-call state).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace truefrom::auth {

/// True when `password` matches `hash`. Constant time in the comparison; an unusable hash
/// verifies nothing.
bool verify_password(std::string_view password, const std::string& hash);

/// Burns the same time as verifying against a real yescrypt hash; used for unknown users so
/// that response time does not reveal which logins exist.
void verify_password_dummy(std::string_view password);

/// A new yescrypt hash of `password`; nullopt if libxcrypt fails.
std::optional<std::string> hash_password(std::string_view password);

}  // namespace truefrom::auth
