// on_workers(): runs blocking work (a query, a hash, a signature, a file write) on the
// worker pool and resumes the awaiting coroutine on its own executor, so no I/O thread ever
// blocks. Written as an initiation, not a coroutine: the callable is moved into plain
// handlers (GCC 12 mishandles non-trivial captures passed into coroutines).
// Thread-safety: as the pool and the executor.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74 awaitable.hpp uses std::exchange without it

#include "submission/runtime/background_threads.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>

namespace truefrom::runtime {

// Runs `f` on the worker pool and resumes the awaiting coroutine on its own executor.
// Written as an initiation, not a coroutine: the callable is moved into plain handlers.
template <class F>
inline auto on_workers(boost::asio::thread_pool& pool, F&& f) {
  using R = std::invoke_result_t<std::decay_t<F>&>;
  return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void(R)>(
      [&pool](auto handler, auto fn) {
        auto work = boost::asio::make_work_guard(boost::asio::get_associated_executor(handler));
        boost::asio::post(pool, [handler = std::move(handler), fn = std::move(fn),
                                 work = std::move(work)]() mutable {
          R result = fn();
          auto ex = work.get_executor();
          boost::asio::post(ex,
                            [handler = std::move(handler), result = std::move(result)]() mutable {
                              std::move(handler)(std::move(result));
                            });
        });
      },
      boost::asio::use_awaitable, std::forward<F>(f));
}

// Like on_workers(), for work that finishes later, elsewhere: `f(complete)` runs on the
// worker pool and calls `complete(result)` exactly once, from any thread (for example from
// the spool's commit thread), which resumes the awaiting coroutine on its own executor. The
// coroutine is not woken in between.
template <class R, class F>
inline auto on_workers_then(boost::asio::thread_pool& pool, F&& f) {
  return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void(R)>(
      [&pool](auto handler, auto fn) {
        auto work = boost::asio::make_work_guard(boost::asio::get_associated_executor(handler));
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        boost::asio::post(pool, [shared, fn = std::move(fn), work]() mutable {
          fn([shared, work](R result) {
            auto ex = work.get_executor();
            boost::asio::post(ex, [shared, result = std::move(result)]() mutable {
              std::move (*shared)(std::move(result));
            });
          });
        });
      },
      boost::asio::use_awaitable, std::forward<F>(f));
}

// Marks every thread of `pool` (which must have exactly `threads` threads and nothing queued)
// as background work (background_threads.hpp); blocks until all of them have run the change.
// Returns "" or why the system refused.
inline std::string mark_background_pool(boost::asio::thread_pool& pool, unsigned threads) {
  // Every job waits until all have marked their thread, so each of the pool's threads runs
  // exactly one. The jobs share the state: the last one may still be leaving the latch when
  // wait() returns here.
  struct State {
    explicit State(unsigned n) : marked(n) {}
    std::latch marked;
    std::mutex m;
    std::string error;
  };
  auto state = std::make_shared<State>(threads);
  for (unsigned i = 0; i < threads; ++i) {
    boost::asio::post(pool, [state] {
      std::string e = mark_background_thread();
      if (!e.empty()) {
        std::lock_guard lock(state->m);
        state->error = std::move(e);
      }
      state->marked.arrive_and_wait();
    });
  }
  state->marked.wait();
  std::lock_guard lock(state->m);
  return state->error;
}

}  // namespace truefrom::runtime
