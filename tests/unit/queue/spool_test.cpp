#include "submission/queue/spool.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

namespace truefrom::queue {
namespace {

namespace fs = std::filesystem;

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

TEST_F(SpoolTest, WriteCommitReadRemove) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error)) << error;
  EXPECT_EQ(fs::status(dir_ / "active").permissions() & fs::perms::all, fs::perms::owner_all);
  const MessageInfo m = sample("0123456789ABCDEF10");
  auto w = spool.write(m, {"DKIM-Signature: x\r\n", "Received: y\r\n", "Subject: z\r\n\r\nhi\r\n"},
                       error);
  ASSERT_TRUE(w) << error;
  EXPECT_TRUE(fs::exists(dir_ / "tmp" / m.id));
  EXPECT_FALSE(fs::exists(dir_ / "active" / m.id));  // not visible before the commit
  ASSERT_TRUE(spool.commit_and_wait(std::move(*w), error)) << error;
  EXPECT_FALSE(fs::exists(dir_ / "tmp" / m.id));
  EXPECT_EQ(spool.list(Where::kActive), std::vector<std::string>{m.id});
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "active" / m.id).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  std::string data;
  const auto back = spool.read(m.id, Where::kActive, &data, error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(data, "DKIM-Signature: x\r\nReceived: y\r\nSubject: z\r\n\r\nhi\r\n");
  EXPECT_EQ(back->size, data.size());

  DeliveryState s;
  s.attempts = 1;
  s.finished = {"bob@dest.test"};
  ASSERT_TRUE(spool.save_state(m.id, s, error)) << error;
  EXPECT_EQ(spool.load_state(m.id).finished, s.finished);

  ASSERT_TRUE(spool.move(m.id, Where::kActive, Where::kHold, error)) << error;
  EXPECT_EQ(spool.find(m.id), Where::kHold);
  EXPECT_TRUE(spool.list(Where::kActive).empty());
  ASSERT_TRUE(spool.remove(m.id, Where::kHold, error)) << error;
  EXPECT_FALSE(spool.find(m.id));
  EXPECT_FALSE(fs::exists(dir_ / "state" / m.id));
}

TEST_F(SpoolTest, PrepareRemovesUncommittedLeftovers) {
  {
    Spool spool(dir_);
    std::string error;
    ASSERT_TRUE(spool.prepare(error));
    auto w = spool.write(sample("0123456789ABCDEF20"), {"x\r\n"}, error);
    ASSERT_TRUE(w);
    ::close(w->fd);  // "crash" before the commit
  }
  Spool again(dir_);
  std::string error;
  ASSERT_TRUE(again.prepare(error));
  EXPECT_TRUE(fs::is_empty(dir_ / "tmp"));
  EXPECT_TRUE(again.list(Where::kActive).empty());
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
        auto w = spool.write(sample(id), {"Subject: s\r\n\r\nbody\r\n"}, e);
        if (!w || !spool.commit_and_wait(std::move(*w), e)) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(spool.list(Where::kActive).size(), static_cast<std::size_t>(kThreads * kEach));
  EXPECT_TRUE(fs::is_empty(dir_ / "tmp"));
}

TEST_F(SpoolTest, UnwritableSpoolFailsCleanly) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error));
  fs::remove(dir_ / "tmp");
  std::ofstream(dir_ / "tmp") << "not a directory";  // even root cannot create files in it
  EXPECT_FALSE(spool.write(sample("0123456789ABCDEF30"), {"x"}, error));
  EXPECT_NE(error.find("cannot create"), std::string::npos) << error;
  EXPECT_TRUE(spool.list(Where::kActive).empty());
}

TEST_F(SpoolTest, DuplicateIdIsNotOverwritten) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error));
  auto a = spool.write(sample("0123456789ABCDEF40"), {"first"}, error);
  ASSERT_TRUE(a && spool.commit_and_wait(std::move(*a), error)) << error;
  auto b = spool.write(sample("0123456789ABCDEF40"), {"second"}, error);
  ASSERT_TRUE(b) << error;
  EXPECT_FALSE(spool.commit_and_wait(std::move(*b), error));
  std::string data;
  ASSERT_TRUE(spool.read("0123456789ABCDEF40", Where::kActive, &data, error));
  EXPECT_EQ(data, "first");
}

TEST_F(SpoolTest, LockExcludesASecondHolder) {
  Spool spool(dir_);
  std::string error;
  ASSERT_TRUE(spool.prepare(error));
  auto w = spool.write(sample("0123456789ABCDEF50"), {"x"}, error);
  ASSERT_TRUE(w && spool.commit_and_wait(std::move(*w), error));
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
