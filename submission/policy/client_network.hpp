// Client addresses as the abuse controls see them: one IPv4 address, or one IPv6 /64 (what
// a single customer line usually gets; RFC 6177), so that an attacker cannot dodge a limit
// by walking the addresses of their own /64. IPv4-mapped IPv6 addresses count as IPv4.
// Networks in CIDR form for allowlists. Pure functions and values; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace truefrom::policy {

/// An IPv4 or IPv6 address in 16 octets (IPv4 as ::ffff:a.b.c.d).
struct IpAddress {
  std::array<std::uint8_t, 16> octets{};
  bool v4 = false;
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

/// Parses "192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1". nullopt when it is neither.
std::optional<IpAddress> parse_ip(std::string_view text);

/// The key abuse controls count by: "192.0.2.1" or "2001:db8:1:2::/64".
std::string client_network(const IpAddress& address);

/// A wider network, for telling one customer's addresses from many places: the /24 of an
/// IPv4 address, the /48 of an IPv6 one ("192.0.2.0/24", "2001:db8:1::/48").
std::string wide_network(const IpAddress& address);

/// A network in CIDR form ("10.0.0.0/8", "2001:db8::/32"; a bare address is a /32 or /128).
struct Network {
  IpAddress base;
  unsigned prefix = 0;  ///< in bits of the address family (0-32 for IPv4, 0-128 for IPv6)
  bool contains(const IpAddress& a) const;
};

/// Parses a CIDR network; on failure nullopt with the reason in `*error`.
std::optional<Network> parse_network(std::string_view text, std::string* error = nullptr);

}  // namespace truefrom::policy
