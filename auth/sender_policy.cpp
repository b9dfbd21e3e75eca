#include "auth/sender_policy.hpp"

#include <string>

namespace truefrom::auth {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

// "example.test." and "example.test" are the same domain (RFC 1034 3.1 absolute form).
std::string_view without_root_dot(std::string_view d) {
  if (!d.empty() && d.back() == '.') d.remove_suffix(1);
  return d;
}

// RFC 1035 2.3.1 host name: letters, digits and hyphens, labels not starting or ending
// with a hyphen, at least two labels.
bool valid_domain(std::string_view d) {
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

// RFC 5322 3.2.3 dot-atom text (the unquoted local parts admins write).
bool valid_local_part(std::string_view l) {
  if (l.empty() || l.size() > 64 || l.front() == '.' || l.back() == '.') return false;
  if (l.find("..") != std::string_view::npos) return false;
  for (char c : l) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && c != '.' &&
        std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool owns_address(const std::vector<SenderIdentity>& identities, std::string_view local,
                  std::string_view domain) {
  const std::string dom = lower(without_root_dot(domain));
  const std::string address = lower(local) + "@" + dom;
  for (const auto& id : identities) {
    switch (id.kind) {
      case SenderIdentity::Kind::kAddress:
        if (id.value == address) return true;
        break;
      case SenderIdentity::Kind::kDomain:
        if (id.value == dom) return true;
        break;
    }
  }
  return false;
}

bool parse_sender_identity(const std::string& text, SenderIdentity& out, std::string& reason) {
  std::string t = lower(text);
  if (!t.empty() && t.front() == '@') t.erase(0, 1);
  if (t.empty()) {
    reason = "empty sender identity";
    return false;
  }
  for (char c : t) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 32 || u >= 127 || c == '<' || c == '>' || c == '"' || c == '(' || c == ')' ||
        c == ',' || c == ';' || c == '\\') {
      reason = "\"" + text + "\" contains a character not allowed in an address or domain";
      return false;
    }
  }
  const auto at = t.find('@');
  if (at == std::string::npos) {
    const std::string domain(without_root_dot(t));
    if (!valid_domain(domain)) {
      reason = "\"" + text + "\" is neither an address (user@domain) nor a domain (example.com)";
      return false;
    }
    out = {SenderIdentity::Kind::kDomain, domain};
    return true;
  }
  const std::string local = t.substr(0, at);
  const std::string domain(without_root_dot(t.substr(at + 1)));
  if (!valid_local_part(local) || !valid_domain(domain)) {
    reason = "\"" + text + "\" is not an address: expected user@domain, e.g. alice@example.com";
    return false;
  }
  out = {SenderIdentity::Kind::kAddress, local + "@" + domain};
  return true;
}

}  // namespace truefrom::auth
