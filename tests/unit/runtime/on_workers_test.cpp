// on_workers() and on_workers_then() (submission/runtime/on_workers.hpp): a job that throws
// does not end the process; the awaiting coroutine gets the exception, the pool keeps
// working, and on_workers_then's undo step runs.
#include "submission/runtime/on_workers.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <stdexcept>
#include <string>

namespace truefrom::runtime {
namespace {

namespace asio = boost::asio;

// Runs `body` as a coroutine on an io_context until it finishes.
template <class Body>
void run_coroutine(Body body) {
  asio::io_context io;
  std::exception_ptr escaped;
  asio::co_spawn(io, body(), [&](std::exception_ptr e) { escaped = e; });
  io.run();
  if (escaped) std::rethrow_exception(escaped);
}

TEST(OnWorkers, AThrowingJobResumesTheCoroutineWithItsExceptionAndThePoolGoesOn) {
  asio::thread_pool pool(1);
  std::string caught;
  int after = 0;
  run_coroutine([&]() -> asio::awaitable<void> {
    try {
      co_await on_workers(pool, []() -> int { throw std::runtime_error("disk on fire"); });
    } catch (const std::runtime_error& e) {
      caught = e.what();
    }
    // The pool's only thread survived the throw: the next job runs.
    after = co_await on_workers(pool, [] { return 42; });
  });
  EXPECT_EQ(caught, "disk on fire");
  EXPECT_EQ(after, 42);
  pool.join();
}

TEST(OnWorkersThen, AJobThatThrowsBeforeCompletingRunsTheUndoStepAndResumesWithTheException) {
  asio::thread_pool pool(1);
  std::string caught;
  bool undone = false;
  run_coroutine([&]() -> asio::awaitable<void> {
    bool* u = &undone;
    try {
      co_await on_workers_then<int>(
          pool, [](auto) { throw std::logic_error("bug"); }, [u] { *u = true; });
    } catch (const std::logic_error& e) {
      caught = e.what();
    }
  });
  EXPECT_EQ(caught, "bug");
  EXPECT_TRUE(undone);
  pool.join();
}

TEST(OnWorkersThen, AJobThatThrowsAfterCompletingResumesOnceWithTheResult) {
  asio::thread_pool pool(1);
  int got = 0;
  bool undone = false;
  run_coroutine([&]() -> asio::awaitable<void> {
    bool* u = &undone;
    got = co_await on_workers_then<int>(
        pool,
        [](auto complete) {
          complete(7);
          throw std::runtime_error("after the fact");
        },
        [u] { *u = true; });
  });
  EXPECT_EQ(got, 7);
  EXPECT_FALSE(undone);
  pool.join();
}

}  // namespace
}  // namespace truefrom::runtime
