// Delivery status notifications: the report that goes back to the envelope sender when
// recipients are refused by the relay or their delivery time runs out.
// RFC 3464 (message/delivery-status), RFC 6522 (multipart/report), RFC 3834
// (Auto-Submitted), RFC 6533 (utf-8 addresses in a message/global-delivery-status).
// Sans-IO: builds the message text. Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "submission/core/reply.hpp"

namespace truefrom::queue {

struct FailedRecipient {
  std::string address;
  smtp::Reply reply;     ///< the relay's refusal, or the last temporary failure when expired
  bool expired = false;  ///< the queue gave up (lifetime exceeded), the relay never refused
};

struct DsnInput {
  std::string reporting_host;   ///< our host name (Reporting-MTA, From: MAILER-DAEMON@)
  std::string original_sender;  ///< the envelope sender the report goes to
  std::string original_id;      ///< the queue id of the failed message
  std::int64_t arrival = 0;     ///< when the failed message was accepted (unix)
  std::int64_t now = 0;
  std::string relay;  ///< Remote-MTA, when a relay answered
  std::vector<FailedRecipient> failed;
  std::string_view original_headers;  ///< the failed message's header section (may be empty)
  std::string message_id;             ///< the report's own Message-ID, with brackets
  std::string boundary;               ///< unique MIME boundary
};

struct Dsn {
  std::string message;     ///< the whole report (CRLF line ends, header and body)
  bool eight_bit = false;  ///< 8-bit octets in it (the original's headers): BODY=8BITMIME
  bool smtputf8 = false;   ///< a non-ASCII address in it: SMTPUTF8, global report types
};

Dsn build_dsn(const DsnInput& in);

}  // namespace truefrom::queue
