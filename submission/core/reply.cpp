#include "submission/core/reply.hpp"

#include <charconv>

namespace truefrom::smtp {

Reply Reply::plain(int c, std::string t, bool close) {
  Reply r;
  r.code = c;
  r.text = std::move(t);
  r.close_after = close;
  return r;
}

std::string Reply::serialize() const {
  std::string prefix = std::to_string(code);
  std::string status_text;
  if (status) {
    status_text = std::to_string(status->cls) + "." + std::to_string(status->subject) + "." +
                  std::to_string(status->detail) + " ";
  }
  std::string out;
  std::string_view rest = text;
  for (;;) {
    const auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    const bool last = nl == std::string_view::npos;
    out += prefix;
    out += last ? ' ' : '-';
    out += status_text;
    for (char c : line) {
      out += (c == '\r' || c == '\n' || c == '\0') ? ' ' : c;
    }
    out += "\r\n";
    if (last) break;
    rest.remove_prefix(nl + 1);
  }
  return out;
}

std::optional<EnhancedStatus> parse_enhanced_status(std::string_view s) {
  // RFC 3463 2: class "." subject "." detail; class is 2, 4 or 5; subject and detail are
  // 1 to 3 digits.
  int parts[3] = {0, 0, 0};
  const char* p = s.data();
  const char* end = s.data() + s.size();
  for (int i = 0; i < 3; ++i) {
    const char* start = p;
    auto [next, ec] = std::from_chars(p, end, parts[i]);
    if (ec != std::errc{} || next == start || next - start > 3) return std::nullopt;
    p = next;
    if (i < 2) {
      if (p == end || *p != '.') return std::nullopt;
      ++p;
    }
  }
  if (p != end) return std::nullopt;
  if (parts[0] != 2 && parts[0] != 4 && parts[0] != 5) return std::nullopt;
  return EnhancedStatus{parts[0], parts[1], parts[2]};
}

std::string Reply::summary() const {
  std::string out = std::to_string(code);
  if (status) {
    out += " " + std::to_string(status->cls) + "." + std::to_string(status->subject) + "." +
           std::to_string(status->detail);
  }
  if (!text.empty()) out += " ";
  for (char ch : text) out += (ch == '\n' || ch == '\r') ? ' ' : ch;
  return out;
}

}  // namespace truefrom::smtp
