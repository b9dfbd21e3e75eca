#include "submission/queue/spool.hpp"

#include "submission/runtime/background_threads.hpp"

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

// Failure injection: the spool's fdatasync() calls resolve to this definition (the test
// executable's own symbol comes before libc's). While armed, the next calls fail with EIO,
// as when the kernel lost a write-back: Linux reports that once per open file, and a later
// fdatasync() of the same file succeeds without the lost pages.
// Every call is counted in g_syncs.
namespace {
std::atomic<int> g_failing_syncs{0};
std::atomic<int> g_syncs{0};
}  // namespace

extern "C" int fdatasync(int fd) {
  ++g_syncs;
  for (int n = g_failing_syncs.load(); n > 0;) {
    if (g_failing_syncs.compare_exchange_weak(n, n - 1)) {
      errno = EIO;
      return -1;
    }
  }
  return static_cast<int>(::syscall(SYS_fdatasync, fd));
}

namespace truefrom::queue {
namespace {

namespace fs = std::filesystem;

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

MessageInfo sample(const std::string& id) {
  MessageInfo m;
  m.id = id;
  m.mail_from = "alice@example.test";
  m.recipients = {"bob@dest.test", "\"odd local\"@dest.test"};
  m.eight_bit = true;
  m.smtputf8 = false;
  m.user = "alice";
  m.arrival = 1790000000;
  return m;
}

// What a segment record or a file in active/ holds: sample(id)'s head, then `data`.
std::string payload_of(const std::string& id, std::string_view data) {
  MessageInfo m = sample(id);
  m.size = data.size();
  return encode_head(m) + std::string(data);
}

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("spool-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

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

std::size_t bytes_in(const fs::path& p) { return static_cast<std::size_t>(fs::file_size(p)); }

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The records of a segment file, which must end in nothing but the zeros written ahead of
// them (a torn or stray octet after the last record would be a bug).
std::vector<SegmentRecord> records_in(const std::string& file) {
  std::size_t end = 0;
  auto records = parse_segment(file, end);
  EXPECT_TRUE(records);
  EXPECT_EQ(file.find_first_not_of('\0', end), std::string::npos)
      << "octets after the last record at " << end;
  return records ? *records : std::vector<SegmentRecord>{};
}
std::vector<SegmentRecord> records_in(std::string&&) = delete;  // views into a dead string

std::size_t live_records(const std::string& file) {
  const auto records = records_in(file);
  return static_cast<std::size_t>(
      std::count_if(records.begin(), records.end(), [](const auto& r) { return r.live; }));
}

std::vector<fs::path> segment_files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir / "segments")) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// A file-size limit for this process while it lives (appends past it fail with EFBIG, as
// on a full disk; SIGXFSZ ignored as the server does).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    EXPECT_EQ(::getrlimit(RLIMIT_FSIZE, &old_), 0);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = old_;
    small.rlim_cur = bytes;
    EXPECT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  struct rlimit old_ {};
  void (*old_handler_)(int) = nullptr;
};

// Writes and commits one message; returns false (with the error in the test log) on failure.
bool put(Spool& spool, const std::string& id, std::string_view data) {
  std::string error;
  auto w = spool.write(sample(id), {data}, error);
  const bool ok = w && spool.commit_and_wait(std::move(*w), error);
  EXPECT_TRUE(ok) << error;
  return ok;
}

TEST_F(SpoolTest, WriteCommitReadRemove) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error)) << error;
  EXPECT_EQ(fs::status(dir_ / "active").permissions() & fs::perms::all, fs::perms::owner_all);
  EXPECT_EQ(fs::status(dir_ / "segments").permissions() & fs::perms::all, fs::perms::owner_all);
  const MessageInfo m = sample("0123456789ABCDEF10");
  auto w = spool.write(m, {"DKIM-Signature: x\r\n", "Received: y\r\n", "Subject: z\r\n\r\nhi\r\n"},
                       error);
  ASSERT_TRUE(w) << error;
  EXPECT_FALSE(spool.find(m.id));  // not visible before the commit
  ASSERT_TRUE(spool.commit_and_wait(std::move(*w), error)) << error;
  EXPECT_EQ(spool.find(m.id), Where::kActive);
  EXPECT_TRUE(spool.in_segment(m.id));
  EXPECT_TRUE(spool.list(Where::kActive).empty());  // no file of its own: no per-message inode
  const auto segments = segment_files(dir_);
  ASSERT_EQ(segments.size(), 1u);
  struct stat st {};
  ASSERT_EQ(::stat(segments[0].c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  std::string data;
  auto back = spool.read(m.id, Where::kActive, &data, error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(data, "DKIM-Signature: x\r\nReceived: y\r\nSubject: z\r\n\r\nhi\r\n");
  EXPECT_EQ(back->size, data.size());
  EXPECT_EQ(back->recipients, m.recipients);

  // A message that has to wait moves into a file of its own, with its state.
  DeliveryState s;
  s.attempts = 1;
  s.finished = {"bob@dest.test"};
  ASSERT_TRUE(spool.save_state(m.id, s, error)) << error;
  EXPECT_FALSE(spool.in_segment(m.id));
  EXPECT_EQ(spool.list(Where::kActive), std::vector<std::string>{m.id});
  ASSERT_EQ(::stat((dir_ / "active" / m.id).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(spool.load_state(m.id).finished, s.finished);
  data.clear();
  ASSERT_TRUE(spool.read(m.id, Where::kActive, &data, error)) << error;
  EXPECT_EQ(data, "DKIM-Signature: x\r\nReceived: y\r\nSubject: z\r\n\r\nhi\r\n");
  // its record is done
  EXPECT_EQ(live_records(slurp(segments[0])), 0u);

  ASSERT_TRUE(spool.move(m.id, Where::kActive, Where::kHold, error)) << error;
  EXPECT_EQ(spool.find(m.id), Where::kHold);
  EXPECT_TRUE(spool.list(Where::kActive).empty());
  ASSERT_TRUE(spool.remove(m.id, Where::kHold, error)) << error;
  EXPECT_FALSE(spool.find(m.id));
  EXPECT_FALSE(fs::exists(dir_ / "state" / m.id));
}

TEST_F(SpoolTest, DeliveredRecordsAreMarkedAndTheSegmentTakesMore) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error)) << error;
  ASSERT_TRUE(put(spool, "0123456789ABCDEF11", "one\r\n"));
  ASSERT_TRUE(put(spool, "0123456789ABCDEF12", "two\r\n"));
  const auto seg = segment_files(dir_).at(0);
  ASSERT_TRUE(spool.remove("0123456789ABCDEF11", Where::kActive, error)) << error;
  EXPECT_FALSE(spool.find("0123456789ABCDEF11"));
  const std::string file = slurp(seg);
  const auto records = records_in(file);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_FALSE(records[0].live);  // delivered: marked in place
  EXPECT_TRUE(records[1].live);
  ASSERT_TRUE(spool.remove("0123456789ABCDEF12", Where::kActive, error)) << error;
  EXPECT_EQ(live_records(slurp(seg)), 0u);
  // Many messages later, still the same single file: no file is created or removed per
  // message, and each record goes after the last one, never over a done one.
  for (int i = 0; i < 50; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "0123456789ABCD%04d", i);
    ASSERT_TRUE(put(spool, id, "Subject: s\r\n\r\nbody\r\n"));
    ASSERT_TRUE(spool.remove(id, Where::kActive, error)) << error;
  }
  EXPECT_EQ(segment_files(dir_), std::vector<fs::path>{seg});
  EXPECT_TRUE(fs::is_empty(dir_ / "active"));
  const std::string later = slurp(seg);
  const auto after = records_in(later);
  ASSERT_EQ(after.size(), 52u);
  for (const auto& r : after) EXPECT_FALSE(r.live);
}

// Records land on zeros written ahead of them: the file keeps its size from one append to
// the next, so that syncing a record needs no new file size in the journal.
TEST_F(SpoolTest, SegmentsGrowByZerosAheadOfTheirRecords) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error)) << error;
  ASSERT_TRUE(put(spool, "0123456789ABCDEF16", "one\r\n"));
  const auto seg = segment_files(dir_).at(0);
  EXPECT_EQ(bytes_in(seg), 1024u * 1024);
  ASSERT_TRUE(put(spool, "0123456789ABCDEF17", "two\r\n"));
  EXPECT_EQ(bytes_in(seg), 1024u * 1024);
  EXPECT_EQ(live_records(slurp(seg)), 2u);
  // A record past the zeros: the file grows to the next whole megabyte beyond it.
  ASSERT_TRUE(put(spool, "0123456789ABCDEF18", std::string(1536 * 1024, 'x')));
  EXPECT_EQ(bytes_in(seg), 2u * 1024 * 1024);
  const std::string file = slurp(seg);
  const auto records = records_in(file);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[2].payload.size() - records[2].payload.find("\n\n") - 2, 1536u * 1024);
}

// Where the zeros do not fit (a file-size limit here, a full disk in production), a record
// that does fit is still stored: the zeros are only a way to make syncs cheaper.
TEST_F(SpoolTest, ARecordIsStoredWhereTheZerosDoNotFit) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error)) << error;
  bool stored = false;
  {
    FileSizeLimit limit(64 * 1024);
    stored = put(spool, "0123456789ABCDEF19", "small\r\n");
  }
  ASSERT_TRUE(stored);
  const auto seg = segment_files(dir_).at(0);
  const std::string file = slurp(seg);
  EXPECT_LT(file.size(), 64u * 1024);  // the zeros that did fit were cut off again
  ASSERT_EQ(records_in(file).size(), 1u);
  std::string data;
  ASSERT_TRUE(spool.read("0123456789ABCDEF19", Where::kActive, &data, error)) << error;
  EXPECT_EQ(data, "small\r\n");
}

TEST_F(SpoolTest, RemoveLaterLeavesTheMarkToTheCommitThread) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error)) << error;
  ASSERT_TRUE(put(spool, "0123456789ABCDEF13", "delivered\r\n"));
  EXPECT_TRUE(spool.remove_later("0123456789ABCDEF13"));
  // The commit thread marks it before it syncs the next batch.
  ASSERT_TRUE(put(spool, "0123456789ABCDEF14", "next\r\n"));
  EXPECT_FALSE(spool.find("0123456789ABCDEF13"));
  const std::string file = slurp(segment_files(dir_).at(0));
  const auto records = records_in(file);
  std::vector<std::string_view> live;
  for (const auto& r : records) {
    if (r.live) live.push_back(r.payload);
  }
  ASSERT_EQ(live.size(), 1u);
  EXPECT_NE(live[0].find("id 0123456789ABCDEF14\n"), std::string_view::npos);
  // With nothing else to commit, the mark is written shortly all the same.
  EXPECT_TRUE(spool.remove_later("0123456789ABCDEF14"));
  for (int i = 0; i < 200 && spool.find("0123456789ABCDEF14"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(spool.find("0123456789ABCDEF14"));
  EXPECT_EQ(live_records(slurp(segment_files(dir_).at(0))), 0u);
  ASSERT_TRUE(put(spool, "0123456789ABCDEF15", "next\r\n"));
  // Only for messages in a segment: a file of its own is removed with remove().
  DeliveryState s;
  ASSERT_TRUE(spool.save_state("0123456789ABCDEF15", s, error)) << error;
  EXPECT_FALSE(spool.remove_later("0123456789ABCDEF15"));
  EXPECT_EQ(spool.find("0123456789ABCDEF15"), Where::kActive);
}

TEST_F(SpoolTest, RecoveryMovesLiveRecordsIntoActive) {
  {
    Spool spool(dir_);
    std::string error;
    ASSERT_TRUE(spool.prepare(error));
    ASSERT_TRUE(put(spool, "0123456789ABCDEF20", "first\r\n"));
    ASSERT_TRUE(put(spool, "0123456789ABCDEF21", "second\r\n"));
    ASSERT_TRUE(put(spool, "0123456789ABCDEF22", "third\r\n"));
    ASSERT_TRUE(spool.remove("0123456789ABCDEF21", Where::kActive, error));  // delivered
    std::ofstream(dir_ / "tmp" / "0123456789ABCDEF29") << "never renamed into place";
  }  // the process ends (or dies): its segment lock goes with it
  Spool again(dir_);
  std::string error;
  std::vector<std::string> warnings;
  ASSERT_TRUE(again.prepare(error, &warnings)) << error;
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  EXPECT_TRUE(fs::is_empty(dir_ / "tmp"));
  EXPECT_TRUE(fs::is_empty(dir_ / "segments"));
  EXPECT_EQ(again.list(Where::kActive),
            (std::vector<std::string>{"0123456789ABCDEF20", "0123456789ABCDEF22"}));
  std::string data;
  ASSERT_TRUE(again.read("0123456789ABCDEF22", Where::kActive, &data, error)) << error;
  EXPECT_EQ(data, "third\r\n");
}

TEST_F(SpoolTest, RecoveryIgnoresATornTailAndSkipsWhatWasMovedAlready) {
  fs::create_directories(dir_ / "segments");
  fs::create_directories(dir_ / "active");
  const std::string a_id = "0123456789ABCDEF30", b_id = "0123456789ABCDEF31";
  const std::string pa = payload_of(a_id, "aaaa"), pb = payload_of(b_id, "bbbb");
  // b was moved into active/ before the crash, but its done mark never reached the disk
  std::ofstream(dir_ / "active" / b_id, std::ios::binary) << pb;
  const std::string torn =
      encode_record_header(500, true, record_checksum({"x"})) + "truefrom-queue 1\nid 01";
  std::ofstream(dir_ / "segments" / "00000000000000A0", std::ios::binary)
      << kSegmentMagic << encode_record(pa, true) << encode_record(pb, true) << torn;
  Spool spool(dir_);
  std::string error;
  std::vector<std::string> warnings;
  ASSERT_TRUE(spool.prepare(error, &warnings)) << error;
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  EXPECT_EQ(spool.list(Where::kActive), (std::vector<std::string>{a_id, b_id}));
  EXPECT_TRUE(fs::is_empty(dir_ / "segments"));
}

TEST_F(SpoolTest, RecoveryRefusesARecordWhosePagesDidNotAllReachTheDisk) {
  // A crash during a commit's sync: the record's header made it to the disk, a page in the
  // middle of it did not and reads as the zeros written ahead. The client never got 250:
  // the record must not come back as a message (it would be delivered with zeros inside).
  const std::string body(20000, 'm');
  std::string torn_segment;
  {
    Spool spool(dir_);
    std::string error;
    ASSERT_TRUE(spool.prepare(error)) << error;
    ASSERT_TRUE(put(spool, "0123456789ABCDEF32", "whole\r\n"));
    ASSERT_TRUE(put(spool, "0123456789ABCDEF33", body));
    torn_segment = segment_files(dir_).at(0).string();
  }
  {
    std::string file = slurp(torn_segment);
    const auto at = file.find(body);
    ASSERT_NE(at, std::string::npos);
    std::fstream f(torn_segment, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(at + 8192));
    f.write(std::string(4096, '\0').data(), 4096);
  }
  Spool again(dir_);
  std::string error;
  std::vector<std::string> warnings;
  ASSERT_TRUE(again.prepare(error, &warnings)) << error;
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  EXPECT_EQ(again.list(Where::kActive), std::vector<std::string>{"0123456789ABCDEF32"});
}

TEST_F(SpoolTest, RecoveryMovesTheRecordsOfAVersionOneSegment) {
  // Left by a server from before record checksums, upgraded and restarted.
  fs::create_directories(dir_ / "segments");
  const std::string a_id = "0123456789ABCDEF34";
  const std::string pa = payload_of(a_id, "old a\n"),
                    pb = payload_of("0123456789ABCDEF35", "old b\n");
  std::ofstream(dir_ / "segments" / "00000000000000A2", std::ios::binary)
      << kSegmentMagicV1 << encode_record(pa, true, true) << encode_record(pb, false, true);
  Spool spool(dir_);
  std::string error;
  std::vector<std::string> warnings;
  ASSERT_TRUE(spool.prepare(error, &warnings)) << error;
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  EXPECT_EQ(spool.list(Where::kActive), std::vector<std::string>{a_id});  // b was delivered
  std::string data;
  ASSERT_TRUE(spool.read(a_id, Where::kActive, &data, error)) << error;
  EXPECT_EQ(data, "old a\n");
  EXPECT_TRUE(fs::is_empty(dir_ / "segments"));
}

TEST_F(SpoolTest, RecoveredFilesBelongToTheSegmentsOwner) {
  // root's `truefrom queue` recovering a service user's segment must leave files that
  // user's server can read.
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give files away";
  fs::create_directories(dir_ / "segments");
  const std::string a_id = "0123456789ABCDEF3A", pa = payload_of(a_id, "a");
  const auto seg = dir_ / "segments" / "00000000000000A1";
  std::ofstream(seg, std::ios::binary) << kSegmentMagic << encode_record(pa, true);
  ASSERT_EQ(::chown(seg.c_str(), 65534, 65534), 0);
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error)) << error;
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "active" / a_id).c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_gid, 65534u);
}

TEST_F(SpoolTest, DamagedOrForeignSegmentsAreKeptForTheAdministrator) {
  fs::create_directories(dir_ / "segments");
  const std::string a_id = "0123456789ABCDEF40", pa = payload_of(a_id, "a");
  const std::string bad = "truefrom-queue 1\nid ???\n\n";
  std::ofstream(dir_ / "segments" / "00000000000000B0", std::ios::binary)
      << kSegmentMagic << encode_record(bad, true) << encode_record(pa, true);
  std::ofstream(dir_ / "segments" / "00000000000000B1", std::ios::binary)
      << "truefrom-segment 3\nsomething newer\n";
  Spool spool(dir_);
  std::string error;
  std::vector<std::string> warnings;
  ASSERT_TRUE(spool.prepare(error, &warnings)) << error;
  ASSERT_EQ(warnings.size(), 3u);
  EXPECT_NE(warnings[0].find("00000000000000B0: the record at offset 19 is damaged"),
            std::string::npos)
      << warnings[0];
  EXPECT_NE(warnings[2].find("not a truefrom segment file"), std::string::npos) << warnings[2];
  EXPECT_EQ(spool.list(Where::kActive), std::vector<std::string>{a_id});  // the good one moved
  EXPECT_TRUE(fs::exists(dir_ / "segments" / "00000000000000B0.damaged"));
  EXPECT_TRUE(fs::exists(dir_ / "segments" / "00000000000000B1.damaged"));
}

TEST_F(SpoolTest, ARunningServersSegmentsAreNotRecoveredByOthers) {
  Spool server(dir_);
  std::string error;
  ASSERT_TRUE(server.prepare(error));
  ASSERT_TRUE(put(server, "0123456789ABCDEF50", "in flight\r\n"));
  Spool cli(dir_);
  std::vector<std::string> warnings;
  EXPECT_EQ(cli.recover(warnings), 0u);
  EXPECT_TRUE(cli.list(Where::kActive).empty());
  EXPECT_FALSE(cli.find("0123456789ABCDEF50"));
  auto seen = cli.list_segments(true);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].info.id, "0123456789ABCDEF50");
  EXPECT_TRUE(seen[0].held_by_server);
  EXPECT_EQ(seen[0].data, "in flight\r\n");
  EXPECT_TRUE(server.in_segment("0123456789ABCDEF50"));
}

// The commit thread is background work (net/background_threads.hpp): woken by a store, it
// does not preempt the thread that stored. Commit callbacks run on it.
TEST_F(SpoolTest, TheCommitThreadRunsAsBackgroundWork) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error));
  auto w = spool.write(sample("0123456789ABCDEF60"), {"Subject: s\r\n\r\nb\r\n"}, error);
  ASSERT_TRUE(w) << error;
  std::promise<bool> background;
  spool.commit(std::move(*w), [&](const std::string& e) {
    EXPECT_EQ(e, "");
    background.set_value(runtime::is_background_thread());
  });
  EXPECT_TRUE(background.get_future().get());
  EXPECT_FALSE(runtime::is_background_thread());
}

TEST_F(SpoolTest, ConcurrentCommitsAllLand) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error));
  constexpr int kThreads = 8, kEach = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        char id[32];
        std::snprintf(id, sizeof id, "T%02dM%04dXXXXXXXX", t, i);
        std::string e;
        auto w = spool.write(sample(id), {"Subject: s\r\n\r\nbody " + std::string(id) + "\r\n"}, e);
        if (!w || !spool.commit_and_wait(std::move(*w), e)) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, 0);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kEach; ++i) {
      char id[32];
      std::snprintf(id, sizeof id, "T%02dM%04dXXXXXXXX", t, i);
      std::string data;
      ASSERT_TRUE(spool.read(id, Where::kActive, &data, error)) << error;
      EXPECT_EQ(data, "Subject: s\r\n\r\nbody " + std::string(id) + "\r\n");
    }
  }
}

// Appends racing with deliveries that empty the segment (and so would reuse it): no record
// is cut off or overwritten, what stays live is recovered whole.
TEST_F(SpoolTest, AppendsRacingWithRemovalsKeepEveryRecord) {
  constexpr int kThreads = 2, kEach = 300;
  auto id_of = [](int t, int i) {
    char id[32];
    std::snprintf(id, sizeof id, "R%02dM%04dXXXXXXXX", t, i);
    return std::string(id);
  };
  auto data_of = [](const std::string& id) {
    // Large enough that a removal often lands while an append is being written.
    return "Subject: s\r\n\r\n" + std::string(100000 + static_cast<std::size_t>(id[5] - '0'), 'x') +
           " " + id + "\r\n";
  };
  {
    Spool spool(dir_);
    std::string error;
    ASSERT_TRUE(spool.prepare(error));
    std::mutex m;
    std::vector<std::string> delivered;
    std::atomic<int> writers{kThreads}, failures{0};
    std::thread remover([&] {
      for (;;) {
        std::vector<std::string> batch;
        {
          std::lock_guard lock(m);
          batch.swap(delivered);
        }
        for (const auto& id : batch) {
          std::string e;
          if (!spool.remove(id, Where::kActive, e)) ++failures;
        }
        if (batch.empty() && writers == 0) return;
        if (batch.empty()) std::this_thread::yield();
      }
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          const std::string id = id_of(t, i);
          std::string e, back;
          auto w = spool.write(sample(id), {data_of(id)}, e);
          if (!w || !spool.commit_and_wait(std::move(*w), e) ||
              !spool.read(id, Where::kActive, &back, e) || back != data_of(id)) {
            ++failures;
            continue;
          }
          if (i + 1 < kEach) {  // each writer's last message stays queued
            std::lock_guard lock(m);
            delivered.push_back(id);
          }
        }
        --writers;
      });
    }
    for (auto& th : threads) th.join();
    remover.join();
    EXPECT_EQ(failures, 0);
  }  // the server stops: its segments are recovered by the next one
  Spool again(dir_);
  std::string error;
  std::vector<std::string> warnings;
  ASSERT_TRUE(again.prepare(error, &warnings)) << error;
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  std::vector<std::string> expected;
  for (int t = 0; t < kThreads; ++t) expected.push_back(id_of(t, kEach - 1));
  EXPECT_EQ(again.list(Where::kActive), expected);
  for (const auto& id : expected) {
    std::string data;
    ASSERT_TRUE(again.read(id, Where::kActive, &data, error)) << error;
    EXPECT_EQ(data, data_of(id));
  }
}

TEST_F(SpoolTest, StoreAppendsAndCommitsOnTheCommitThread) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error));
  constexpr int kCount = 40;
  std::vector<std::string> bodies(kCount);
  std::mutex m;
  std::condition_variable cv;
  int finished = 0;
  std::vector<std::string> errors(kCount);
  for (int i = 0; i < kCount; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "0123456789ABCF%04d", i);
    bodies[i] = "Subject: " + std::to_string(i) + "\r\n\r\nbody\r\n";
    spool.store(sample(id), {"Received: x\r\n", bodies[i]}, [&, i](const std::string& e) {
      std::lock_guard lock(m);
      errors[i] = e;
      ++finished;
      cv.notify_one();
    });
  }
  std::string bad_error = "unset";
  MessageInfo bad = sample("not/an/id");
  spool.store(bad, {"x"}, [&](const std::string& e) {
    std::lock_guard lock(m);
    bad_error = e;
    ++finished;
    cv.notify_one();
  });
  {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return finished == kCount + 1; });
  }
  EXPECT_EQ(bad_error, "invalid queue id");
  for (int i = 0; i < kCount; ++i) {
    ASSERT_EQ(errors[i], "");
    char id[32];
    std::snprintf(id, sizeof id, "0123456789ABCF%04d", i);
    std::string data;
    ASSERT_TRUE(spool.read(id, Where::kActive, &data, error)) << error;
    EXPECT_EQ(data, "Received: x\r\n" + bodies[i]);
  }
}

// One store()'s completion, waited for by the test.
class Completion {
 public:
  Spool::CommitDone callback() {
    return [this](const std::string& e) {
      std::lock_guard lock(m_);
      error_ = e;
      done_ = true;
      cv_.notify_all();
    };
  }
  bool done() {
    std::lock_guard lock(m_);
    return done_;
  }
  // Whether it completed within `limit` (successfully: `error` says otherwise).
  bool wait(std::chrono::milliseconds limit, std::string& error) {
    std::unique_lock lock(m_);
    if (!cv_.wait_for(lock, limit, [this] { return done_; })) return false;
    error = error_;
    return true;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool done_ = false;
  std::string error_;
};

TEST_F(SpoolTest, AnAnnouncedMessageJoinsTheSyncInProgress) {
  Spool spool(dir_, std::chrono::seconds(30));
  std::string error;
  ASSERT_TRUE(spool.prepare(error)) << error;
  ASSERT_TRUE(put(spool, "0123456789ABCDEF8F", "the segment exists\r\n"));
  Completion a, b;
  spool.announce();
  spool.announce();
  const int syncs = g_syncs.load();
  spool.store(sample("0123456789ABCDEF90"), {"first\r\n"}, a.callback(), true);
  // The commit thread holds the first message's sync for the second one.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(a.done());
  spool.store(sample("0123456789ABCDEF91"), {"second\r\n"}, b.callback(), true);
  ASSERT_TRUE(a.wait(std::chrono::seconds(10), error));
  EXPECT_EQ(error, "");
  ASSERT_TRUE(b.wait(std::chrono::seconds(10), error));
  EXPECT_EQ(error, "");
  EXPECT_EQ(g_syncs.load() - syncs, 1);
  EXPECT_EQ(spool.find("0123456789ABCDEF90"), Where::kActive);
  EXPECT_EQ(spool.find("0123456789ABCDEF91"), Where::kActive);
}

TEST_F(SpoolTest, AWithdrawnAnnouncementEndsTheWait) {
  Spool spool(dir_, std::chrono::seconds(30));
  std::string error;
  ASSERT_TRUE(spool.prepare(error)) << error;
  Completion a, plain;
  spool.announce();
  spool.announce();
  spool.store(sample("0123456789ABCDEF92"), {"first\r\n"}, a.callback(), true);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(a.done());
  spool.withdraw();  // the other message was not stored after all (signing failed)
  ASSERT_TRUE(a.wait(std::chrono::seconds(10), error));
  EXPECT_EQ(error, "");
  // Nothing is announced any more: a message waits for no one.
  spool.store(sample("0123456789ABCDEF93"), {"second\r\n"}, plain.callback());
  ASSERT_TRUE(plain.wait(std::chrono::seconds(10), error));
  EXPECT_EQ(error, "");
}

TEST_F(SpoolTest, TheWaitForAnnouncedMessagesIsBounded) {
  Spool spool(dir_, std::chrono::milliseconds(200));
  std::string error;
  ASSERT_TRUE(spool.prepare(error)) << error;
  Completion a;
  spool.announce();
  spool.announce();  // never stored
  const auto start = std::chrono::steady_clock::now();
  spool.store(sample("0123456789ABCDEF94"), {"first\r\n"}, a.callback(), true);
  ASSERT_TRUE(a.wait(std::chrono::seconds(10), error));
  EXPECT_EQ(error, "");
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
  spool.withdraw();
}

TEST_F(SpoolTest, RotatesLargeSegmentsAndRemovesThemWhenDone) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error));
  const std::string mib(1024 * 1024, 'x');
  std::vector<std::string> ids;
  for (int i = 0; i < 70; ++i) {  // past the 64 MiB limit
    char id[32];
    std::snprintf(id, sizeof id, "0123456789ABCE%04d", i);
    ids.push_back(id);
    ASSERT_TRUE(put(spool, id, mib));
  }
  const auto segments = segment_files(dir_);
  ASSERT_EQ(segments.size(), 2u);
  EXPECT_GE(bytes_in(segments[0]), 64u * 1024 * 1024);
  for (int i = 0; i < 64; ++i) ASSERT_TRUE(spool.remove(ids[i], Where::kActive, error));
  EXPECT_EQ(segment_files(dir_), std::vector<fs::path>{segments[1]});  // the full one is gone
  std::string data;
  ASSERT_TRUE(spool.read(ids[69], Where::kActive, &data, error)) << error;
  EXPECT_EQ(data, mib);
}

TEST_F(SpoolTest, UnwritableSpoolFailsCleanly) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error));
  fs::remove(dir_ / "segments");
  std::ofstream(dir_ / "segments") << "not a directory";  // even root cannot create files in it
  EXPECT_FALSE(spool.write(sample("0123456789ABCDEF60"), {"x"}, error));
  EXPECT_NE(error.find("cannot create"), std::string::npos) << error;
  EXPECT_FALSE(spool.find("0123456789ABCDEF60"));
}

TEST_F(SpoolTest, AFailedWriteLeavesNothingBehind) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error));
  ASSERT_TRUE(put(spool, "0123456789ABCDEF70", "before\r\n"));
  const auto seg = segment_files(dir_).at(0);
  // A file-size limit makes the next append fail half-way, like a full disk.
  std::optional<Spool::Written> w;
  {
    FileSizeLimit limit(256 * 1024);
    w = spool.write(sample("0123456789ABCDEF71"), {std::string(512 * 1024, 'y')}, error);
  }
  ASSERT_FALSE(w);
  EXPECT_NE(error.find("File too large"), std::string::npos) << error;
  EXPECT_EQ(live_records(slurp(seg)), 1u);  // the partial record is cut off
  EXPECT_FALSE(spool.find("0123456789ABCDEF71"));
  ASSERT_TRUE(put(spool, "0123456789ABCDEF72", "after\r\n"));
  const std::string file = slurp(seg);
  const auto records = records_in(file);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_NE(records[1].payload.find("after\r\n"), std::string_view::npos);
}

TEST_F(SpoolTest, AFailedSyncFailsEveryRecordWrittenBeforeIt) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error)) << error;
  // Two messages appended to the same segment, committed one after the other: the first
  // commit's sync fails. The kernel reports that once, so the second commit's sync would
  // "succeed" without the pages the first lost: the second message must not count as
  // stored either.
  auto first = spool.write(sample("0123456789ABCDEF80"), {"first\r\n"}, error);
  ASSERT_TRUE(first) << error;
  auto second = spool.write(sample("0123456789ABCDEF81"), {"second\r\n"}, error);
  ASSERT_TRUE(second) << error;
  const auto failed_segment = segment_files(dir_).at(0);
  g_failing_syncs = 1;
  EXPECT_FALSE(spool.commit_and_wait(std::move(*first), error));
  EXPECT_NE(error.find("Input/output error"), std::string::npos) << error;
  EXPECT_EQ(g_failing_syncs.load(), 0);
  EXPECT_FALSE(spool.commit_and_wait(std::move(*second), error));
  EXPECT_NE(error.find("an earlier sync of it failed"), std::string::npos) << error;
  EXPECT_FALSE(spool.find("0123456789ABCDEF80"));
  EXPECT_FALSE(spool.find("0123456789ABCDEF81"));
  // Its records all done, the segment in doubt is gone; the next message gets a new one.
  ASSERT_TRUE(put(spool, "0123456789ABCDEF82", "third\r\n"));
  const auto segments = segment_files(dir_);
  ASSERT_EQ(segments.size(), 1u);
  EXPECT_NE(segments[0], failed_segment);
  EXPECT_EQ(spool.find("0123456789ABCDEF82"), Where::kActive);
}

TEST_F(SpoolTest, AMessageThatCannotMoveOutStaysInItsSegment) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error));
  ASSERT_TRUE(put(spool, "0123456789ABCDEF80", "waiting\r\n"));
  fs::remove(dir_ / "tmp");
  std::ofstream(dir_ / "tmp") << "not a directory";
  DeliveryState s;
  s.attempts = 1;
  EXPECT_FALSE(spool.save_state("0123456789ABCDEF80", s, error));
  EXPECT_NE(error.find("cannot create"), std::string::npos) << error;
  EXPECT_TRUE(spool.in_segment("0123456789ABCDEF80"));  // still queued, nothing lost
  fs::remove(dir_ / "tmp");
  fs::create_directory(dir_ / "tmp");
  ASSERT_TRUE(spool.save_state("0123456789ABCDEF80", s, error)) << error;
  EXPECT_FALSE(spool.in_segment("0123456789ABCDEF80"));
  EXPECT_EQ(spool.find("0123456789ABCDEF80"), Where::kActive);
}

TEST_F(SpoolTest, DuplicateIdIsNotOverwritten) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error));
  ASSERT_TRUE(put(spool, "0123456789ABCDEF90", "first"));
  EXPECT_FALSE(spool.write(sample("0123456789ABCDEF90"), {"second"}, error));
  EXPECT_NE(error.find("in use"), std::string::npos) << error;
  std::string data;
  ASSERT_TRUE(spool.read("0123456789ABCDEF90", Where::kActive, &data, error));
  EXPECT_EQ(data, "first");
}

TEST_F(SpoolTest, LockExcludesASecondHolder) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error));
  ASSERT_TRUE(put(spool, "0123456789ABCDEF50", "x"));
  DeliveryState s;
  ASSERT_TRUE(spool.save_state("0123456789ABCDEF50", s, error)) << error;  // into active/
  const auto path = spool.path("0123456789ABCDEF50", Where::kActive);
  {
    MessageLock first(path);
    ASSERT_TRUE(first.locked());
    MessageLock second(path);
    EXPECT_FALSE(second.locked());
    EXPECT_FALSE(second.missing());
  }
  MessageLock again(path);
  EXPECT_TRUE(again.locked());
  MessageLock gone(spool.path("0123456789ABCDEF51", Where::kActive));
  EXPECT_FALSE(gone.locked());
  EXPECT_TRUE(gone.missing());
}

}  // namespace
}  // namespace truefrom::queue
