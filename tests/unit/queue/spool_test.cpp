// The Spool facade: write, commit, read, move, remove; locks and duplicates.
#include "spool_test_support.hpp"

namespace truefrom::queue {
namespace {

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
