#include "auth/identity_syntax.hpp"

#include <idn2.h>
#include <libpsl.h>

#include <cstdint>
#include <memory>

#include "auth/identity.hpp"

namespace truefrom::auth {
namespace {

bool is_ascii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// RFC 1035 2.3.1 host name in A-label form: letters, digits, hyphens; labels 1..63 octets,
// not starting or ending with a hyphen; at least two labels.
bool valid_ascii_domain(std::string_view d) {
  if (d.empty() || d.size() > 253 || d.find('.') == std::string_view::npos) return false;
  std::size_t start = 0;
  for (;;) {
    const auto dot = d.find('.', start);
    const std::string_view label =
        d.substr(start, dot == std::string_view::npos ? d.npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// RFC 3629 3: well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF). auth
// uses nothing of submission/ (DESIGN.md: arrows point down), so it checks this itself.
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t min = 0;
    std::uint32_t cp = 0;
    if (b < 0x80) {
      ++i;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      n = 2, min = 0x80, cp = b & 0x1Fu;
    } else if ((b & 0xF0) == 0xE0) {
      n = 3, min = 0x800, cp = b & 0x0Fu;
    } else if ((b & 0xF8) == 0xF0) {
      n = 4, min = 0x10000, cp = b & 0x07u;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

// RFC 5322 3.2.3 dot-atom text, with UTF-8 (RFC 6532): the unquoted local parts admins write.
bool valid_local_part(std::string_view l) {
  if (l.empty() || l.size() > 64 || l.front() == '.' || l.back() == '.') return false;
  if (l.find("..") != std::string_view::npos || !valid_utf8(l)) return false;
  for (char c : l) {
    const auto u = static_cast<unsigned char>(c);
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && u < 0x80 && c != '.' &&
        std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

std::optional<std::string> normalize_domain(std::string_view domain) {
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  if (domain.empty()) return std::nullopt;
  if (is_ascii(domain)) {
    std::string d = ascii_lower(domain);
    if (!valid_ascii_domain(d)) return std::nullopt;
    return d;
  }
  const std::string in(domain);
  char* out = nullptr;
  const int rc =
      idn2_lookup_u8(reinterpret_cast<const uint8_t*>(in.c_str()),
                     reinterpret_cast<uint8_t**>(&out), IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
  if (rc != IDN2_OK) return std::nullopt;
  std::unique_ptr<char, void (*)(void*)> owned(out, idn2_free);
  std::string d = ascii_lower(out);
  if (!valid_ascii_domain(d)) return std::nullopt;
  return d;
}

std::string organizational_domain(const std::string& domain) {
  static const psl_ctx_t* const kPsl = [] {
    const psl_ctx_t* latest = psl_latest(nullptr);
    return latest ? latest : psl_builtin();
  }();
  if (!kPsl) return domain;
  const char* reg = psl_registrable_domain(kPsl, domain.c_str());
  return reg ? std::string(reg) : domain;
}

bool parse_sender_identity(const std::string& text, SenderIdentity& out, std::string& reason) {
  std::string t = text;
  if (!t.empty() && t.front() == '@') t.erase(0, 1);
  if (t.empty()) {
    reason = "empty sender identity";
    return false;
  }
  for (char c : t) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 32 || u == 127 || c == '<' || c == '>' || c == '"' || c == '(' || c == ')' ||
        c == ',' || c == ';' || c == '\\') {
      reason = "\"" + text + "\" contains a character not allowed in an address or domain";
      return false;
    }
  }
  const auto at = t.rfind('@');
  if (at == std::string::npos) {
    const auto domain = normalize_domain(t);
    if (!domain) {
      reason = "\"" + text + "\" is neither an address (user@domain) nor a domain (example.com)";
      return false;
    }
    out = SenderIdentity{SenderIdentity::Kind::kDomain, *domain};
    return true;
  }
  const std::string local = t.substr(0, at);
  const auto domain = normalize_domain(t.substr(at + 1));
  if (!valid_local_part(local) || !domain) {
    reason = "\"" + text + "\" is not an address: expected user@domain, e.g. alice@example.com";
    return false;
  }
  out = SenderIdentity{SenderIdentity::Kind::kAddress, local + "@" + *domain};
  return true;
}

}  // namespace truefrom::auth
