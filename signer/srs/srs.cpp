#include "signer/srs/srs.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>

#include "signer/ascii.hpp"
#include "signer/openssl_text.hpp"

namespace truefrom::signer::srs {
namespace {

constexpr std::string_view kBase32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr std::int64_t kDay = 24 * 60 * 60;
constexpr std::int64_t kTickSlots = 32 * 32;
constexpr std::size_t kMaxAddress = 254;  // RFC 5321 4.5.3.1.3: a path is 256 with <>

// "SRS0" or "SRS1" (any case) followed by one of - + =.
bool has_tag(std::string_view local, char digit) {
  return local.size() >= 5 && ascii_lower(local[0]) == 's' && ascii_lower(local[1]) == 'r' &&
         ascii_lower(local[2]) == 's' && local[3] == digit &&
         (local[4] == '-' || local[4] == '+' || local[4] == '=');
}

// Splits `s` on '=' into at most `n` fields (the last keeps the rest), as Perl's split with a
// limit does; fewer fields when there are fewer separators.
std::vector<std::string_view> split(std::string_view s, std::size_t n) {
  std::vector<std::string_view> out;
  while (out.size() + 1 < n) {
    const auto p = s.find('=');
    if (p == std::string_view::npos) break;
    out.push_back(s.substr(0, p));
    s.remove_prefix(p + 1);
  }
  out.push_back(s);
  return out;
}

bool split_address(std::string_view address, std::string_view& local, std::string_view& domain) {
  const auto at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == address.size()) return false;
  local = address.substr(0, at);
  domain = address.substr(at + 1);
  return true;
}

}  // namespace

bool is_srs_local_part(std::string_view local) {
  return has_tag(local, '0') || has_tag(local, '1');
}

std::optional<std::vector<std::string>> load_secrets(const std::filesystem::path& path,
                                                     std::string& error) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    error = "[srs] secrets_file " + path.string() +
            " is missing (create it with one long random secret per line, e.g.: "
            "head -c 24 /dev/urandom | base64 > " +
            path.string() + "; chmod 600 " + path.string() + ")";
    return std::nullopt;
  }
  if (!S_ISREG(st.st_mode)) {
    error = "[srs] secrets_file " + path.string() + " is not a regular file";
    return std::nullopt;
  }
  if ((st.st_mode & 077) != 0) {
    error = "[srs] secrets_file " + path.string() +
            " may be read by group or others; run: chmod 600 " + path.string();
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read [srs] secrets_file " + path.string();
    return std::nullopt;
  }
  std::vector<std::string> secrets;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) secrets.push_back(line);
  }
  if (secrets.empty()) {
    error = "[srs] secrets_file " + path.string() +
            " holds no secret (one per line; the first signs, all verify)";
    return std::nullopt;
  }
  return secrets;
}

Srs::Srs(SrsOptions options) : options_(std::move(options)) {}

std::string Srs::timestamp(std::int64_t now) {
  const std::int64_t days = now / kDay;
  std::string t;
  t += kBase32[static_cast<std::size_t>((days >> 5) & 31)];
  t += kBase32[static_cast<std::size_t>(days & 31)];
  return t;
}

namespace {

// The whole base64 HMAC-SHA1 (27 characters, padding dropped).
std::string full_hash(const std::string& secret, const std::vector<std::string_view>& fields) {
  std::string data;
  for (auto f : fields) {
    for (char c : f) data += ascii_lower(c);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha1(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  std::string b64 = base64(md, len);
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  return b64;
}

}  // namespace

std::string Srs::hash(const std::string& secret,
                      const std::vector<std::string_view>& fields) const {
  return full_hash(secret, fields).substr(0, options_.hash_length);
}

bool Srs::hash_ok(std::string_view given, const std::vector<std::string_view>& fields) const {
  if (given.size() < options_.hash_length) return false;
  // Compared on the given length (Mail::SRS accepts a longer prefix of the digest too):
  // case-sensitively with every secret first, then case-insensitively.
  std::vector<std::string> valid;
  for (const auto& secret : options_.secrets) {
    valid.push_back(full_hash(secret, fields).substr(0, given.size()));
    if (valid.back() == given) return true;
  }
  return std::any_of(valid.begin(), valid.end(),
                     [&](const std::string& h) { return ascii_iequal(h, given); });
}

std::optional<std::string> Srs::forward(std::string_view sender, std::int64_t now,
                                        std::string& error) const {
  std::string_view local, domain;
  if (!split_address(sender, local, domain)) {
    error = "<" + std::string(sender) + "> has no domain to rewrite";
    return std::nullopt;
  }
  if (ascii_iequal(domain, options_.domain)) return std::string(sender);
  if (domain.find('=') != std::string_view::npos) {  // no domain name has one; unreversible
    error = "<" + std::string(sender) + ">: the domain cannot be SRS-encoded ('=' in it)";
    return std::nullopt;
  }
  std::string out;
  if (has_tag(local, '1')) {
    // Already SRS1: keep the first forwarder's part, hash it anew for us.
    const auto f = split(local.substr(5), 3);
    if (f.size() == 3 && !f[1].empty()) {  // else: not really SRS1, wrapped as SRS0 below
      out = "SRS1=" + hash(options_.secrets.front(), {f[1], f[2]}) + "=" + std::string(f[1]) + "=" +
            std::string(f[2]);
    }
  } else if (has_tag(local, '0')) {
    // An SRS0 address of another forwarder: keep it whole after its separator.
    const std::string rest = std::string(1, local[4]) + std::string(local.substr(5));
    out = "SRS1=" + hash(options_.secrets.front(), {domain, rest}) + "=" + std::string(domain) +
          "=" + rest;
  }
  if (out.empty()) {
    const std::string ts = timestamp(now);
    out = "SRS0=" + hash(options_.secrets.front(), {ts, domain, local}) + "=" + ts + "=" +
          std::string(domain) + "=" + std::string(local);
  }
  out += "@" + options_.domain;
  if (out.size() > kMaxAddress) {
    error = "the SRS form of <" + std::string(sender) + "> would be " + std::to_string(out.size()) +
            " octets, longer than an SMTP path allows (" + std::to_string(kMaxAddress) + ")";
    return std::nullopt;
  }
  return out;
}

bool Srs::in_domain(std::string_view address) const {
  std::string_view local, domain;
  return split_address(address, local, domain) && ascii_iequal(domain, options_.domain) &&
         is_srs_local_part(local);
}

std::optional<std::string> Srs::reverse(std::string_view address, std::int64_t now,
                                        std::string& why) const {
  std::string_view local, domain;
  if (!split_address(address, local, domain)) {
    why = "not an address";
    return std::nullopt;
  }
  if (has_tag(local, '1')) {
    const auto f = split(local.substr(5), 3);
    if (f.size() != 3 || f[1].empty()) {
      why = "malformed SRS1 address";
      return std::nullopt;
    }
    if (!hash_ok(f[0], {f[1], f[2]})) {
      why = "invalid hash (not made with our secrets, or altered)";
      return std::nullopt;
    }
    return "SRS0" + std::string(f[2]) + "@" + std::string(f[1]);
  }
  if (has_tag(local, '0')) {
    const auto f = split(local.substr(5), 4);
    if (f.size() != 4 || f[1].size() != 2 || f[2].empty() || f[3].empty()) {
      why = "malformed SRS0 address";
      return std::nullopt;
    }
    std::int64_t stamp = 0;
    for (char c : f[1]) {
      const auto p = kBase32.find(static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c));
      if (p == std::string_view::npos) {
        why = "malformed SRS0 timestamp";
        return std::nullopt;
      }
      stamp = stamp * 32 + static_cast<std::int64_t>(p);
    }
    if (!hash_ok(f[0], {f[1], f[2], f[3]})) {
      why = "invalid hash (not made with our secrets, or altered)";
      return std::nullopt;
    }
    std::int64_t today = (now / kDay) % kTickSlots;
    while (today < stamp) today += kTickSlots;
    if (today > stamp + options_.max_age_days) {
      why = "expired (made " + std::to_string(today - stamp) + " days ago; valid for " +
            std::to_string(options_.max_age_days) + ")";
      return std::nullopt;
    }
    return std::string(f[3]) + "@" + std::string(f[2]);
  }
  why = "not an SRS address";
  return std::nullopt;
}

}  // namespace truefrom::signer::srs
