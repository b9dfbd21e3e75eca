// ASCII case folding for SRS fields and domains (Mail::SRS lower-cases with Perl's lc on
// bytes: ASCII only) and DKIM field names (RFC 6376 compares them ASCII case-insensitively).
// Internal to signer/. Thread-safety: pure functions.
#pragma once

#include <string_view>

namespace truefrom::signer {

inline char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

inline bool ascii_iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

}  // namespace truefrom::signer
