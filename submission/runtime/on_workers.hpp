// on_workers(): runs blocking work (a query, a hash, a signature, a file write) on the
// worker pool and resumes the awaiting coroutine on its own executor, so no I/O thread ever
// blocks. Written as an initiation, not a coroutine: the callable is moved into plain
// handlers (GCC 12 mishandles non-trivial captures passed into coroutines). A job that
// throws does not end the process: see log_job_failure().
// Thread-safety: as the pool and the executor.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74 awaitable.hpp uses std::exchange without it

#include "submission/runtime/background_threads.hpp"
#include "submission/runtime/log.hpp"

#include <atomic>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>

namespace truefrom::runtime {

// A job that throws is a bug or an exhausted resource, never a reply: it is logged here, the
// pool thread survives, and the awaiting coroutine resumes with the exception (use_awaitable
// rethrows it at the co_await), whose caller answers with a temporary failure.
inline void log_job_failure(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    log_error(std::string("internal error in a worker job: ") + x.what());
  } catch (...) {
    log_error("internal error in a worker job: unknown exception");
  }
}

// Runs `f` on the worker pool and resumes the awaiting coroutine on its own executor.
// Written as an initiation, not a coroutine: the callable is moved into plain handlers. The
// result type must be default-constructible (it is what accompanies an exception).
template <class F>
inline auto on_workers(boost::asio::thread_pool& pool, F&& f) {
  using R = std::invoke_result_t<std::decay_t<F>&>;
  return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                     void(std::exception_ptr, R)>(
      [&pool](auto handler, auto fn) {
        auto work = boost::asio::make_work_guard(boost::asio::get_associated_executor(handler));
        boost::asio::post(pool, [handler = std::move(handler), fn = std::move(fn),
                                 work = std::move(work)]() mutable {
          std::exception_ptr failure;
          R result{};
          try {
            result = fn();
          } catch (...) {
            failure = std::current_exception();
            log_job_failure(failure);
          }
          auto ex = work.get_executor();
          boost::asio::post(
              ex, [handler = std::move(handler), failure, result = std::move(result)]() mutable {
                std::move(handler)(failure, std::move(result));
              });
        });
      },
      boost::asio::use_awaitable, std::forward<F>(f));
}

// Like on_workers(), for work that finishes later, elsewhere: `f(complete)` runs on the
// worker pool and calls `complete(result)` exactly once, from any thread (for example from
// the spool's commit thread), which resumes the awaiting coroutine on its own executor. The
// coroutine is not woken in between. When `f` throws before calling `complete`,
// `on_failure()` runs (on the worker: undo what the caller set up for the job) and the
// coroutine resumes with the exception.
template <class R, class F, class G>
inline auto on_workers_then(boost::asio::thread_pool& pool, F&& f, G&& on_failure) {
  return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                     void(std::exception_ptr, R)>(
      [&pool](auto handler, auto fn, auto undo) {
        auto work = boost::asio::make_work_guard(boost::asio::get_associated_executor(handler));
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        auto resumed = std::make_shared<std::atomic<bool>>(false);
        boost::asio::post(
            pool, [shared, resumed, fn = std::move(fn), undo = std::move(undo), work]() mutable {
              auto resume = [shared, resumed, work](std::exception_ptr failure, R result) {
                if (resumed->exchange(true)) return;
                auto ex = work.get_executor();
                boost::asio::post(ex, [shared, failure, result = std::move(result)]() mutable {
                  std::move (*shared)(failure, std::move(result));
                });
              };
              try {
                fn([resume](R result) { resume(nullptr, std::move(result)); });
              } catch (...) {
                const std::exception_ptr failure = std::current_exception();
                log_job_failure(failure);
                // Claimed here or by `complete`, never both: once `complete` ran (or runs,
                // from the thread the job handed it to), what the job set up stays.
                if (!resumed->exchange(true)) {
                  undo();
                  auto ex = work.get_executor();
                  boost::asio::post(
                      ex, [shared, failure]() mutable { std::move (*shared)(failure, R{}); });
                }
              }
            });
      },
      boost::asio::use_awaitable, std::forward<F>(f), std::forward<G>(on_failure));
}

template <class R, class F>
inline auto on_workers_then(boost::asio::thread_pool& pool, F&& f) {
  return on_workers_then<R>(pool, std::forward<F>(f), [] {});
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
