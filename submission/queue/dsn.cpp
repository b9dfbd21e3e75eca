#include "submission/queue/dsn.hpp"

#include <algorithm>

#include "submission/core/trace.hpp"

namespace truefrom::queue {
namespace {

bool ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::string status_text(const smtp::Reply& r) {
  if (r.status) {
    return std::to_string(r.status->cls) + "." + std::to_string(r.status->subject) + "." +
           std::to_string(r.status->detail);
  }
  return std::to_string(r.code / 100) + ".0.0";
}

// "host:port" or "[v6]:port" -> the host (Remote-MTA names a host, RFC 3464 2.3.5).
std::string relay_host(const std::string& relay) {
  if (!relay.empty() && relay.front() == '[') return relay.substr(1, relay.find(']') - 1);
  return relay.substr(0, relay.rfind(':'));
}

// Folds a long diagnostic at spaces so no line passes 78 octets where it can be helped
// (RFC 5322 2.1.1; a field line must never pass 998).
std::string folded(const std::string& text) {
  std::string out;
  std::size_t line = 24;  // "Diagnostic-Code: smtp; "
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    std::string word = text.substr(start, end - start);
    if (word.size() > 900) word.resize(900);
    if (line + word.size() + 1 > 78 && line > 1) {
      out += "\r\n ";
      line = 1;
    } else if (!out.empty()) {
      out += ' ';
      ++line;
    }
    out += word;
    line += word.size();
    start = end + 1;
  }
  return out;
}

}  // namespace

Dsn build_dsn(const DsnInput& in) {
  Dsn out;
  out.smtputf8 = !ascii(in.original_sender) ||
                 std::any_of(in.failed.begin(), in.failed.end(),
                             [](const FailedRecipient& f) { return !ascii(f.address); });
  out.eight_bit = !ascii(in.original_headers);
  const char* addr_type = out.smtputf8 ? "utf-8" : "rfc822";
  std::string& m = out.message;
  m += "From: Mail Delivery System <MAILER-DAEMON@" + in.reporting_host + ">\r\n";
  m += "To: <" + in.original_sender + ">\r\n";
  m += "Subject: Undelivered Mail Returned to Sender\r\n";
  m += "Date: " + smtp::rfc5322_date(in.now) + "\r\n";
  m += "Message-ID: " + in.message_id + "\r\n";
  m += "Auto-Submitted: auto-replied\r\n";  // RFC 3834 5: never answered automatically
  m += "MIME-Version: 1.0\r\n";
  // RFC 6522 3: report-type names the second part's subtype (RFC 6533 for the global one).
  m += out.smtputf8 ? "Content-Type: multipart/report; report-type=global-delivery-status;\r\n"
                    : "Content-Type: multipart/report; report-type=delivery-status;\r\n";
  m += "\tboundary=\"" + in.boundary + "\"\r\n";
  m += "\r\n";
  m += "This is a MIME-encapsulated message.\r\n\r\n";

  // 1. for people
  m += "--" + in.boundary + "\r\n";
  m += "Content-Type: text/plain; charset=utf-8\r\n";
  m += "Content-Transfer-Encoding: 8bit\r\n\r\n";
  m += "This is the mail system at " + in.reporting_host + ".\r\n\r\n";
  m += "Your message (queue id " + in.original_id + ", accepted " + smtp::rfc5322_date(in.arrival) +
       ") could not be delivered to ";
  m += in.failed.size() == 1 ? "this recipient:\r\n\r\n" : "these recipients:\r\n\r\n";
  for (const auto& f : in.failed) {
    m += "  <" + f.address + ">: ";
    m += f.expired ? "delivery time expired; last error: " : "refused by the relay: ";
    m += folded(f.reply.summary()) + "\r\n";
  }
  m += "\r\nThe other recipients, if any, are not affected. The headers of your message "
       "follow the technical report.\r\n\r\n";

  // 2. for machines (RFC 3464 2.2 per-message, 2.3 per-recipient fields)
  m += "--" + in.boundary + "\r\n";
  m += out.smtputf8 ? "Content-Type: message/global-delivery-status\r\n\r\n"
                    : "Content-Type: message/delivery-status\r\n\r\n";
  m += "Reporting-MTA: dns; " + in.reporting_host + "\r\n";
  m += "X-Truefrom-Queue-ID: " + in.original_id + "\r\n";
  m += "Arrival-Date: " + smtp::rfc5322_date(in.arrival) + "\r\n";
  for (const auto& f : in.failed) {
    m += "\r\n";
    m += "Final-Recipient: " + std::string(addr_type) + "; " + f.address + "\r\n";
    m += "Action: failed\r\n";
    // RFC 3463 4.4.7: delivery time expired; otherwise the relay's own status.
    m += "Status: " + (f.expired ? std::string("4.4.7") : status_text(f.reply)) + "\r\n";
    if (!in.relay.empty()) m += "Remote-MTA: dns; " + relay_host(in.relay) + "\r\n";
    if (f.reply.code != 0) m += "Diagnostic-Code: smtp; " + folded(f.reply.summary()) + "\r\n";
    m += "Last-Attempt-Date: " + smtp::rfc5322_date(in.now) + "\r\n";
  }
  m += "\r\n";

  // 3. the original's header section (RFC 6522 3: text/rfc822-headers)
  m += "--" + in.boundary + "\r\n";
  m += out.smtputf8 ? "Content-Type: message/global-headers\r\n"
                    : "Content-Type: text/rfc822-headers\r\n";
  if (out.eight_bit) m += "Content-Transfer-Encoding: 8bit\r\n";
  m += "\r\n";
  std::string_view headers = in.original_headers;
  while (headers.size() >= 2 && headers.substr(headers.size() - 2) == "\r\n") {
    headers.remove_suffix(2);
  }
  m += headers;
  m += "\r\n\r\n--" + in.boundary + "--\r\n";
  out.eight_bit = out.eight_bit || !ascii(m);
  return out;
}

}  // namespace truefrom::queue
