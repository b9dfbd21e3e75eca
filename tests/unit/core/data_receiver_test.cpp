#include "submission/core/data_receiver.hpp"

#include <gtest/gtest.h>

namespace truefrom::smtp {
namespace {

struct Result {
  std::string content;
  bool done = false;
  std::size_t consumed = 0;
  DataReceiver::Defect defect = DataReceiver::Defect::kNone;
};

// Feeds `in` whole and byte by byte; both must agree.
Result feed(std::string_view in, std::size_t max_size = 1 << 20) {
  Result whole;
  {
    DataReceiver r(max_size);
    auto p = r.consume(in, whole.content);
    whole.done = p.done;
    whole.consumed = p.consumed;
    whole.defect = r.defect();
  }
  Result bytes;
  DataReceiver r(max_size);
  for (std::size_t i = 0; i < in.size() && !bytes.done; ++i) {
    auto p = r.consume(in.substr(i, 1), bytes.content);
    bytes.consumed += p.consumed;
    bytes.done = p.done;
  }
  bytes.defect = r.defect();
  EXPECT_EQ(whole.content, bytes.content);
  EXPECT_EQ(whole.done, bytes.done);
  EXPECT_EQ(whole.consumed, bytes.consumed);
  EXPECT_EQ(whole.defect, bytes.defect);
  return whole;
}

using D = DataReceiver::Defect;

TEST(DataReceiver, Table) {
  struct Case {
    std::string in;
    std::string content;
    bool done;
    D defect;
  };
  const Case cases[] = {
      {".\r\n", "", true, D::kNone},
      {"hello\r\n.\r\n", "hello\r\n", true, D::kNone},
      {"a\r\n..b\r\n.\r\n", "a\r\n.b\r\n", true, D::kNone},
      {"a\r\n..\r\n.\r\n", "a\r\n.\r\n", true, D::kNone},
      {"a\r\n.x\r\n.\r\n", "a\r\nx\r\n", true, D::kNone},
      {"no end\r\n", "no end\r\n", false, D::kNone},
      // SMTP smuggling: none of these end the data.
      {"a\n.\nb\r\n.\r\n", "a\n.\nb\r\n", true, D::kBareNewline},
      {"a\r.\rb\r\n.\r\n", "a\r.\rb\r\n", true, D::kBareNewline},
      {"a\r\n.\nMAIL\r\n.\r\n", "a\r\n\nMAIL\r\n", true, D::kBareNewline},
      {"a\n.\r\nMAIL\r\n.\r\n", "a\n.\r\nMAIL\r\n", true, D::kBareNewline},
      {"a\r.\r\nb\r\n.\r\n", "a\r.\r\nb\r\n", true, D::kBareNewline},
      {"a\r\n.\rx\r\n.\r\n", "a\r\n\rx\r\n", true, D::kBareNewline},
      {std::string(998, 'x') + "\r\n.\r\n", std::string(998, 'x') + "\r\n", true, D::kNone},
      {std::string(999, 'x') + "\r\n.\r\n", std::string(999, 'x') + "\r\n", true, D::kLineTooLong},
  };
  for (const auto& c : cases) {
    auto r = feed(c.in);
    // After a defect the content is dropped, so only intact messages are compared.
    if (c.defect == D::kNone) EXPECT_EQ(r.content, c.content) << c.in;
    EXPECT_EQ(r.done, c.done) << c.in;
    EXPECT_EQ(r.defect, c.defect) << c.in;
  }
}

TEST(DataReceiver, StopsAtEndAndLeavesPipelinedInput) {
  auto r = feed("x\r\n.\r\nQUIT\r\n");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.consumed, 6u);
}

TEST(DataReceiver, CountsButDropsContentPastTheLimit) {
  auto r = feed("0123456789\r\n.\r\n", 5);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.defect, D::kTooBig);
  EXPECT_LE(r.content.size(), 5u);
}

}  // namespace
}  // namespace truefrom::smtp
