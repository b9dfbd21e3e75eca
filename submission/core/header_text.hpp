// Text as a mail reader shows it: RFC 2047 encoded-words decoded to UTF-8, and the
// detection of address-like strings in display names (the "ceo@bank.example"
// <mallory@example.com> trick).
//
// Decoding is for inspection, not for display: it is liberal on purpose (encoded-words are
// also decoded inside quoted strings and words, as several mail readers do), so that a check
// sees at least what any reader could show. Characters of legacy multi-byte charsets are
// replaced by U+FFFD except where they matter to the checks (ASCII, full-width forms).
// Charsets whose bytes do not keep ASCII's meaning (UTF-7, UTF-16, UTF-32) are refused.
// Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace truefrom::smtp {

/// Decodes every RFC 2047 encoded-word in `text` ("=?utf-8?q?Ren=C3=A9?=") and returns UTF-8.
/// Whitespace between two adjacent encoded-words is dropped (RFC 2047 6.2); malformed
/// encoded-words stay as written; invalid UTF-8 becomes U+FFFD. Returns nullopt (with the
/// reason in `*error`) for an encoded-word in a charset truefrom refuses to guess.
std::optional<std::string> decode_encoded_words(std::string_view text,
                                                std::string* error = nullptr);

/// The address-like strings ("local@domain.tld") in UTF-8 display text, lower-cased, after
/// mapping full-width and other look-alike forms of ASCII ("＠", "．", "。") to ASCII.
std::vector<std::string> address_like_strings(std::string_view text);

/// True when `text` is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates).
bool valid_utf8(std::string_view text);

}  // namespace truefrom::smtp
