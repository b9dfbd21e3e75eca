// The durable queue on disk: one immutable file per accepted message (envelope, then the
// message exactly as it will be relayed) and one small, rewritable delivery-state file.
//
//   <dir>/tmp/<id>     being written (removed at start: never acknowledged)
//   <dir>/active/<id>  committed; the scheduler delivers it
//   <dir>/hold/<id>    committed, held by the admin (`truefrom queue hold`)
//   <dir>/state/<id>   attempts, next attempt, last error, finished recipients
//
// A message is durable before the client hears 250: the file is written and fdatasync'd in
// tmp/, renamed into active/ and the directory fsync'd. commit() batches the syncs of
// messages committed at the same time (group commit): one thread syncs a whole batch while
// the next batch gathers, so durability under load costs far less than a flush per message.
// Losing a state file only repeats work (delivery is at-least-once).
//
// Thread-safety: write() and commit() may be called from any thread; the other functions
// are plain file operations, safe to call concurrently for different ids. Standard library
// and POSIX only.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
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
std::optional<DeliveryState> decode_state(std::string_view text, std::string& error);

class Spool {
 public:
  /// A message written to tmp/ and not yet committed.
  struct Written {
    int fd = -1;
    std::string id;
  };
  using CommitDone = std::function<void(const std::string& error)>;

  explicit Spool(std::filesystem::path dir);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  const std::filesystem::path& dir() const { return dir_; }

  /// Creates the directories (mode 0700) and removes leftovers in tmp/. Call before
  /// anything else, in the server; the CLI calls exists() instead.
  bool prepare(std::string& error);
  bool exists() const;

  /// Writes head + parts to tmp/<info.id> (blocking). On failure nothing is left behind.
  std::optional<Written> write(const MessageInfo& info, const std::vector<std::string_view>& parts,
                               std::string& error);
  /// Makes a written message durable and visible in active/, batched with concurrent commits.
  /// `done` runs on the spool's commit thread with an empty error on success; on failure the
  /// message is gone from the spool.
  void commit(Written written, CommitDone done);
  /// Blocking form of commit().
  bool commit_and_wait(Written written, std::string& error);

  /// Ids in active/ or hold/, in arrival (name) order.
  std::vector<std::string> list(Where where) const;
  std::filesystem::path path(const std::string& id, Where where) const;
  std::optional<Where> find(const std::string& id) const;
  /// Reads the head (and the data when `data` is not null). On failure `*corrupt` (when
  /// given) tells a damaged file from a passing read error (EMFILE, EIO...).
  std::optional<MessageInfo> read(const std::string& id, Where where, std::string* data,
                                  std::string& error, bool* corrupt = nullptr) const;
  /// The state file; a missing one is a fresh state.
  DeliveryState load_state(const std::string& id) const;
  bool save_state(const std::string& id, const DeliveryState& state, std::string& error) const;
  /// Removes the message and its state (after delivery, or by the admin).
  bool remove(const std::string& id, Where where, std::string& error) const;
  /// Moves between active/ and hold/.
  bool move(const std::string& id, Where from, Where to, std::string& error) const;

 private:
  struct Batch;
  void commit_loop();

  std::filesystem::path dir_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::pair<Written, CommitDone>> pending_;
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
