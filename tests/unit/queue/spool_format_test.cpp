// The pure on-disk format (spool_format.hpp): heads, states, segment records.
#include "spool_test_support.hpp"

namespace truefrom::queue {
namespace {

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

TEST(SpoolFormat, HeadRoundTrip) {
  MessageInfo m = sample("0123456789ABCDEF01");
  const std::string body = "Subject: x\r\n\r\nbody\r\n";
  m.size = body.size();
  const std::string file = encode_head(m) + body;
  std::size_t offset = 0;
  std::string error;
  const auto back = decode_head(file, offset, error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->id, m.id);
  EXPECT_EQ(back->mail_from, m.mail_from);
  EXPECT_EQ(back->recipients, m.recipients);
  EXPECT_TRUE(back->eight_bit);
  EXPECT_FALSE(back->smtputf8);
  EXPECT_EQ(back->user, "alice");
  EXPECT_EQ(back->arrival, m.arrival);
  EXPECT_EQ(file.substr(offset), body);
}

TEST(SpoolFormat, NullSenderRoundTrip) {
  MessageInfo m = sample("0123456789ABCDEF02");
  m.mail_from.clear();
  m.user.clear();
  const std::string file = encode_head(m);
  std::size_t offset = 0;
  std::string error;
  const auto back = decode_head(file, offset, error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->mail_from, "");
  EXPECT_EQ(back->user, "");
}

TEST(SpoolFormat, DamagedHeadsAreRefused) {
  MessageInfo m = sample("0123456789ABCDEF03");
  m.size = 4;
  const std::string good = encode_head(m) + "abcd";
  struct Case {
    std::string file;
    std::string why;
  };
  const Case cases[] = {
      {"", "not a truefrom queue file"},
      {"truefrom-queue 2\nid x\n\n", "not a truefrom queue file"},
      {good.substr(0, good.size() - 1), "the envelope says 4"},  // truncated data
      {good + "x", "the envelope says 4"},                       // trailing data
      {good.substr(0, good.find("\n\n")), "no end"},             // head cut
      {"truefrom-queue 1\nid 0123456789AB\nfrom a@b\narrival 1\nsize 0\n\n",
       "lacks"},  // no recipient
      {"truefrom-queue 1\nid bad/id\nfrom a@b\nrcpt c@d\narrival 1\nsize 0\n\n",
       "unexpected envelope line"},
      {"truefrom-queue 1\nid 0123456789AB\nfrom a@b\nrcpt c@d\nx-new 1\narrival 1\nsize 0\n\n",
       "unexpected envelope line"},
      {"truefrom-queue 1\nid 0123456789AB\nfrom a@b\nrcpt c@d\narrival -\nsize 0\n\n",
       "unexpected envelope line"},
      {"truefrom-queue 1\nid 0123456789AB\nfrom a\rb\nrcpt c@d\narrival 1\nsize 0\n\n",
       "control characters"},
  };
  for (const auto& c : cases) {
    std::size_t offset = 0;
    std::string error;
    EXPECT_FALSE(decode_head(c.file, offset, error)) << c.file;
    EXPECT_NE(error.find(c.why), std::string::npos) << error << " for " << c.file;
  }
}

TEST(SpoolFormat, StateRoundTripAndErrors) {
  DeliveryState s;
  s.attempts = 3;
  s.next_attempt = 1790000123;
  s.last_error = "451 4.4.1 relay\nunavailable";
  s.finished = {"a@b", "c@d"};
  std::string error;
  const auto back = decode_state(encode_state(s), error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->attempts, 3u);
  EXPECT_EQ(back->next_attempt, 1790000123);
  EXPECT_EQ(back->last_error, "451 4.4.1 relay unavailable");  // one line
  EXPECT_EQ(back->finished, s.finished);
  EXPECT_FALSE(decode_state("attempts x\n", error));
  EXPECT_FALSE(decode_state("attempts 1", error));  // truncated
  EXPECT_FALSE(decode_state("bogus 1\n", error));
}

TEST(SpoolFormat, Ids) {
  EXPECT_TRUE(valid_id("0123456789ABCDEF01"));
  EXPECT_FALSE(valid_id("short"));
  EXPECT_FALSE(valid_id("../../etc/passwd"));
  EXPECT_FALSE(valid_id("0123456789ABCDEF0.x"));
  EXPECT_FALSE(valid_id(std::string(33, 'A')));
}

TEST(SpoolFormat, SegmentRecords) {
  EXPECT_EQ(encode_record_header(1234, true, 0x0123456789abcdefULL),
            "rec L 000000001234 0123456789abcdef\n");
  EXPECT_EQ(encode_record_header(0, false, 0).size(), kRecordHeader);
  EXPECT_EQ(record_checksum({"ab", "c"}), record_checksum({"abc"}));
  EXPECT_NE(record_checksum({"abc"}), record_checksum({"abd"}));
  const std::string file = std::string(kSegmentMagic) + encode_record("abc", true) +
                           encode_record("", false) + encode_record("de", true);
  std::size_t end = 0;
  auto records = parse_segment(file, end);
  ASSERT_TRUE(records);
  EXPECT_EQ(end, file.size());
  ASSERT_EQ(records->size(), 3u);
  EXPECT_EQ((*records)[0].payload, "abc");
  EXPECT_EQ((*records)[0].offset, kSegmentMagic.size());
  EXPECT_EQ((*records)[0].header, kRecordHeader);
  EXPECT_FALSE((*records)[1].live);
  EXPECT_EQ((*records)[2].payload, "de");
  const std::string sum = encode_record("x", true).substr(19, 16);
  // Whatever cannot be a whole record, or does not match its checksum, ends the walk there.
  for (const std::string& tail :
       {std::string("rec L 0000000"), encode_record("longer", true).substr(0, kRecordHeader + 3),
        "rec X 000000000001 " + sum + "\nx", "rec L -00000000001 " + sum + "\nx",
        "rec L 00000000000a " + sum + "\nx", std::string("rec L 000000000001\nx"),
        "rec L 000000000001 " + sum + "\ny",                     // another payload
        std::string("rec L 000000000001 0000000000000000\nx"),   // another checksum
        "rec L 000000000001 " + std::string(15, '0') + "\n\nx",  // a short one
        "rec L 000000000001 " + upper(sum) + "\nx",              // not as written
        std::string(kRecordHeader + 1, '\0')}) {
    records = parse_segment(file + tail, end);
    ASSERT_TRUE(records) << tail;
    EXPECT_EQ(records->size(), 3u) << tail;
    EXPECT_EQ(end, file.size()) << tail;
  }
  EXPECT_EQ(parse_segment(std::string(kSegmentMagic) + encode_record("x", true), end)->size(), 1u);
  EXPECT_FALSE(parse_segment("truefrom-segment 3\n", end));
  EXPECT_FALSE(parse_segment("", end));
}

TEST(SpoolFormat, VersionOneSegmentsAreStillRead) {
  // Written by a server before record checksums: recovery after an upgrade reads them.
  EXPECT_EQ(encode_record("abc", true, true), "rec L 000000000003\nabc");
  const std::string file = std::string(kSegmentMagicV1) + encode_record("abc", true, true) +
                           encode_record("de", false, true);
  std::size_t end = 0;
  const auto records = parse_segment(file, end);
  ASSERT_TRUE(records);
  EXPECT_EQ(end, file.size());
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].payload, "abc");
  EXPECT_EQ((*records)[0].header, kRecordHeaderV1);
  EXPECT_FALSE((*records)[1].live);
  EXPECT_EQ((*records)[1].payload, "de");
  // A version 2 header in a version 1 file is no record.
  EXPECT_EQ(parse_segment(std::string(kSegmentMagicV1) + encode_record("x", true), end)->size(),
            0u);
}

}  // namespace
}  // namespace truefrom::queue
