#include "submission/policy/client_network.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>
#include <cstring>

namespace truefrom::policy {

std::optional<IpAddress> parse_ip(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  const std::string s(text);
  IpAddress a;
  in_addr v4{};
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    a.octets[10] = a.octets[11] = 0xff;
    std::memcpy(&a.octets[12], &v4, 4);
    a.v4 = true;
    return a;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) != 1) return std::nullopt;
  std::memcpy(a.octets.data(), &v6, 16);
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  a.v4 = std::memcmp(a.octets.data(), kMapped, 12) == 0;
  return a;
}

std::string wide_network(const IpAddress& a) {
  char buf[64];
  if (a.v4) {
    std::snprintf(buf, sizeof buf, "%u.%u.%u.0/24", a.octets[12], a.octets[13], a.octets[14]);
  } else {
    std::snprintf(buf, sizeof buf, "%x:%x:%x::/48", (a.octets[0] << 8) | a.octets[1],
                  (a.octets[2] << 8) | a.octets[3], (a.octets[4] << 8) | a.octets[5]);
  }
  return buf;
}

std::string client_network(const IpAddress& a) {
  char buf[64];
  if (a.v4) {
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", a.octets[12], a.octets[13], a.octets[14],
                  a.octets[15]);
  } else {
    std::snprintf(buf, sizeof buf, "%x:%x:%x:%x::/64", (a.octets[0] << 8) | a.octets[1],
                  (a.octets[2] << 8) | a.octets[3], (a.octets[4] << 8) | a.octets[5],
                  (a.octets[6] << 8) | a.octets[7]);
  }
  return buf;
}

bool Network::contains(const IpAddress& a) const {
  if (a.v4 != base.v4) return false;
  // IPv4 prefixes count from the 97th bit of the mapped form.
  unsigned bits = base.v4 ? prefix + 96 : prefix;
  for (std::size_t i = 0; i < 16 && bits > 0; ++i) {
    const unsigned take = bits >= 8 ? 8 : bits;
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - take));
    if ((a.octets[i] & mask) != (base.octets[i] & mask)) return false;
    bits -= take;
  }
  return true;
}

std::optional<Network> parse_network(std::string_view text, std::string* error) {
  const auto slash = text.find('/');
  const auto address = parse_ip(text.substr(0, slash));
  if (!address) {
    if (error) *error = "\"" + std::string(text) + "\" is not an IP address or CIDR network";
    return std::nullopt;
  }
  Network n{*address, address->v4 ? 32u : 128u};
  if (slash != std::string_view::npos) {
    const std::string_view bits = text.substr(slash + 1);
    unsigned p = 0;
    const auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), p);
    if (ec != std::errc{} || end != bits.data() + bits.size() || bits.empty() || p > n.prefix) {
      if (error) {
        *error = "\"" + std::string(text) + "\": the prefix length must be 0-" +
                 std::to_string(n.prefix);
      }
      return std::nullopt;
    }
    n.prefix = p;
  }
  return n;
}

}  // namespace truefrom::policy
