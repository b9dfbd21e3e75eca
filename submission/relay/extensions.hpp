// The SMTP service extensions a relay offers in its EHLO reply (RFC 5321 4.1.1.1: one
// keyword per line after the first), as far as the relay client uses them: STARTTLS
// (RFC 3207), PIPELINING (RFC 2920), CHUNKING (RFC 3030), 8BITMIME (RFC 6152), SMTPUTF8
// (RFC 6531) and AUTH with PLAIN among its mechanisms (RFC 4954).
// Sans-IO, a value type.
#pragma once

#include "submission/core/reply.hpp"

namespace truefrom::relay {

struct Extensions {
  bool starttls = false;
  bool pipelining = false;
  bool chunking = false;
  bool eight_bit = false;
  bool smtputf8 = false;
  bool auth_plain = false;
  friend bool operator==(const Extensions&, const Extensions&) = default;
};

/// The extensions in a 250 reply to EHLO (its first line is the relay's name, not one).
/// Keywords and mechanisms are case-insensitive.
Extensions parse_extensions(const smtp::Reply& ehlo);

}  // namespace truefrom::relay
