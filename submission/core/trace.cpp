#include "submission/core/trace.hpp"

#include <array>
#include <cstdio>

namespace truefrom::smtp {
namespace {

// Header text comes partly from the client (HELO); keep it to printable ASCII without
// parentheses so it cannot break out of the comment or the field.
std::string clean(std::string_view s) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    out += (u >= 32 && u <= 126 && c != '(' && c != ')' && c != '\\') ? c : '_';
  }
  return out;
}

}  // namespace

std::string rfc5322_date(std::time_t when) {
  static constexpr std::array<const char*, 7> kDays{"Sun", "Mon", "Tue", "Wed",
                                                    "Thu", "Fri", "Sat"};
  static constexpr std::array<const char*, 12> kMonths{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  gmtime_r(&when, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000",
                kDays[static_cast<std::size_t>(tm.tm_wday) % 7], tm.tm_mday,
                kMonths[static_cast<std::size_t>(tm.tm_mon) % 12], tm.tm_year + 1900, tm.tm_hour,
                tm.tm_min, tm.tm_sec);
  return buf;
}

std::string received_header(const ReceivedFields& f) {
  std::string h = "Received: from " + clean(f.helo) + " ([" + clean(f.peer_address) + "])\r\n";
  h += "\tby " + clean(f.by_host) + " (truefrom) with " + f.protocol + " id " + clean(f.id);
  if (!f.tls.empty() || !f.login.empty()) {
    h += "\r\n\t(";
    if (!f.tls.empty()) h += clean(f.tls);
    if (!f.tls.empty() && !f.login.empty()) h += "; ";
    if (!f.login.empty()) h += "authenticated as " + clean(f.login);
    h += ")";
  }
  if (!f.binding.empty()) {
    // One comment, folded at each "; " so that no line grows past the RFC 5322 limits.
    std::string b = clean(f.binding.substr(0, 900));
    std::string folded;
    for (std::size_t pos = 0;;) {
      const auto semi = b.find("; ", pos);
      folded += b.substr(pos, semi == std::string::npos ? std::string::npos : semi - pos);
      if (semi == std::string::npos) break;
      folded += ";\r\n\t ";
      pos = semi + 2;
    }
    h += "\r\n\t(sender binding: " + folded + ")";
  }
  if (!f.for_recipient.empty()) h += "\r\n\tfor <" + clean(f.for_recipient) + ">";
  h += ";\r\n\t" + rfc5322_date(f.when) + "\r\n";
  return h;
}

std::string missing_origination_fields(const HeaderSection& section, std::string_view message_id,
                                       std::time_t when) {
  bool has_date = false;
  bool has_id = false;
  for (const auto& f : section.fields) {
    has_date = has_date || field_name_is(f.name, "Date");
    has_id = has_id || field_name_is(f.name, "Message-ID");
  }
  std::string out;
  if (!has_id) out += "Message-ID: " + std::string(message_id) + "\r\n";
  if (!has_date) out += "Date: " + rfc5322_date(when) + "\r\n";
  return out;
}

}  // namespace truefrom::smtp
