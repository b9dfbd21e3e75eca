#include "submission/core/address.hpp"

#include <algorithm>

#include "submission/core/header_text.hpp"

namespace truefrom::smtp {
namespace {

// RFC 5321 4.5.3.1.1-3
constexpr std::size_t kMaxLocalPart = 64;
constexpr std::size_t kMaxDomain = 255;
constexpr std::size_t kMaxPath = 256;

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// RFC 5322 3.2.3 atext
bool is_atext(char c) {
  if (is_alpha(c) || is_digit(c)) return true;
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

bool set_error(std::string* error, std::string_view why) {
  if (error) *error = why;
  return false;
}

bool is_non_ascii(char c) { return static_cast<unsigned char>(c) >= 0x80; }

bool valid_dot_string(std::string_view s, bool utf8 = false) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  char prev = 0;
  for (char c : s) {
    if (c == '.' && prev == '.') return false;
    if (c != '.' && !is_atext(c) && !(utf8 && is_non_ascii(c))) return false;
    prev = c;
  }
  return true;
}

// RFC 5321 4.1.2: Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str]
bool valid_domain_name(std::string_view d, bool utf8) {
  if (d.empty() || d.size() > kMaxDomain) return false;
  std::size_t start = 0;
  while (start <= d.size()) {
    auto dot = d.find('.', start);
    if (dot == std::string_view::npos) dot = d.size();
    std::string_view label = d.substr(start, dot - start);
    if (label.empty() || label.size() > 63) return false;
    // RFC 6531 3.3: with SMTPUTF8 a label may be a U-label (checked further by IDNA).
    const auto let_dig = [utf8](char c) {
      return is_alpha(c) || is_digit(c) || (utf8 && is_non_ascii(c));
    };
    if (!let_dig(label.front()) || !let_dig(label.back())) return false;
    for (char c : label) {
      if (!let_dig(c) && c != '-') return false;
    }
    start = dot + 1;
    if (dot == d.size()) break;
  }
  return true;
}

// RFC 5321 4.1.3: address-literal = "[" ( IPv4 / IPv6 / General ) "]". Checked for its
// character set only: dcontent is %d33-90 / %d94-126.
bool valid_address_literal(std::string_view d) {
  if (d.size() < 3 || d.front() != '[' || d.back() != ']') return false;
  for (char c : d.substr(1, d.size() - 2)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126 || c == '[' || c == '\\' || c == ']') return false;
  }
  return true;
}

}  // namespace

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; });
  return out;
}

bool is_utf8_address(const Mailbox& m) {
  return std::any_of(m.local.begin(), m.local.end(), is_non_ascii) ||
         std::any_of(m.domain.begin(), m.domain.end(), is_non_ascii);
}

std::string Mailbox::to_string() const {
  if (valid_dot_string(local, true)) return local + "@" + domain;
  std::string out = "\"";
  for (char c : local) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += "\"@";
  out += domain;
  return out;
}

std::optional<Mailbox> parse_mailbox(std::string_view text, std::string* error, bool utf8) {
  if (utf8 && !valid_utf8(text)) {
    set_error(error, "the address is not valid UTF-8");
    return std::nullopt;
  }
  Mailbox mb;
  std::size_t i = 0;
  if (!text.empty() && text.front() == '"') {
    // Quoted-string = DQUOTE *QcontentSMTP DQUOTE (RFC 5321 4.1.2)
    i = 1;
    bool closed = false;
    while (i < text.size()) {
      const char c = text[i];
      const auto u = static_cast<unsigned char>(c);
      if (c == '\\') {
        if (i + 1 >= text.size()) break;
        const auto e = static_cast<unsigned char>(text[i + 1]);
        if (e < 32 || (e > 126 && !(utf8 && e >= 0x80))) {
          set_error(error, "invalid character in quoted local part");
          return std::nullopt;
        }
        mb.local += text[i + 1];
        i += 2;
        continue;
      }
      if (c == '"') {
        closed = true;
        ++i;
        break;
      }
      if (u < 32 || (u > 126 && !(utf8 && u >= 0x80))) {
        set_error(error, "invalid character in quoted local part");
        return std::nullopt;
      }
      mb.local += c;
      ++i;
    }
    if (!closed) {
      set_error(error, "unterminated quoted local part");
      return std::nullopt;
    }
    if (i >= text.size() || text[i] != '@') {
      set_error(error, "missing @domain");
      return std::nullopt;
    }
  } else {
    const auto at = text.rfind('@');
    if (at == std::string_view::npos) {
      set_error(error, "missing @domain");
      return std::nullopt;
    }
    mb.local = text.substr(0, at);
    if (!valid_dot_string(mb.local, utf8)) {
      set_error(error, "invalid local part");
      return std::nullopt;
    }
    i = at;
  }
  if (mb.local.empty()) {
    set_error(error, "empty local part");
    return std::nullopt;
  }
  if (mb.local.size() > kMaxLocalPart) {
    set_error(error, "local part longer than 64 octets");
    return std::nullopt;
  }
  const std::string_view domain = text.substr(i + 1);
  if (domain.empty() ||
      !(domain.front() == '[' ? valid_address_literal(domain) : valid_domain_name(domain, utf8))) {
    set_error(error, "invalid domain");
    return std::nullopt;
  }
  mb.domain = domain;
  return mb;
}

std::optional<PathParse> parse_path(std::string_view text, std::string* error, bool utf8) {
  if (text.empty() || text.front() != '<') {
    set_error(error, "address must be enclosed in <>");
    return std::nullopt;
  }
  // Find the closing '>' outside a quoted local part.
  bool quoted = false;
  std::size_t close = std::string_view::npos;
  for (std::size_t i = 1; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted && c == '\\') {
      ++i;
      continue;
    }
    if (c == '"') quoted = !quoted;
    if (!quoted && c == '>') {
      close = i;
      break;
    }
  }
  if (close == std::string_view::npos) {
    set_error(error, "missing closing >");
    return std::nullopt;
  }
  if (close + 1 > kMaxPath) {
    set_error(error, "path longer than 256 octets");
    return std::nullopt;
  }
  PathParse out;
  out.rest = text.substr(close + 1);
  std::string_view inner = text.substr(1, close - 1);
  if (inner.empty()) return out;
  if (inner.front() == '@') {
    // A-d-l ":" Mailbox: the source route is ignored (RFC 5321 4.1.2, C.).
    const auto colon = inner.find(':');
    if (colon == std::string_view::npos) {
      set_error(error, "malformed source route");
      return std::nullopt;
    }
    inner.remove_prefix(colon + 1);
  }
  auto mb = parse_mailbox(inner, error, utf8);
  if (!mb) return std::nullopt;
  out.mailbox = std::move(*mb);
  return out;
}

}  // namespace truefrom::smtp
