// The syntax of what identities name: domains (IDNA 2008 with UTS #46 mapping, libidn2),
// organizational domains (public suffix list, libpsl, RFC 7489 3.2), and the sender
// identities admins type (auth/identity.hpp parse_sender_identity). Pure functions,
// thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace truefrom::auth {

/// Lower-case A-label form of a domain (IDNA 2008 with UTS #46 mapping); nullopt when it is
/// not a valid domain name. A trailing root dot is dropped.
std::optional<std::string> normalize_domain(std::string_view domain);

/// The organizational domain (public suffix list, RFC 7489 3.2) of a normalized domain.
std::string organizational_domain(const std::string& domain);

/// ASCII lower-casing (logins and domains compare ASCII case-insensitively).
std::string ascii_lower(std::string_view s);

}  // namespace truefrom::auth
