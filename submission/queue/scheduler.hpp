// Delivery from the durable queue: every committed message (in a segment or in active/) is
// handed to the relay, with at most `concurrency` transactions at once over the relay
// client's pooled connections. Per recipient: 2xx finished; 5xx finished and reported to the sender
// in one DSN (RFC 3464) per attempt; 4xx or a connection failure retried with exponential
// backoff until `lifetime`, then reported as expired. Messages with a null sender never
// bounce. Delivery is at-least-once: a crash between the relay's 250 and the state update
// delivers again after the restart.
//
// Admin commands (`truefrom queue ...`) change the spool files under a per-message lock and
// then poke the scheduler through a unix socket (<queue dir>/control): "flush" (every
// deferred message due now) and "scan" (pick up released, forget deleted or held ones).
//
// Thread-safety: enqueued() and the control socket may be used from any thread; the
// scheduler's bookkeeping is under one mutex, deliveries run on their own strands.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "submission/queue/spool.hpp"
#include "submission/relay/relay_client.hpp"

namespace truefrom::queue {

struct QueueOptions {
  std::chrono::seconds retry_first{60};          ///< delay after the first failure, doubling
  std::chrono::seconds retry_max{3600};          ///< longest delay between attempts
  std::chrono::seconds lifetime{5 * 24 * 3600};  ///< then give up and report (RFC 5321 4.5.4.1)
  std::size_t concurrency = 8;                   ///< relay transactions at once
  std::string hostname;                          ///< for the DSNs' Reporting-MTA and Message-ID
};

/// A new queue id: time-ordered (so `ls` and `queue list` show arrival order) and random.
std::string new_queue_id();

class Scheduler {
 public:
  Scheduler(boost::asio::io_context& io, Spool& spool, relay::RelayClient& relay,
            boost::asio::thread_pool& workers, QueueOptions options);
  ~Scheduler();

  /// Loads what the spool holds, opens the control socket and starts delivering. On failure
  /// returns false with a message.
  bool start(std::string& error);
  /// A message just committed by a session: deliver it now. `data` (the message as
  /// spooled) spares the first attempt reading it back; empty: it is read from the spool.
  void enqueued(MessageInfo info, std::string data = {});
  /// Stops starting deliveries (those in flight are abandoned at shutdown; the spool keeps
  /// their messages).
  void stop();

 private:
  struct Entry {
    MessageInfo info;
    DeliveryState state;
    bool running = false;
    std::optional<std::string> data;  ///< for the first attempt, when given to enqueued()
  };
  struct Outcome;

  void pump();  // starts due deliveries; call with mutex_ held
  boost::asio::awaitable<void> deliver(std::string id);
  boost::asio::awaitable<void> tick_loop();
  boost::asio::awaitable<void> control_loop();
  void scan(bool initial);
  void flush();

  boost::asio::io_context& io_;
  Spool& spool_;
  relay::RelayClient& relay_;
  boost::asio::thread_pool& workers_;
  QueueOptions options_;

  std::mutex mutex_;
  std::map<std::string, Entry> entries_;
  std::set<std::pair<std::int64_t, std::string>> waiting_;  ///< (next attempt, id)
  std::set<std::string> ready_;                             ///< due, not yet started
  std::size_t running_ = 0;
  std::size_t memory_ = 0;  ///< octets of data held for first attempts
  bool stopping_ = false;

  struct Io;
  std::unique_ptr<Io> io_objects_;
};

}  // namespace truefrom::queue
