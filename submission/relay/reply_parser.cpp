#include "submission/relay/reply_parser.hpp"

namespace truefrom::relay {

void ReplyParser::reset() {
  reply_ = {};
  code_ = 0;
  started_ = false;
}

ReplyParser::Result ReplyParser::feed(std::string_view line) {
  // Reply-line = *( Reply-code "-" [ textstring ] CRLF ) Reply-code [ SP textstring ] CRLF
  if (line.size() < 3) return Result::kError;
  int code = 0;
  for (int i = 0; i < 3; ++i) {
    const char c = line[static_cast<std::size_t>(i)];
    if (c < '0' || c > '9') return Result::kError;
    code = code * 10 + (c - '0');
  }
  if (code < 200 || code > 599) return Result::kError;
  if (started_ && code != code_) return Result::kError;
  const bool last = line.size() == 3 || line[3] == ' ';
  if (!last && line[3] != '-') return Result::kError;
  std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view{};
  // An enhanced status code leads every line when the server uses them (RFC 2034).
  const auto sp = text.find(' ');
  if (auto st = smtp::parse_enhanced_status(text.substr(0, sp)); st && st->cls == code / 100) {
    reply_.status = st;
    text = sp == std::string_view::npos ? std::string_view{} : text.substr(sp + 1);
  }
  if (started_) reply_.text += '\n';
  reply_.text += text;
  started_ = true;
  code_ = code;
  reply_.code = code;
  return last ? Result::kDone : Result::kMore;
}

}  // namespace truefrom::relay
