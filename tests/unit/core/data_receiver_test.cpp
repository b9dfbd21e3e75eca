#include "submission/core/data_receiver.hpp"

#include <gtest/gtest.h>

#include <random>

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
      // NUL anywhere in the content is refused at the end (a lenient relay might take
      // CRLF NUL "." CRLF for the end of data): at the start, in the middle, before the dot.
      {std::string("\0abc\r\n.\r\n", 9), "", true, D::kNul},
      {std::string("ab\0c\r\n.\r\n", 9), "", true, D::kNul},
      {std::string("abc\r\n\0.\r\n.\r\n", 12), "", true, D::kNul},
      {std::string("abc\r\n.\0\r\n.\r\n", 12), "", true, D::kNul},
      {std::string("abc\0\r\n.\r\n", 9), "", true, D::kNul},
      // The first defect wins; a NUL after the end is not the message's.
      {std::string("a\nb\0\r\n.\r\n", 9), "", true, D::kBareNewline},
      {std::string("ab\r\n.\r\n\0", 8), "ab\r\n", true, D::kNone},
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

// The receiver copies runs of ordinary octets at once. Model: the octet-by-octet state
// machine it is an optimization of (RFC 5321 4.5.2 unstuffing, CRLF "." CRLF ends, bare CR
// or LF and over-long lines and sizes marked, the first defect kept, nothing appended once
// a defect is marked).
struct Model {
  std::size_t max_size;
  std::string out;
  D defect = D::kNone;
  std::size_t size = 0;
  std::size_t line = 0;
  int state = 0;  // 0 line start, 1 after ".", 2 after ".\r", 3 in line, 4 after "\r"
  void mark(D d) {
    if (defect == D::kNone) defect = d;
  }
  void emit(char c) {
    if (++size > max_size) mark(D::kTooBig);
    if (defect == D::kNone) out += c;
  }
  // Returns the octets consumed up to the end of data, or npos.
  std::size_t feed(std::string_view in) {
    for (std::size_t i = 0; i < in.size(); ++i) {
      const char c = in[i];
      if (state == 0 && c == '.') {
        state = 1;
        continue;
      }
      if (state == 1) {
        if (c == '\r') {
          state = 2;
          continue;
        }
        ++line;
      } else if (state == 2) {
        if (c == '\n') return i + 1;
        ++line;
        mark(D::kBareNewline);
        emit('\r');
      } else if (state == 4) {
        if (c == '\n') {
          emit('\r');
          emit('\n');
          line = 0;
          state = 0;
          continue;
        }
        mark(D::kBareNewline);
        emit('\r');
      }
      if (c == '\r') {
        state = 4;
        continue;
      }
      if (c == '\n') mark(D::kBareNewline);
      if (c == '\0') mark(D::kNul);
      if (++line > 998) mark(D::kLineTooLong);
      emit(c);
      state = 3;
    }
    return std::string_view::npos;
  }
};

// Feeds `in` to the receiver (whole and octet by octet) and to the model; they must agree.
// Returns the receiver's result and, in `end`, where the model saw the end of data.
Result agree_with_model(const std::string& in, std::size_t max_size, int round, std::size_t& end) {
  Model m{max_size};
  end = m.feed(in);
  const Result r = feed(in, max_size);
  EXPECT_EQ(r.done, end != std::string_view::npos) << round;
  if (r.done) EXPECT_EQ(r.consumed, end) << round;
  EXPECT_EQ(r.content, m.out) << round;
  EXPECT_EQ(r.defect, m.defect) << round;
  return r;
}

TEST(DataReceiver, AgreesWithTheOctetModel) {
  std::mt19937 rng(7);
  const std::string alphabet("ab .\r\n\t\0", 8);
  for (int round = 0; round < 3000; ++round) {
    std::string in;
    const std::size_t len = rng() % 3000;
    // Mostly ordinary runs; in some rounds long enough for over-long lines.
    const unsigned sparse = round % 4 == 0 ? 1500 : 8;
    for (std::size_t i = 0; i < len; ++i) {
      in += rng() % sparse == 0 ? alphabet[rng() % alphabet.size()] : 'x';
    }
    if (round % 2 == 0) in += "\r\n.\r\n";
    const std::size_t max_size = round % 3 == 0 ? rng() % 2000 : 1 << 20;
    std::size_t end = 0;
    agree_with_model(in, max_size, round, end);
  }
}

// Inputs made of lines, as messages are: mostly CRLF-ended lines, some dot-stuffed, some
// near or past 998 octets, a few bare CRs or LFs, the end line in most; fed whole, octet by
// octet (feed) and in random pieces, always in agreement with the model.
TEST(DataReceiver, LinesAgreeWithTheOctetModel) {
  std::mt19937 rng(11);
  auto pick = [&rng](unsigned n) { return static_cast<unsigned>(rng() % n); };
  for (int round = 0; round < 2000; ++round) {
    std::string in;
    const unsigned lines = pick(40);
    for (unsigned l = 0; l < lines; ++l) {
      if (pick(6) == 0) in += pick(2) ? "." : "..";
      const std::size_t len = pick(20) == 0 ? 990 + pick(20) : pick(90);
      for (std::size_t i = 0; i < len; ++i) {
        const unsigned r = pick(400);
        in += r == 0 ? '\r' : r == 1 ? '\n' : r == 2 && pick(8) == 0 ? '\0' : "ab .\t"[pick(5)];
      }
      const unsigned end = pick(30);
      in += end == 0 ? "\n" : end == 1 ? "\r" : "\r\n";
    }
    if (pick(4) != 0) in += ".\r\n";
    if (pick(3) == 0) in += "MAIL FROM:<next@example.com>\r\n";  // pipelined after the end
    const std::size_t max_size = pick(3) == 0 ? pick(4000) : 1 << 20;
    std::size_t end = 0;
    const Result r = agree_with_model(in, max_size, round, end);
    // Random pieces.
    DataReceiver pieces(max_size);
    std::string out;
    std::size_t pos = 0, consumed = 0;
    bool done = false;
    while (pos < in.size() && !done) {
      const std::size_t take = std::min<std::size_t>(1 + pick(200), in.size() - pos);
      const auto p = pieces.consume(std::string_view(in).substr(pos, take), out);
      consumed += p.consumed;
      done = p.done;
      pos += take;
    }
    EXPECT_EQ(done, r.done) << round;
    if (done) EXPECT_EQ(consumed, end) << round;
    EXPECT_EQ(out, r.content) << round;
    EXPECT_EQ(pieces.defect(), r.defect) << round;
  }
}

}  // namespace
}  // namespace truefrom::smtp
