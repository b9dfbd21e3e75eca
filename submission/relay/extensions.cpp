#include "submission/relay/extensions.hpp"

#include <string>
#include <string_view>

namespace truefrom::relay {

Extensions parse_extensions(const smtp::Reply& ehlo) {
  Extensions e;
  std::string_view text = ehlo.text;
  // RFC 5321 4.1.1.1: the first line is the domain (and a greeting), not a keyword.
  const auto first = text.find('\n');
  text = first == std::string_view::npos ? std::string_view{} : text.substr(first + 1);
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string line(text.substr(0, nl));
    for (char& ch : line) {
      if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 32);
    }
    const std::string word = line.substr(0, line.find(' '));
    if (word == "STARTTLS") e.starttls = true;
    if (word == "PIPELINING") e.pipelining = true;
    if (word == "CHUNKING") e.chunking = true;
    if (word == "8BITMIME") e.eight_bit = true;
    if (word == "SMTPUTF8") e.smtputf8 = true;
    if (word == "AUTH" && (line + " ").find(" PLAIN ") != std::string::npos) e.auth_plain = true;
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
  }
  return e;
}

}  // namespace truefrom::relay
