#include "submission/core/command.hpp"

#include <array>
#include <charconv>

namespace truefrom::smtp {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 32);
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 32);
    if (x != y) return false;
  }
  return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

struct VerbName {
  std::string_view name;
  Verb verb;
};

constexpr std::array kVerbs{
    VerbName{"EHLO", Verb::kEhlo},         VerbName{"HELO", Verb::kHelo},
    VerbName{"STARTTLS", Verb::kStartTls}, VerbName{"AUTH", Verb::kAuth},
    VerbName{"MAIL", Verb::kMail},         VerbName{"RCPT", Verb::kRcpt},
    VerbName{"DATA", Verb::kData},         VerbName{"BDAT", Verb::kBdat},
    VerbName{"RSET", Verb::kRset},         VerbName{"NOOP", Verb::kNoop},
    VerbName{"QUIT", Verb::kQuit},         VerbName{"VRFY", Verb::kVrfy},
    VerbName{"EXPN", Verb::kExpn},         VerbName{"HELP", Verb::kHelp},
    VerbName{"GET", Verb::kHttp},          VerbName{"POST", Verb::kHttp},
    VerbName{"HEAD", Verb::kHttp},         VerbName{"PUT", Verb::kHttp},
    VerbName{"CONNECT", Verb::kHttp},
};

// Splits the ESMTP parameters after the path: SP esmtp-param *(SP esmtp-param)
// (RFC 5321 4.1.2). Calls `on(keyword, value)` for each; false stops with an error.
template <class F>
bool for_each_param(std::string_view rest, ArgumentError* error, F on) {
  while (!rest.empty()) {
    if (rest.front() != ' ') {
      if (error) *error = {"expected a space before ESMTP parameters", false};
      return false;
    }
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (rest.empty()) break;
    const auto end = rest.find(' ');
    std::string_view param = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
    const auto eq = param.find('=');
    std::string_view key = param.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view{} : param.substr(eq + 1);
    if (key.empty()) {
      if (error) *error = {"empty ESMTP parameter", true};
      return false;
    }
    if (!on(key, value, eq != std::string_view::npos)) return false;
  }
  return true;
}

// Accepts "FROM:" followed by optional spaces (several clients send "MAIL FROM: <a@b>").
std::optional<std::string_view> strip_keyword(std::string_view arg, std::string_view keyword) {
  if (!istarts_with(arg, keyword)) return std::nullopt;
  arg.remove_prefix(keyword.size());
  while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
  return arg;
}

constexpr std::string_view kB64 =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(char c) {
  const auto pos = kB64.find(c);
  return pos == std::string_view::npos ? -1 : static_cast<int>(pos);
}

}  // namespace

CommandLine split_command(std::string_view line) {
  CommandLine out;
  const auto sp = line.find(' ');
  const std::string_view verb = line.substr(0, sp);
  out.argument = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
  for (const auto& v : kVerbs) {
    if (iequals(verb, v.name)) {
      out.verb = v.verb;
      break;
    }
  }
  return out;
}

namespace {
// "KEYWORD<path> params": the path (UTF-8 allowed; callers check SMTPUTF8) and the rest.
std::optional<PathParse> keyword_and_path(std::string_view arg, std::string_view keyword,
                                          std::string_view syntax, ArgumentError* error) {
  auto path_text = strip_keyword(arg, keyword);
  if (!path_text) {
    if (error) *error = {std::string(syntax), false};
    return std::nullopt;
  }
  std::string why;
  auto path = parse_path(*path_text, &why, true);
  if (!path && error) *error = {why, false};
  return path;
}
}  // namespace

std::optional<MailArgument> parse_mail_argument(std::string_view arg, ArgumentError* error) {
  auto path = keyword_and_path(arg, "FROM:", "syntax is MAIL FROM:<address>", error);
  if (!path) return std::nullopt;
  MailArgument out;
  out.sender = std::move(path->mailbox);
  const bool ok = for_each_param(
      path->rest, error, [&](std::string_view key, std::string_view value, bool has_value) {
        if (iequals(key, "SIZE")) {
          // RFC 1870 6: size-value = 1*20DIGIT
          std::uint64_t n = 0;
          auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
          if (!has_value || value.size() > 20 || ec != std::errc{} ||
              p != value.data() + value.size()) {
            if (error) *error = {"SIZE needs a decimal number", true};
            return false;
          }
          out.size = n;
          return true;
        }
        if (iequals(key, "BODY")) {
          if (iequals(value, "7BIT")) {
            out.body = BodyType::k7Bit;
          } else if (iequals(value, "8BITMIME")) {
            out.body = BodyType::k8BitMime;
          } else {
            if (error) *error = {"BODY must be 7BIT or 8BITMIME", true};
            return false;
          }
          return true;
        }
        if (iequals(key, "AUTH")) return true;  // RFC 4954 5: may be ignored
        if (iequals(key, "SMTPUTF8")) {         // RFC 6531 3.4: no value
          if (has_value) {
            if (error) *error = {"SMTPUTF8 takes no value", true};
            return false;
          }
          out.smtputf8 = true;
          return true;
        }
        if (error) *error = {"unsupported parameter " + std::string(key), true};
        return false;
      });
  if (!ok) return std::nullopt;
  if (out.sender && !out.smtputf8 && is_utf8_address(*out.sender)) {
    if (error) *error = {"a non-ASCII address needs the SMTPUTF8 parameter", false, true};
    return std::nullopt;
  }
  return out;
}

std::optional<RcptArgument> parse_rcpt_argument(std::string_view arg, ArgumentError* error,
                                                bool smtputf8) {
  auto path = keyword_and_path(arg, "TO:", "syntax is RCPT TO:<address>", error);
  if (!path) return std::nullopt;
  if (path->mailbox && !smtputf8 && is_utf8_address(*path->mailbox)) {
    if (error) *error = {"a non-ASCII address needs SMTPUTF8 in MAIL FROM", false, true};
    return std::nullopt;
  }
  if (!path->mailbox) {
    if (error) *error = {"the null path <> is not a recipient", false};
    return std::nullopt;
  }
  const bool ok =
      for_each_param(path->rest, error, [&](std::string_view key, std::string_view, bool) {
        if (error) {
          *error = {"unsupported parameter " + std::string(key), true};
        }
        return false;
      });
  if (!ok) return std::nullopt;
  return RcptArgument{std::move(*path->mailbox)};
}

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const auto n = (static_cast<unsigned char>(in[i]) << 16) |
                   (static_cast<unsigned char>(in[i + 1]) << 8) |
                   static_cast<unsigned char>(in[i + 2]);
    out += kB64[(n >> 18) & 63];
    out += kB64[(n >> 12) & 63];
    out += kB64[(n >> 6) & 63];
    out += kB64[n & 63];
  }
  if (i + 1 == in.size()) {
    const auto n = static_cast<unsigned char>(in[i]) << 16;
    out += kB64[(n >> 18) & 63];
    out += kB64[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const auto n =
        (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += kB64[(n >> 18) & 63];
    out += kB64[(n >> 12) & 63];
    out += kB64[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = in[i + static_cast<std::size_t>(k)];
      if (c == '=' && last && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) return std::nullopt;  // data after padding
      v[k] = b64_value(c);
      if (v[k] < 0) return std::nullopt;
    }
    const unsigned n = (static_cast<unsigned>(v[0]) << 18) | (static_cast<unsigned>(v[1]) << 12) |
                       (static_cast<unsigned>(v[2]) << 6) | static_cast<unsigned>(v[3]);
    out += static_cast<char>((n >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((n >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

}  // namespace truefrom::smtp
