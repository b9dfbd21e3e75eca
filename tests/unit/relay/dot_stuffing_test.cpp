#include "submission/relay/dot_stuffing.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace truefrom::relay {
namespace {

std::string stuffed(const std::vector<std::string_view>& parts) {
  std::vector<std::string_view> pieces;
  dot_stuff(parts, pieces);
  std::string out;
  for (auto p : pieces) out += p;
  return out;
}

// The rule written the plain way, octet by octet.
std::string model(const std::string& message) {
  std::string out;
  bool line_start = true;
  for (const char c : message) {
    if (line_start && c == '.') out += '.';
    out += c;
    line_start = c == '\n';
  }
  if (!message.empty() && message.back() != '\n') out += "\r\n";
  return out + ".\r\n";
}

TEST(DotStuffing, Examples) {
  EXPECT_EQ(stuffed({"a\r\n.b\r\n..c\r\n"}), "a\r\n..b\r\n...c\r\n.\r\n");
  EXPECT_EQ(stuffed({".first\r\n"}), "..first\r\n.\r\n");
  EXPECT_EQ(stuffed({"no end"}), "no end\r\n.\r\n");
  EXPECT_EQ(stuffed({}), ".\r\n");
  // A line start found across parts, in both directions.
  EXPECT_EQ(stuffed({"a\r\n", ".b\r\n"}), "a\r\n..b\r\n.\r\n");
  EXPECT_EQ(stuffed({"a\r", "\n", "", ".b"}), "a\r\n..b\r\n.\r\n");
  EXPECT_EQ(stuffed({"x.", ".y\r\n"}), "x..y\r\n.\r\n");
}

TEST(DotStuffing, AgreesWithTheOctetModel) {
  std::mt19937 rng(7);
  const std::string alphabet = "..\r\n\nab ";
  for (int round = 0; round < 3000; ++round) {
    std::string message;
    const int n = static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) message += alphabet[rng() % alphabet.size()];
    std::vector<std::string_view> parts;
    std::size_t at = 0;
    while (at < message.size()) {
      const std::size_t len = std::min<std::size_t>(rng() % 6, message.size() - at);
      parts.push_back(std::string_view(message).substr(at, len));
      at += len;
    }
    ASSERT_EQ(stuffed(parts), model(message)) << message;
  }
}

}  // namespace
}  // namespace truefrom::relay
