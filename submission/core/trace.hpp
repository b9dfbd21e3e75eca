// Header fields added at submission: Received: (RFC 5321 4.4, with the "with" keywords of
// RFC 3848: ESMTPSA = ESMTP + STARTTLS + AUTH), the RFC 5322 3.3 date-time used in it, and
// the Date: and Message-ID: a submission server adds when the client left them out
// (RFC 6409 8.2, 8.3). Pure functions; thread-safe.
#pragma once

#include <ctime>
#include <string>
#include <string_view>

#include "submission/core/header_fields.hpp"

namespace truefrom::smtp {

struct ReceivedFields {
  std::string helo;           ///< the client's EHLO/HELO argument
  std::string peer_address;   ///< textual IP address of the client
  std::string by_host;        ///< our hostname
  std::string protocol;       ///< "ESMTPSA", "ESMTPS", ...
  std::string tls;            ///< e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384"; empty without TLS
  std::string login;          ///< the authenticated account; empty if none
  std::string id;             ///< the message's queue id
  std::string for_recipient;  ///< set only when there is exactly one recipient
  std::string binding;        ///< which identity rows allowed the senders (audit), or empty
  std::time_t when = 0;
};

/// RFC 5322 3.3 date-time in UTC, e.g. "Mon, 23 Nov 2026 02:30:00 +0000".
std::string rfc5322_date(std::time_t when);

/// A complete, folded "Received: ...\r\n" header field.
std::string received_header(const ReceivedFields& f);

/// "Message-ID: <...>\r\n" and/or "Date: ...\r\n" for the ones `section` lacks (RFC 6409
/// 8.2, 8.3); "" when it has both. `message_id` is the whole msg-id, "<left@right>".
std::string missing_origination_fields(const HeaderSection& section, std::string_view message_id,
                                       std::time_t when);

}  // namespace truefrom::smtp
