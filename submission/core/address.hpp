// RFC 5321 envelope addresses: Reverse-path / Forward-path and Mailbox syntax
// (RFC 5321 4.1.2), with the size limits of RFC 5321 4.5.3.1. ASCII only unless `utf8`
// is set (SMTPUTF8, RFC 6531 3.3: UTF-8 in local parts and U-labels in domains).
// Pure functions, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace truefrom::smtp {

/// A mailbox with its local part decoded (quotes and backslash escapes removed) and its
/// domain as written (a host name or an address literal such as "[192.0.2.1]").
struct Mailbox {
  std::string local;
  std::string domain;

  /// The address in its canonical wire form: the local part quoted only when it is not a
  /// valid Dot-string.
  std::string to_string() const;
  friend bool operator==(const Mailbox&, const Mailbox&) = default;
};

/// Parses `Mailbox` (RFC 5321 4.1.2) with no angle brackets. On failure returns nullopt and
/// stores the reason in `*error` when given.
std::optional<Mailbox> parse_mailbox(std::string_view text, std::string* error = nullptr,
                                     bool utf8 = false);

/// Result of parsing "<...>" at the start of a MAIL/RCPT argument.
struct PathParse {
  /// nullopt for the null reverse-path "<>".
  std::optional<Mailbox> mailbox;
  /// What follows the closing '>' (the ESMTP parameters, leading space included).
  std::string_view rest;
};

/// Parses a Path or the null path at the start of `text` ("<a@b> SIZE=10", "<>"). A source
/// route ("<@relay:a@b>", RFC 5321 4.1.2 obsolete form) is accepted and dropped.
std::optional<PathParse> parse_path(std::string_view text, std::string* error = nullptr,
                                    bool utf8 = false);

/// True when the mailbox has a byte outside US-ASCII (it needs SMTPUTF8).
bool is_utf8_address(const Mailbox& m);

/// ASCII lower-casing, used for case-insensitive comparisons of domains and local parts.
std::string ascii_lower(std::string_view s);

}  // namespace truefrom::smtp
