// Group commit: one thread that makes appended records durable, one fdatasync per segment
// for every record written while the previous sync ran, and that writes the done marks of
// delivered records before its next sync (which carries them to the disk).
//
// A batch waits up to `gather_delay` for messages announced (announce()) but not stored yet,
// so that under load one sync covers several messages instead of each paying its own.
// The thread runs as background work (runtime/background_threads.hpp: SCHED_BATCH), so
// waking it does not preempt the I/O thread.
//
// Thread-safety: every member function may be called from any thread. Callbacks run on the
// commit thread (or, once stopping, on the caller's).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "submission/queue/segment_log.hpp"

namespace truefrom::queue {

class GroupCommit {
 public:
  /// Runs with an empty error once the record is durable, else with why it is not (then
  /// the message is gone from the spool).
  using Done = std::function<void(const std::string& error)>;

  GroupCommit(SegmentLog& log, std::chrono::microseconds gather_delay);
  /// Stops the thread after it has committed what is pending; what is queued when it never
  /// started fails with "the queue is shutting down".
  ~GroupCommit();
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  /// Starts the commit thread (once; later calls do nothing).
  void start();
  /// Queues an appended record for the next sync.
  void commit(SegmentLog::Written written, Done done);
  /// Queues a message to be appended by the commit thread, then synced. `parts` must stay
  /// valid until `done` has run. `announced`: the store() an announce() said was coming.
  void store(MessageInfo info, std::vector<std::string_view> parts, Done done, bool announced);
  /// A store(..., true) is coming soon: a batch in progress waits a little for it.
  void announce();
  /// An announced store() will not come after all (a signing tempfail).
  void withdraw();
  /// Queues a done mark for `id`'s record, written before the next sync (or after
  /// kMarkDelay when none comes). False when stopping (then the caller marks it itself).
  bool finish_later(const std::string& id);

  /// Done marks wait at most this long for a commit to travel with.
  static constexpr std::chrono::milliseconds kMarkDelay{100};

 private:
  struct Pending {
    std::optional<SegmentLog::Written> written;  // empty: store()'s, appended by the thread
    MessageInfo info;
    std::vector<std::string_view> parts;
    Done done;
  };
  void run();
  // Appends store()'s messages of `batch` from `first` on (their errors go to `errors`).
  void append_stored(std::vector<Pending>& batch, std::size_t first,
                     std::vector<std::string>& errors);

  SegmentLog& log_;
  const std::chrono::microseconds gather_delay_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Pending> pending_;
  std::vector<std::string> done_;  // finish_later()'s ids
  std::size_t coming_ = 0;         // announced, not stored or withdrawn yet
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace truefrom::queue
