// RFC 5322 3.4 address lists as they appear in From:, Sender:, Resent-From: and
// Resent-Sender:, including the obsolete forms of RFC 5322 4.4 that real clients still send
// (phrases with dots, words around dots in local parts and domains, routes in angle
// addresses, empty list elements), comments (nested), quoted strings, domain literals,
// groups, and UTF-8 in words and quoted strings (RFC 6532). Display names are decoded
// (RFC 2047) for inspection.
//
// Anything the grammar does not allow is an error with a reason, never a guess: a message
// whose From: one reader could parse differently from another is refused upstream.
// The input is one unfolded field value. Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "submission/core/address.hpp"

namespace truefrom::smtp {

struct HeaderMailbox {
  Mailbox address;           ///< local part without quotes/escapes, domain as written
  std::string display_name;  ///< the phrase, RFC 2047-decoded, words joined by one space
  std::string comments;      ///< text of the comments around the mailbox, decoded, joined
  std::string group;         ///< the display name of the group it is in, if any
};

struct AddressList {
  std::vector<HeaderMailbox> mailboxes;  ///< every mailbox, those inside groups included
  std::vector<std::string> groups;       ///< display names of the groups, in order
};

/// Parses an address-list (RFC 5322 3.4, 4.4). An empty list is an error.
std::optional<AddressList> parse_address_list(std::string_view value, std::string* error = nullptr);

}  // namespace truefrom::smtp
