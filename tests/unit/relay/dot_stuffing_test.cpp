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

// `message` cut into parts of 0 to 5 octets.
std::vector<std::string_view> random_parts(const std::string& message, std::mt19937& rng) {
  std::vector<std::string_view> parts;
  std::size_t at = 0;
  while (at < message.size()) {
    const std::size_t len = std::min<std::size_t>(rng() % 6, message.size() - at);
    parts.push_back(std::string_view(message).substr(at, len));
    at += len;
  }
  return parts;
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

// What a receiver stores from the DATA stream (RFC 5321 4.5.2), written the plain way.
std::string unstuffed(const std::string& data) {
  std::string out;
  std::size_t at = 0;
  for (;;) {
    const std::size_t eol = data.find("\r\n", at);
    if (eol == std::string::npos) return "unterminated: " + data;
    std::string line = data.substr(at, eol - at);
    at = eol + 2;
    if (line == ".") return at == data.size() ? out : "data after the end: " + data;
    if (!line.empty() && line[0] == '.') line.erase(0, 1);
    out += line + "\r\n";
  }
}

std::string chunked(const std::vector<std::string_view>& parts, std::size_t* size) {
  std::vector<std::string_view> pieces;
  *size = chunk(parts, pieces);
  std::string out;
  for (auto p : pieces) out += p;
  return out;
}

TEST(Chunk, Examples) {
  std::size_t size = 0;
  EXPECT_EQ(chunked({"a\r\n.b\r\n"}, &size), "a\r\n.b\r\n");
  EXPECT_EQ(size, 7U);
  EXPECT_EQ(chunked({"no", "", " end"}, &size), "no end\r\n");
  EXPECT_EQ(size, 8U);
  EXPECT_EQ(chunked({}, &size), "");
  EXPECT_EQ(size, 0U);
}

TEST(DotStuffing, AgreesWithTheOctetModel) {
  std::mt19937 rng(7);
  const std::string alphabet = "..\r\n\nab ";
  for (int round = 0; round < 3000; ++round) {
    std::string message;
    const int n = static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) message += alphabet[rng() % alphabet.size()];
    const std::vector<std::string_view> parts = random_parts(message, rng);
    ASSERT_EQ(stuffed(parts), model(message)) << message;
  }
}

// A relay stores the same octets whether a message (CRLF line ends, as every message the
// server accepts has) came by DATA or by BDAT.
TEST(Chunk, RelayStoresWhatDataWouldHaveGiven) {
  std::mt19937 rng(11);
  const std::string_view tokens[] = {".", "\r\n", "a", " "};
  for (int round = 0; round < 3000; ++round) {
    std::string message;
    const int n = static_cast<int>(rng() % 30);
    for (int i = 0; i < n; ++i) message += tokens[rng() % 4];
    const std::vector<std::string_view> parts = random_parts(message, rng);
    std::size_t size = 0;
    const std::string body = chunked(parts, &size);
    ASSERT_EQ(size, body.size());
    ASSERT_EQ(body, unstuffed(stuffed(parts))) << message;
  }
}

}  // namespace
}  // namespace truefrom::relay
