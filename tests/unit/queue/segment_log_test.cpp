// Segment files: appends, zeros ahead, done marks, rotation, failed writes and syncs.
#include "spool_test_support.hpp"

namespace truefrom::queue {
namespace {

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

}  // namespace
}  // namespace truefrom::queue
