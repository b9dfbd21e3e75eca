// The durable queue on disk, as the server and the admin's commands see it.
//
//   <dir>/segments/<n>  accepted messages, appended one after another (the fast path)
//   <dir>/tmp/<id>      a message file being written (removed at start: never committed)
//   <dir>/active/<id>   one message in a file of its own; the scheduler delivers it
//   <dir>/hold/<id>     the same, held by the admin (`truefrom queue hold`)
//   <dir>/state/<id>    attempts, next attempt, last error, finished recipients
//
// Spool is a facade over the parts that do the work: spool_format.hpp (the pure on-disk
// format), segment_log.hpp (appending to segment files, done marks, rotation),
// group_commit.hpp (the thread that batches syncs), message_files.hpp (files in active/ and
// hold/, state files, MessageLock) and recovery.hpp (segments of a stopped or crashed
// server). A new message is appended to the current segment and the client hears 250 only
// after an fdatasync covered it; a delivered one is marked done in place; one that must wait
// (a deferral, a hold) first moves into a file of its own (it "spills"), which the admin's
// commands work on. Delivery is at-least-once: a crash may deliver again a message whose
// done mark was not yet synced, or one that was written but whose client never heard 250.
//
// Thread-safety: every member function may be called from any thread; functions on the same
// id must not run concurrently (the scheduler delivers one id at a time; the CLI works under
// MessageLock). Standard library and POSIX only.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "submission/queue/message_files.hpp"
#include "submission/queue/recovery.hpp"
#include "submission/queue/segment_log.hpp"
#include "submission/queue/spool_format.hpp"

namespace truefrom::queue {

class GroupCommit;

class Spool {
 public:
  /// A message appended to a segment and not yet committed.
  using Written = SegmentLog::Written;
  using SegmentMessage = queue::SegmentMessage;
  /// Runs on the commit thread with an empty error on success; on failure the message is
  /// gone from the spool.
  using CommitDone = std::function<void(const std::string& error)>;

  /// A batch's sync waits at most `gather_delay` for announced messages (announce()).
  static constexpr std::chrono::microseconds kGatherDelay{2000};
  explicit Spool(std::filesystem::path dir, std::chrono::microseconds gather_delay = kGatherDelay);
  /// Commits what is pending, stops the commit thread, removes spent segments.
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Starting.

  const std::filesystem::path& dir() const { return dir_; }
  /// Whether the queue directory has been created (the CLI's check instead of prepare()).
  bool exists() const;
  /// The server, once at start: creates the directories (mode 0700; synced), removes
  /// leftovers in tmp/, recovers the segments no running server holds and starts the
  /// commit thread. Problems that do not stop the server go to `warnings`.
  bool prepare(std::string& error, std::vector<std::string>* warnings = nullptr);
  /// The server at start (via prepare()) and the CLI (`queue recover`): moves the live
  /// records of every segment no process holds into files in active/ (synced, with their
  /// directory) and then removes the segment. Returns how many messages moved.
  std::size_t recover(std::vector<std::string>& warnings) const;

  // A new message (sessions: store(); the scheduler's DSNs: write() + commit_and_wait()).

  /// Appends head + parts to the current segment (blocking, not synced). On failure nothing
  /// is left.
  std::optional<Written> write(const MessageInfo& info, const std::vector<std::string_view>& parts,
                               std::string& error);
  /// Makes a written message durable (the commit thread's next fdatasync of its segment,
  /// shared with concurrent commits) and then visible to find() and read(); `done` runs on
  /// the commit thread.
  void commit(Written written, CommitDone done);
  /// Blocking form of commit() (on a worker, never the I/O thread).
  bool commit_and_wait(Written written, std::string& error);
  /// write() and commit() in one, both on the commit thread (the caller's thread never
  /// blocks): what a session calls at end of DATA. `parts` must stay valid until `done` has
  /// run. `announced`: this store() is the one an announce() said was coming.
  void store(MessageInfo info, std::vector<std::string_view> parts, CommitDone done,
             bool announced = false);
  /// A session past its end of DATA, before signing: a store() is coming soon, and a commit
  /// in progress waits a little (at most the gather delay) for it, so that one sync covers
  /// both. Nothing on disk. Each announce() is followed by one store(..., true) or withdraw().
  void announce();
  void withdraw();

  // Finding and reading (the scheduler, the CLI).

  /// Ids of the message files in active/ or hold/, in arrival (name) order (not those in
  /// segments: see in_segment() and list_segments()).
  std::vector<std::string> list(Where where) const;
  std::filesystem::path path(const std::string& id, Where where) const;
  /// Where the message is; a committed message in this process's segments is kActive.
  std::optional<Where> find(const std::string& id) const;
  /// Whether the message is a committed record in one of this process's segments (it has
  /// no file, so no MessageLock, and no state file).
  bool in_segment(const std::string& id) const;
  /// The live records of every segment on disk, as this or another process wrote them
  /// (for the CLI), except those moved into files of their own.
  std::vector<SegmentMessage> list_segments(bool with_data = false) const;
  /// Reads the head (and the data when `data` is not null). On failure `*corrupt` (when
  /// given) tells a damaged file from a passing read error (EMFILE, EIO...).
  std::optional<MessageInfo> read(const std::string& id, Where where, std::string* data,
                                  std::string& error, bool* corrupt = nullptr) const;
  /// The state file; a missing one is a fresh state.
  DeliveryState load_state(const std::string& id) const;

  // What happens to a message after an attempt or an admin's command.

  /// The scheduler, after an attempt that leaves recipients to retry: writes the state file
  /// (renamed into place, not synced); a message still in a segment first spills into
  /// active/ (its file synced with the directory, then its record marked done).
  bool save_state(const std::string& id, const DeliveryState& state, std::string& error);
  /// The scheduler, for a delivered message still in a segment, on the I/O thread: its
  /// record is marked done by the commit thread before its next sync (or within
  /// GroupCommit::kMarkDelay), without blocking the caller. Returns false, doing nothing,
  /// for a message that is not in a segment (use remove()).
  bool remove_later(const std::string& id);
  /// The scheduler (delivered) and the CLI (`queue delete`), blocking: removes the message
  /// file and its state file (not synced: a crash may deliver it again), or marks its
  /// segment record done (synced by the next commit).
  bool remove(const std::string& id, Where where, std::string& error);
  /// The CLI (`queue hold/release`) and the scheduler (a damaged file into hold/): renames
  /// between active/ and hold/ and syncs the directory; a message in a segment spills into
  /// a file in `to`.
  bool move(const std::string& id, Where from, Where to, std::string& error);

 private:
  // Copies a committed segment record into a file in `to` (synced, with the directory),
  // then marks the record done.
  bool spill(const std::string& id, Where to, std::string& error);
  void finish(const std::string& id);  // marks a segment record done, sweeps

  std::filesystem::path dir_;
  SegmentLog segments_;
  std::unique_ptr<GroupCommit> committer_;  // declared after segments_: stops first
};

}  // namespace truefrom::queue
