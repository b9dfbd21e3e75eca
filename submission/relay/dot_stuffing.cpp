#include "submission/relay/dot_stuffing.hpp"

#include <cstring>

namespace truefrom::relay {

void dot_stuff(const std::vector<std::string_view>& parts, std::vector<std::string_view>& out) {
  static constexpr std::string_view kDot = ".";
  static constexpr std::string_view kEnd = "\r\n.\r\n";
  bool line_start = true;  // the next octet begins a line
  char last = '\n';
  for (const auto part : parts) {
    if (part.empty()) continue;
    std::size_t from = 0;  // start of the piece not yet appended
    std::size_t at = 0;    // a line start to look at
    if (!line_start) {
      const void* nl = std::memchr(part.data(), '\n', part.size());
      at = nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - part.data()) + 1
              : part.size();
    }
    while (at < part.size()) {
      if (part[at] == '.') {
        if (at > from) out.push_back(part.substr(from, at - from));
        out.push_back(kDot);
        from = at;  // the original dot goes out with what follows
      }
      const void* nl = std::memchr(part.data() + at, '\n', part.size() - at);
      at = nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - part.data()) + 1
              : part.size();
    }
    if (part.size() > from) out.push_back(part.substr(from));
    last = part.back();
    line_start = last == '\n';
  }
  out.push_back(last == '\n' ? kEnd.substr(2) : kEnd);
}

std::size_t chunk(const std::vector<std::string_view>& parts, std::vector<std::string_view>& out) {
  static constexpr std::string_view kCrlf = "\r\n";
  std::size_t size = 0;
  char last = '\n';
  for (const auto part : parts) {
    if (part.empty()) continue;
    out.push_back(part);
    size += part.size();
    last = part.back();
  }
  if (last != '\n') {  // as dot_stuff() ends it
    out.push_back(kCrlf);
    size += kCrlf.size();
  }
  return size;
}

}  // namespace truefrom::relay
