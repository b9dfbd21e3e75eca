// Sender binding policy, first cut (DESIGN.md "binding policy"): may an account use an
// envelope sender? Owned when an identity names the exact address, or the whole domain.
// Domains and local parts compare case-insensitively (ASCII). Pure; thread-safe.
#pragma once

#include <string_view>
#include <vector>

#include "auth/identity.hpp"

namespace truefrom::auth {

/// True when `identities` cover local@domain.
bool owns_address(const std::vector<SenderIdentity>& identities, std::string_view local,
                  std::string_view domain);

}  // namespace truefrom::auth
