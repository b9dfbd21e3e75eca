// The numbered SQL migrations of schema/, compiled into the binary so that
// `truefrom db migrate` needs no files at run time. Immutable data; thread-safe.
#pragma once

#include <string_view>
#include <vector>

namespace truefrom::schema {

struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;
};

/// All migrations in ascending version order.
const std::vector<Migration>& migrations();

}  // namespace truefrom::schema
