// The segment log: accepted messages appended one after another to <dir>/segments/<16 hex>
// files (the fast path; format in spool_format.hpp), and the index of this process's records.
//
// Records are only ever added at the end of the current segment, over zeros written ahead
// of them a megabyte at a time (so that a commit's sync writes data, not a new file size);
// appends are serialized, so an acknowledged record is never behind a torn one. A record
// counts as stored once a sync of its segment covered it (settle(); GroupCommit does the
// syncing); it is marked done in place (one octet, synced by the next sync of the segment)
// when its message is delivered or moved into a file of its own. A segment takes records
// until it reaches 64 MiB or a sync of it fails, and is removed (sweep()) once it takes no
// more and all its records are done. Each segment is flocked by this process while open,
// so recovery in another process never takes it for abandoned.
//
// Thread-safety: every member function may be called from any thread. append() calls are
// serialized among themselves (one at a time) but never block locate()/finish().
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "submission/queue/spool_format.hpp"

namespace truefrom::queue {

/// One segment file, open for appending (the current one) or until its last record is done.
struct Segment {
  int fd = -1;
  std::filesystem::path path;
  std::uint64_t size = 0;       ///< where the next record goes
  std::uint64_t allocated = 0;  ///< the file's size: zeros from `size` on (appending thread)
  std::size_t live = 0;         ///< records written and not yet done
  /// A sync of it failed (the syncing thread's alone): Linux reports a lost write-back once,
  /// so a later sync's success says nothing of records written before; none counts.
  bool sync_failed = false;
  Segment() = default;
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment();
};

class SegmentLog {
 public:
  /// A message appended to a segment and not yet known to be durable.
  struct Written {
    std::shared_ptr<Segment> segment;
    std::uint64_t offset = 0;  ///< of the record
    std::uint64_t length = 0;  ///< header and payload
    std::string id;
  };
  /// Where a committed record is.
  struct Location {
    std::shared_ptr<Segment> segment;
    std::uint64_t offset = 0, length = 0;
    bool committed = false;
  };

  /// `dir`: the segments directory (<queue dir>/segments), which must exist.
  explicit SegmentLog(std::filesystem::path dir);
  SegmentLog(const SegmentLog&) = delete;
  SegmentLog& operator=(const SegmentLog&) = delete;

  /// Appends the head of `info` and `parts` as one live record at the end of the current
  /// segment (opening one when needed). Not synced. On failure nothing counts as written.
  std::optional<Written> append(const MessageInfo& info, const std::vector<std::string_view>& parts,
                                std::string& error);
  /// fdatasync of the segment (one per batch of records in it); false with `error` when it
  /// or an earlier one failed (then no record in it counts as stored).
  bool sync(Segment& segment, std::string& error);
  /// After the sync that covered `written`: `durable` makes it visible to locate(); else
  /// its record is marked done and the segment takes no more records.
  void settle(const Written& written, bool durable);
  /// The committed record of `id` in this process's segments.
  std::optional<Location> locate(const std::string& id) const;
  /// The payload (head and message) of a located record.
  bool read_payload(const Location& at, std::string& out, std::string& error) const;
  /// Marks `id`'s record done (one octet, synced by the segment's next sync) and forgets it.
  /// Its segment, once spent, goes at the next sweep().
  void finish(const std::string& id);
  /// Removes the segments that take no more records and hold no live one (with a sync of
  /// the directory: their last done marks were never synced).
  void sweep();

 private:
  std::shared_ptr<Segment> open_segment(std::string& error);  // with append_mutex_
  std::optional<Written> append_record(const std::string& id, std::vector<iovec>& iov,
                                       std::uint64_t length, std::string& error);
  // With segments_mutex_ held. seal(): no more records go to the segment; it is doomed
  // once none is live. record_done(): one of its records is done.
  void seal(const std::shared_ptr<Segment>& segment);
  void record_done(const std::shared_ptr<Segment>& segment);

  const std::filesystem::path dir_;
  std::mutex append_mutex_;            // one append at a time (taken before segments_mutex_)
  mutable std::mutex segments_mutex_;  // current_, index_, doomed_, every Segment's size, live
  std::shared_ptr<Segment> current_;   // the segment taking new records; all others sealed
  std::unordered_map<std::string, Location> index_;
  std::vector<std::shared_ptr<Segment>> doomed_;  // sealed, none live: to be removed
  std::uint64_t next_segment_ = 0;
};

}  // namespace truefrom::queue
