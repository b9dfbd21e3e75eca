// The durable queue on disk.
//
//   <dir>/segments/<n>  accepted messages, appended one after another (the fast path)
//   <dir>/tmp/<id>      a message file being written (removed at start: never committed)
//   <dir>/active/<id>   one message in a file of its own; the scheduler delivers it
//   <dir>/hold/<id>     the same, held by the admin (`truefrom queue hold`)
//   <dir>/state/<id>    attempts, next attempt, last error, finished recipients
//
// A new message is appended to the current segment file and the client hears 250 only after
// an fdatasync of that file covered it. commit() batches those syncs (group commit): one
// thread syncs once for every message written while the previous sync ran, and no file is
// created or removed per message. Appends are serialized, so an acknowledged record is never
// behind a torn one: after a crash only the unacknowledged tail can be damaged.
//
// A record is marked done in place (one byte, synced by the next commit) when its message
// is delivered; a message that must wait (a deferral, a hold) first moves into a file of its
// own in active/ or hold/ with a state file: the slow path, which the admin's commands work
// on. Records are only ever added at a segment's end, over zeros written ahead of them a
// megabyte at a time (so that a commit's sync writes data, not a new file size); a segment
// takes records until it reaches 64 MiB and is removed once all of them are done. At
// start, prepare() moves the live records of the segments no running server holds (each
// server holds an flock on its segments) into active/; the CLI does the same for a stopped
// server. Delivery is at-least-once: a crash may deliver again a message whose done mark was
// not yet synced, or one that was written but whose client never heard 250.
//
// Thread-safety: every member function may be called from any thread; functions on the same
// id must not run concurrently (the scheduler delivers one id at a time; the CLI works under
// MessageLock). Standard library and POSIX only.
#pragma once

#include <sys/uio.h>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace truefrom::queue {

/// The envelope and origin of a queued message (the spool file's head).
struct MessageInfo {
  std::string id;                       ///< [0-9A-Za-z] 8..32 characters
  std::string mail_from;                ///< without brackets; empty for <>
  std::vector<std::string> recipients;  ///< without brackets, as accepted
  bool eight_bit = false;               ///< BODY=8BITMIME
  bool smtputf8 = false;                ///< SMTPUTF8 (RFC 6531)
  std::string user;                     ///< the authenticated login; empty for a DSN
  std::int64_t arrival = 0;             ///< unix seconds
  std::uint64_t size = 0;               ///< octets of message data after the head
};

/// What the scheduler knows about a message beyond its file.
struct DeliveryState {
  unsigned attempts = 0;
  std::int64_t next_attempt = 0;  ///< unix seconds; 0: as soon as possible
  std::string last_error;         ///< one line; empty before the first failure
  /// Recipients that need no further attempt (delivered, or refused and reported).
  std::vector<std::string> finished;
};

enum class Where { kActive, kHold };

/// Checks an id as found on disk or typed by an admin.
bool valid_id(std::string_view id);

/// The spool file's head, followed by the message. Exposed for tests and the fuzz target.
std::string encode_head(const MessageInfo& info);
/// Parses a head at the start of `file`; sets `data_offset` to where the message begins.
/// Refuses anything malformed, and a file whose length differs from what the head says.
std::optional<MessageInfo> decode_head(std::string_view file, std::size_t& data_offset,
                                       std::string& error);
std::string encode_state(const DeliveryState& state);

/// A segment file starts with this line; then records, each a fixed-size header
/// ("rec L 000000001234 0123456789abcdef\n": L live or D done, the payload's length, the
/// XXH3-64 of the payload in hex) and a payload (a head and the message, exactly what a
/// message file in active/ holds). The checksum tells a record that reached the disk whole
/// from one torn by a crash: segments grow by zeros written ahead of their records, so the
/// pages of a record that a sync did not finish read as zeros, not as the file's end.
inline constexpr std::string_view kSegmentMagic = "truefrom-segment 2\n";
inline constexpr std::size_t kRecordHeader = 36;
/// Version 1 (until 2026-12): 19-octet headers without a checksum. Still read (recovery
/// after an upgrade), never written.
inline constexpr std::string_view kSegmentMagicV1 = "truefrom-segment 1\n";
inline constexpr std::size_t kRecordHeaderV1 = 19;
/// The checksum of a payload given in parts.
std::uint64_t record_checksum(const std::vector<std::string_view>& parts);
std::string encode_record_header(std::size_t payload_size, bool live, std::uint64_t checksum);
/// Header and payload (for tests and the fuzz target; `v1`: the version 1 form).
std::string encode_record(std::string_view payload, bool live, bool v1 = false);
struct SegmentRecord {
  bool live = false;
  std::size_t offset = 0;              ///< of the record header in the file
  std::size_t header = kRecordHeader;  ///< kRecordHeaderV1 in a version 1 segment
  std::string_view payload;
};
/// Walks a segment file's records. Stops at the first record that is incomplete, malformed
/// or not matching its checksum and sets `end` to its offset (a crash leaves an
/// unacknowledged torn tail); returns nullopt when the file starts with neither magic line.
std::optional<std::vector<SegmentRecord>> parse_segment(std::string_view file, std::size_t& end);
std::optional<DeliveryState> decode_state(std::string_view text, std::string& error);

class Spool {
 public:
  struct Segment;
  /// A message appended to a segment and not yet committed.
  struct Written {
    std::shared_ptr<Segment> segment;
    std::uint64_t offset = 0;  ///< of the record
    std::uint64_t length = 0;  ///< header and payload
    std::string id;
  };
  using CommitDone = std::function<void(const std::string& error)>;

  /// A batch's sync waits at most `gather_delay` for announced messages (announce()).
  static constexpr std::chrono::microseconds kGatherDelay{2000};
  explicit Spool(std::filesystem::path dir, std::chrono::microseconds gather_delay = kGatherDelay);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  const std::filesystem::path& dir() const { return dir_; }

  /// Creates the directories (mode 0700), removes leftovers in tmp/ and recovers the
  /// segments no running server holds. Call before anything else, in the server; the CLI
  /// calls exists() instead. Problems that do not stop the server go to `warnings`.
  bool prepare(std::string& error, std::vector<std::string>* warnings = nullptr);
  bool exists() const;
  /// Moves the live records of every segment that no process holds into active/ and
  /// removes the segment. Returns how many messages moved; problems go to `warnings`.
  std::size_t recover(std::vector<std::string>& warnings) const;

  /// Appends head + parts to the current segment (blocking). On failure nothing is left.
  std::optional<Written> write(const MessageInfo& info, const std::vector<std::string_view>& parts,
                               std::string& error);
  /// Makes a written message durable and visible to find() and read(), batched with
  /// concurrent commits.
  /// `done` runs on the spool's commit thread with an empty error on success; on failure the
  /// message is gone from the spool.
  void commit(Written written, CommitDone done);
  /// Blocking form of commit().
  bool commit_and_wait(Written written, std::string& error);
  /// write() and commit() in one, both on the commit thread (the caller's thread never
  /// blocks). `parts` must stay valid until `done` has run. `announced`: this store() is
  /// the one an announce() said was coming.
  void store(MessageInfo info, std::vector<std::string_view> parts, CommitDone done,
             bool announced = false);
  /// Says that a store() is coming soon (a message past its end of DATA, being signed):
  /// a commit in progress waits a little (at most the gather delay) for it, so that one
  /// sync covers both. Each announce() is followed by one store(..., true) or withdraw().
  void announce();
  void withdraw();

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
  /// (for the CLI). `held_by_server` tells whether a running server holds the segment.
  struct SegmentMessage {
    MessageInfo info;
    bool held_by_server = false;
    std::string data;
  };
  std::vector<SegmentMessage> list_segments(bool with_data = false) const;
  /// Reads the head (and the data when `data` is not null). On failure `*corrupt` (when
  /// given) tells a damaged file from a passing read error (EMFILE, EIO...).
  std::optional<MessageInfo> read(const std::string& id, Where where, std::string* data,
                                  std::string& error, bool* corrupt = nullptr) const;
  /// The state file; a missing one is a fresh state.
  DeliveryState load_state(const std::string& id) const;
  /// Writes the state file; a message in a segment first moves into active/.
  bool save_state(const std::string& id, const DeliveryState& state, std::string& error);
  /// Removes the message and its state (after delivery, or by the admin).
  bool remove(const std::string& id, Where where, std::string& error);
  /// For a delivered message in a segment: its record is marked done by the commit thread
  /// (without blocking the caller) and false is returned for any other message (use
  /// remove()).
  bool remove_later(const std::string& id);
  /// Moves between active/ and hold/ (a message in a segment: into a file in `to`).
  bool move(const std::string& id, Where from, Where to, std::string& error);

 private:
  struct Location {
    std::shared_ptr<Segment> segment;
    std::uint64_t offset = 0, length = 0;
    bool committed = false;
  };
  void commit_loop();
  std::shared_ptr<Segment> open_segment(std::string& error);  // call with append_mutex_
  // These two with segments_mutex_ held. retire(): no more records go to the segment; it is
  // removed once none is live. release(): one of its records is done. What they decide on
  // the files (a segment removed) tidy() does, without segments_mutex_: no file system work
  // is done under it.
  void retire(const std::shared_ptr<Segment>& segment);
  void release(const std::shared_ptr<Segment>& segment);
  void tidy();
  std::optional<Written> append(const std::string& id, std::vector<iovec>& iov,
                                std::uint64_t length, std::string& error);
  void drop(const std::string& id);    // marks the record done and drops it from the index
  void forget(const std::string& id);  // drop(), then tidy()
  bool spill(const std::string& id, Where to, std::string& error);
  std::optional<Location> locate(const std::string& id) const;

  std::filesystem::path dir_;
  std::chrono::microseconds gather_delay_;
  std::mutex append_mutex_;            // one append at a time (taken before segments_mutex_)
  mutable std::mutex segments_mutex_;  // current_, index_, doomed_, every Segment's size, live
  // The segment taking new records; every other one is retired.
  std::shared_ptr<Segment> current_;
  std::unordered_map<std::string, Location> index_;
  std::vector<std::shared_ptr<Segment>> doomed_;  // retired, none live: to be removed
  std::uint64_t next_segment_ = 0;

  std::mutex mutex_;
  std::condition_variable wake_;
  struct Pending {
    std::optional<Written> written;  // empty: store()'s, written by the commit thread
    MessageInfo info;
    std::vector<std::string_view> parts;
    CommitDone done;
  };
  std::vector<Pending> pending_;
  std::vector<std::string> done_;  // remove_later()'s ids
  std::size_t coming_ = 0;         // announced, not stored or withdrawn yet
  bool stopping_ = false;
  std::thread committer_;
};

/// An exclusive advisory lock on one queued message, held while it is being delivered or
/// changed by the CLI, so the two never act on the same message at once.
class MessageLock {
 public:
  /// Tries to lock `path` without waiting; locked() says whether it worked.
  explicit MessageLock(const std::filesystem::path& path);
  ~MessageLock();
  MessageLock(const MessageLock&) = delete;
  MessageLock& operator=(const MessageLock&) = delete;
  bool locked() const { return locked_; }
  /// The file vanished (deleted or moved) before it could be locked.
  bool missing() const { return missing_; }

 private:
  int fd_ = -1;
  bool locked_ = false;
  bool missing_ = false;
};

}  // namespace truefrom::queue
