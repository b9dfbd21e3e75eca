// The commit thread: batched syncs, stores, announcements, done marks written later.
#include "spool_test_support.hpp"

#include "submission/runtime/background_threads.hpp"

namespace truefrom::queue {
namespace {

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

}  // namespace
}  // namespace truefrom::queue
