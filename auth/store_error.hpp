// Error codes of the identity store, as a std::error_code category ("truefrom.store").
// libpqxx exceptions never leave the store: they become these codes. Thread-safe.
#pragma once

#include <string>
#include <system_error>

namespace truefrom::auth {

enum class StoreErrc {
  kUnavailable = 1,  ///< PostgreSQL cannot be reached or failed: a temporary condition
  kNotFound,         ///< no such account or identity
  kExists,           ///< the account or identity is already there
  kSchemaMissing,    ///< the database has not been migrated (run `truefrom db migrate`)
  kSchemaTooNew,     ///< the database was migrated by a newer truefrom
  kInvalid,          ///< a value the schema refuses
};

const std::error_category& store_category();
inline std::error_code make_error_code(StoreErrc e) {
  return {static_cast<int>(e), store_category()};
}

}  // namespace truefrom::auth

template <>
struct std::is_error_code_enum<truefrom::auth::StoreErrc> : std::true_type {};
