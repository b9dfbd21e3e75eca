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
  const auto at = t.rfind('@');
  if (at == std::string::npos) {
    if (t.find('.') == std::string::npos) {
      reason = "\"" + text + "\" is neither an address (user@domain) nor a domain (example.com)";
      return false;
    }
    out = {SenderIdentity::Kind::kDomain, std::string(without_root_dot(t))};
    return true;
  }
  if (at == 0 || at + 1 == t.size()) {
    reason = "\"" + text + "\" is not an address: expected user@domain";
    return false;
  }
  out = {SenderIdentity::Kind::kAddress,
         t.substr(0, at + 1) + std::string(without_root_dot(t.substr(at + 1)))};
  return true;
}

}  // namespace truefrom::auth
