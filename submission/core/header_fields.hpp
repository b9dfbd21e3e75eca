// The header section of an Internet message (RFC 5322 2.2, 3.6): split into fields and
// unfolded (RFC 5322 2.2.3), with the obsolete "Name WSP :" form of RFC 5322 4.5.
// Strict: a line in the header section that is neither a field nor a continuation, a
// continuation with no field before it, or a NUL byte is an error, never a guess, because
// another parser could read such a message differently from us.
// The input is the message as received in DATA: dot-unstuffed, lines ended by CRLF (the
// DATA receiver has already refused bare CR and LF). Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace truefrom::smtp {

struct HeaderField {
  std::string name;    ///< as written, without the colon (and without obsolete WSP before it)
  std::string value;   ///< everything after the colon, unfolded (CRLF before WSP removed)
  std::size_t line{};  ///< 1-based line number of the field's first line
  /// The field as written (folding kept) is message[offset, raw_end): from its name to the
  /// end of its last line, without that line's CRLF.
  std::size_t offset{};
  std::size_t raw_end{};
};

struct HeaderSection {
  std::vector<HeaderField> fields;
  /// Offset in the message of the first byte after the header section's last field (the
  /// empty line that separates the body, or the end of the message when there is no body).
  std::size_t end{};
  /// Offset of the body: after the empty line, or the end of the message without one.
  std::size_t body_offset(std::size_t message_size) const {
    return end + 2 <= message_size ? end + 2 : message_size;
  }
};

/// Parses the header section at the start of `message`. On failure returns nullopt and puts
/// the reason (with the line number) in `*error` when given.
std::optional<HeaderSection> parse_header_section(std::string_view message,
                                                  std::string* error = nullptr);

/// Field names compare case-insensitively (RFC 5322 1.2.2).
bool field_name_is(std::string_view name, std::string_view want);

}  // namespace truefrom::smtp
