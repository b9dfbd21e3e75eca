#include "submission/core/netstring.hpp"

#include <gtest/gtest.h>

namespace truefrom::smtp {
namespace {

std::vector<std::string> read_all(NetstringReader& r, std::string& error, bool& failed) {
  std::vector<std::string> out;
  std::string s;
  failed = false;
  for (;;) {
    const auto res = r.next(s, error);
    if (res == NetstringReader::Result::kDone) {
      out.push_back(s);
    } else {
      failed = res == NetstringReader::Result::kError;
      return out;
    }
  }
}

TEST(Netstring, AnySplitGivesTheSameStrings) {
  const std::string input = "19:reverse a@b.example,0:,3:a,b,";
  for (std::size_t split = 0; split <= input.size(); ++split) {
    NetstringReader r(100);
    std::string error;
    bool failed = false;
    r.feed(input.substr(0, split));
    auto got = read_all(r, error, failed);
    ASSERT_FALSE(failed) << error;
    r.feed(input.substr(split));
    auto more = read_all(r, error, failed);
    ASSERT_FALSE(failed) << error;
    got.insert(got.end(), more.begin(), more.end());
    EXPECT_EQ(got, (std::vector<std::string>{"reverse a@b.example", "", "a,b"})) << split;
  }
}

TEST(Netstring, Errors) {
  struct Case {
    std::string in, why;
  };
  const Case cases[] = {
      {"3:abc;", "not terminated"},
      {"x:", "malformed"},
      {":abc,", "malformed"},
      {"01:a,", "malformed"},
      {"-1:a,", "malformed"},
      {"101:", "longer than 100"},
      {"99999999999999999999999:", "longer than 100"},
  };
  for (const auto& c : cases) {
    NetstringReader r(100);
    r.feed(c.in);
    std::string out, error;
    EXPECT_EQ(r.next(out, error), NetstringReader::Result::kError) << c.in;
    EXPECT_NE(error.find(c.why), std::string::npos) << c.in << ": " << error;
  }
}

TEST(Netstring, Encode) {
  EXPECT_EQ(netstring("OK alice@example.com"), "20:OK alice@example.com,");
  EXPECT_EQ(netstring(""), "0:,");
}

}  // namespace
}  // namespace truefrom::smtp
