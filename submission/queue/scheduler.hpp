// Delivery from the durable queue: every committed message (in a segment or in active/) is
// handed to the relay, with at most `concurrency` transactions at once over the relay
// client's pooled connections. Per recipient: 2xx finished; 5xx finished and reported to the sender
// in one DSN (RFC 3464) per attempt; 4xx or a connection failure retried with exponential
// backoff and ±10% jitter (retry_policy.hpp) until `lifetime`, then reported as expired.
// Messages with a null sender never bounce. Delivery is at-least-once: a crash between the
// relay's 250 and the state update delivers again after the restart.
//
// Each attempt is a coroutine whose result, or whatever it throws, reaches one completion
// handler (settle()): the message's running state and the running count are released
// whatever happens; an attempt that throws is logged and retried like a 4xx.
//
// Messages that become due together (after an outage, or a flush) start at most
// `concurrency` at a time, each as a slot frees; their backoff delays are jittered, so
// those that fail again spread over the retry window instead of returning together.
//
// A message deferred because no relay could be reached (or the one used stopped answering)
// is retried as soon as a relay answers again (RelayClient::set_on_relay_up), not after its
// own backoff; one whose attempt was still running then is retried when that attempt ends.
//
// Admin commands (`truefrom queue ...`) change the spool files under a per-message lock and
// then poke the scheduler through a unix socket (<queue dir>/control): "flush" (every
// deferred message due now, and relay connections that waited more than kStuckAfter for the
// relay cut, their messages retried at once; the answer is "ok" or "ok cut N") and "scan"
// (pick up released, forget deleted or held ones).
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
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>

#include "submission/queue/retry_policy.hpp"
#include "submission/queue/spool.hpp"
#include "submission/relay/relay_client.hpp"

namespace truefrom::queue {

struct QueueOptions {
  std::chrono::seconds retry_first{60};          ///< delay after the first failure, doubling
  std::chrono::seconds retry_max{3600};          ///< longest delay between attempts (±10%)
  std::chrono::seconds lifetime{5 * 24 * 3600};  ///< then give up and report (RFC 5321 4.5.4.1)
  std::size_t concurrency = 8;                   ///< relay transactions at once
  /// `queue flush` cuts relay connections that have waited this long for the relay.
  std::chrono::seconds stuck_after{5};
  std::string hostname;  ///< for the DSNs' Reporting-MTA and Message-ID
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

  /// Where an attempt is when the attempt hook runs.
  enum class AttemptStage {
    kRelay,   ///< on the attempt's strand, just before the relay transaction
    kRecord,  ///< on a worker, just before the outcome goes to the spool's files (a
              ///< deferral's state, a removal; not a done mark in a segment)
  };
  /// For tests (failure injection): runs at those points of every attempt; what it throws,
  /// the attempt throws. Set it before start().
  using AttemptHook = std::function<void(const MessageInfo&, AttemptStage)>;
  void set_attempt_hook(AttemptHook hook) { attempt_hook_ = std::move(hook); }

  /// Whose messages are held instead of delivered (a suspended account's): asked before
  /// each attempt with the message's user; `may_block` false on the I/O thread (answer
  /// from memory only). A held message moves to hold/ for the admin (`truefrom queue
  /// release|delete`). Set it before start().
  using HeldUser = std::function<bool(const std::string& user, bool may_block)>;
  void set_held_user(HeldUser held) { held_user_ = std::move(held); }

 private:
  struct Entry {
    MessageInfo info;
    DeliveryState state;
    bool running = false;
    std::optional<std::string> data;       ///< for the first attempt, when given to enqueued()
    std::uint64_t attempt_flushes = 0;     ///< flushes_ when the running attempt began
    std::uint64_t attempt_up_changes = 0;  ///< the relay's up_changes() then
  };
  struct Outcome;
  /// How an attempt ended, for settle().
  struct Finished {
    enum class Kind {
      kDone,   ///< every recipient finished: forget the message
      kGone,   ///< deleted, held or damaged meanwhile: forget it
      kRetry,  ///< try again at `next_attempt`
    } kind = Kind::kRetry;
    std::optional<DeliveryState> state;  ///< kRetry: the new state (else the entry's is kept)
    std::int64_t next_attempt = 0;
    bool unreachable = false;  ///< kRetry because no relay answered (RelayClient's 451 4.4.1)
  };

  void pump();  // starts due deliveries; call with mutex_ held
  boost::asio::awaitable<Finished> deliver(std::string id);
  // The one place an attempt's bookkeeping happens, whatever it returned or threw.
  void settle(const std::string& id, std::exception_ptr failure, Finished finished);
  // The delay after the attempts so far, or nullopt (give up); call with mutex_ held.
  std::optional<std::chrono::seconds> retry_after(unsigned attempts, std::int64_t arrival);
  boost::asio::awaitable<void> tick_loop();
  boost::asio::awaitable<void> control_loop();
  void scan(bool initial);
  std::size_t flush();
  void relay_up();  // a relay answers again: what waited for one is due now

  boost::asio::io_context& io_;
  Spool& spool_;
  relay::RelayClient& relay_;
  boost::asio::thread_pool& workers_;
  QueueOptions options_;
  RetryPolicy retry_;
  AttemptHook attempt_hook_;
  HeldUser held_user_;

  std::mutex mutex_;
  std::mt19937_64 random_;  ///< the retries' jitter
  std::map<std::string, Entry> entries_;
  std::set<std::pair<std::int64_t, std::string>> waiting_;  ///< (next attempt, id)
  std::set<std::string> ready_;                             ///< due, not yet started
  std::set<std::string> unreachable_;                       ///< waiting because no relay answered
  std::uint64_t flushes_ = 0;
  std::size_t running_ = 0;
  std::size_t memory_ = 0;  ///< octets of data held for first attempts
  bool stopping_ = false;

  struct Io;
  std::unique_ptr<Io> io_objects_;
};

}  // namespace truefrom::queue
