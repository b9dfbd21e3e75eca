// The worker pool's and the commit thread's scheduling policy (net/background_threads.hpp,
// mark_background_pool in net/on_workers.hpp).
#include "submission/runtime/background_threads.hpp"
#include "submission/runtime/on_workers.hpp"

#include <gtest/gtest.h>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <latch>
#include <mutex>
#include <set>
#include <thread>

namespace truefrom::runtime {
namespace {

TEST(BackgroundThreads, EveryThreadOfThePoolIsMarkedAndNoOtherThread) {
  constexpr unsigned kThreads = 3;
  boost::asio::thread_pool pool(kThreads);
  ASSERT_FALSE(is_background_thread());
  EXPECT_EQ(mark_background_pool(pool, kThreads), "");
  EXPECT_FALSE(is_background_thread()) << "the caller is not one of the pool's threads";

  // kThreads jobs that wait for each other run on kThreads different threads: all of them.
  std::latch together(kThreads);
  std::mutex m;
  std::set<std::thread::id> seen;
  unsigned marked = 0;
  for (unsigned i = 0; i < kThreads; ++i) {
    boost::asio::post(pool, [&] {
      together.arrive_and_wait();
      std::lock_guard lock(m);
      seen.insert(std::this_thread::get_id());
      if (is_background_thread()) ++marked;
    });
  }
  pool.join();
  EXPECT_EQ(seen.size(), kThreads);
  EXPECT_EQ(marked, kThreads);
}

TEST(BackgroundThreads, OnlyTheCallingThreadChanges) {
  bool marked = false;
  bool other = true;
  std::thread t([&] {
    EXPECT_EQ(mark_background_thread(), "");
    marked = is_background_thread();
  });
  t.join();
  std::thread u([&] { other = is_background_thread(); });
  u.join();
  EXPECT_TRUE(marked);
  EXPECT_FALSE(other);
  EXPECT_FALSE(is_background_thread());
}

}  // namespace
}  // namespace truefrom::runtime
