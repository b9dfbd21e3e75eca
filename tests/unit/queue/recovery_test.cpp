// Recovery of the segments no running server holds, and listing them for the CLI.
#include "spool_test_support.hpp"

namespace truefrom::queue {
namespace {

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

}  // namespace
}  // namespace truefrom::queue
