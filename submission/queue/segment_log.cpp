#include "submission/queue/segment_log.hpp"

#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <sys/file.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>

#include "submission/queue/file_io.hpp"

namespace truefrom::queue {
namespace {

// Rotation: a segment takes records until it is this large; it is removed once all of them
// are done.
constexpr std::uint64_t kSegmentLimit = 64 * 1024 * 1024;
// Segments grow by written zeros this much at a time, ahead of their records.
constexpr std::uint64_t kSegmentExtent = 1024 * 1024;

// Makes the file at least `need` octets long by writing zeros past `allocated`, a whole
// extent at a time. A record then lands on blocks the file already has, and the commit's
// fdatasync writes it alone instead of also committing a new file size to the journal
// (ext4, measured: about half the CPU time and two thirds of the time of a sync of a 5 KiB
// append). Best effort: where the zeros do not fit (a full disk), what was written of them
// is cut off again and the append extends the file itself.
void extend_with_zeros(int fd, std::uint64_t& allocated, std::uint64_t need) {
  if (need <= allocated) return;
  const std::uint64_t target = (need + kSegmentExtent - 1) / kSegmentExtent * kSegmentExtent;
  static const std::string zeros(64 * 1024, '\0');
  std::vector<iovec> iov;
  for (std::uint64_t at = allocated; at < target; at += zeros.size()) {
    iov.push_back({const_cast<char*>(zeros.data()),
                   static_cast<std::size_t>(std::min<std::uint64_t>(zeros.size(), target - at))});
  }
  std::string ignored;
  if (pwrite_all(fd, iov, static_cast<off_t>(allocated), ignored)) {
    // Written back from now on, so that the next commit's sync need not wait for them.
    ::sync_file_range(fd, static_cast<off_t>(allocated), static_cast<off_t>(target - allocated),
                      SYNC_FILE_RANGE_WRITE);
    allocated = target;
  } else if (::ftruncate(fd, static_cast<off_t>(allocated)) != 0) {
    allocated = target;  // unknown: some zeros may stay, and only records are parsed anyway
  }
}

// Marks the record at `offset` done. Not synced here: the next commit's fdatasync of the
// segment carries it (until then a crash can only deliver the message again).
void mark_done(int fd, std::uint64_t offset) {
  const char d = 'D';
  while (::pwrite(fd, &d, 1, static_cast<off_t>(offset + kRecordMarkOffset)) < 0 &&
         errno == EINTR) {
  }
}

}  // namespace

Segment::~Segment() {
  if (fd >= 0) ::close(fd);
}

SegmentLog::SegmentLog(std::filesystem::path dir) : dir_(std::move(dir)) {}

// Creates a segment under a temporary name, locks it and only then gives it a segment's
// name, so that no other process's recover() can take it for an abandoned one.
std::shared_ptr<Segment> SegmentLog::open_segment(std::string& error) {
  const auto& dir = dir_;
  if (next_segment_ == 0) {
    next_segment_ =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
  }
  auto seg = std::make_shared<Segment>();
  char name[17];
  std::snprintf(name, sizeof name, "%016llX", static_cast<unsigned long long>(next_segment_++));
  const auto fresh = dir / (std::string(name) + ".new");
  seg->path = dir / name;
  seg->fd = ::open(fresh.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  std::string why;
  bool ok = seg->fd >= 0 && ::flock(seg->fd, LOCK_EX | LOCK_NB) == 0;
  if (ok) {
    std::vector<iovec> iov{{const_cast<char*>(kSegmentMagic.data()), kSegmentMagic.size()}};
    ok = pwrite_all(seg->fd, iov, 0, why) &&
         ::renameat2(AT_FDCWD, fresh.c_str(), AT_FDCWD, seg->path.c_str(), RENAME_NOREPLACE) == 0;
  }
  if (!ok) {
    if (why.empty()) why = errno_text(errno);
    error = "cannot create " + seg->path.string() + ": " + why;
    ::unlink(fresh.c_str());
    return nullptr;
  }
  // Its name must survive a crash before any record in it is acknowledged.
  if (!fsync_dir(dir, error)) {
    ::unlink(seg->path.c_str());
    return nullptr;
  }
  seg->size = seg->allocated = kSegmentMagic.size();
  return seg;
}

void SegmentLog::seal(const std::shared_ptr<Segment>& seg) {
  if (current_ == seg) current_.reset();
  // record_done() dooms it when its last record is done.
  if (seg->live == 0) doomed_.push_back(seg);
}

void SegmentLog::record_done(const std::shared_ptr<Segment>& seg) {
  if (--seg->live > 0) return;
  // All done: a sealed segment is removed (by sweep()); the current one takes more records.
  if (current_ != seg) seal(seg);
}

void SegmentLog::sweep() {
  // A current segment whose records are all done is not emptied for reuse: records are
  // only ever added at its end, over zeros (extend_with_zeros), so no record of an earlier
  // use can ever follow the last one.
  std::lock_guard append(append_mutex_);  // no record is being added meanwhile
  std::vector<std::shared_ptr<Segment>> doomed;
  {
    std::lock_guard lock(segments_mutex_);
    for (auto& seg : doomed_) {
      // An append that began before the segment was sealed may have added a record since:
      // then record_done() dooms it again when that one is done.
      if (seg->live == 0 && seg != current_) doomed.push_back(std::move(seg));
    }
    doomed_.clear();
  }
  for (const auto& seg : doomed) {
    // Its last done marks were never synced (no sync goes to a sealed segment), so the
    // removal must be, or a crash could bring the whole segment back for delivery. Once per
    // segment: the directory sync costs little.
    ::unlink(seg->path.c_str());
    std::string ignored;
    fsync_dir(seg->path.parent_path(), ignored);
  }
}

std::optional<SegmentLog::Written> SegmentLog::append(const MessageInfo& info,
                                                      const std::vector<std::string_view>& parts,
                                                      std::string& error) {
  if (!check_envelope(info, error)) return std::nullopt;
  MessageInfo sized = info;
  sized.size = 0;
  for (auto p : parts) sized.size += p.size();
  const std::string head = encode_head(sized);
  std::vector<std::string_view> payload{head};
  payload.insert(payload.end(), parts.begin(), parts.end());
  const std::string record =
      encode_record_header(head.size() + sized.size, true, record_checksum(payload));
  std::vector<iovec> iov;
  iov.reserve(parts.size() + 2);
  iov.push_back({const_cast<char*>(record.data()), record.size()});
  iov.push_back({const_cast<char*>(head.data()), head.size()});
  for (auto p : parts) {
    if (!p.empty()) iov.push_back({const_cast<char*>(p.data()), p.size()});
  }
  const std::uint64_t length = record.size() + head.size() + sized.size;

  std::optional<Written> out = append_record(info.id, iov, length, error);
  // A failed append may have sealed an empty segment. After a success the commit that
  // follows sweeps.
  if (!out) sweep();
  return out;
}

std::optional<SegmentLog::Written> SegmentLog::append_record(const std::string& id,
                                                             std::vector<iovec>& iov,
                                                             std::uint64_t length,
                                                             std::string& error) {
  // Appends are serialized so that only the unacknowledged tail can be torn. The index is
  // not locked during the write itself: lookups (the I/O thread's Spool::remove_later) never
  // wait for one.
  std::lock_guard append(append_mutex_);
  std::shared_ptr<Segment> seg;
  {
    std::lock_guard lock(segments_mutex_);
    if (index_.count(id)) {
      error = "the queue id " + id + " is in use";
      return std::nullopt;
    }
    seg = current_;
  }
  if (!seg) {  // only appends set current_, and this is the only one running
    seg = open_segment(error);
    if (!seg) return std::nullopt;
    std::lock_guard lock(segments_mutex_);
    current_ = seg;
  }
  const std::uint64_t offset = seg->size;  // changed only under append_mutex_
  extend_with_zeros(seg->fd, seg->allocated, offset + length);
  std::string why;
  const bool written = pwrite_all(seg->fd, iov, static_cast<off_t>(offset), why);
  if (written) seg->allocated = std::max(seg->allocated, offset + length);
  const bool cut = !written && ::ftruncate(seg->fd, static_cast<off_t>(offset)) == 0;
  if (cut) seg->allocated = offset;
  std::lock_guard lock(segments_mutex_);
  if (!written) {
    error = "cannot write " + seg->path.string() + ": " + why;
    // Cut the partial record off, or append nothing more to this segment (removed when it
    // holds no live record and was sealed meanwhile).
    if (!cut || current_ != seg) seal(seg);
    return std::nullopt;
  }
  if (current_ != seg) {
    // A failed sync sealed the segment during the write (nothing else seals the current
    // one while an append runs): its pages are in doubt, so the record does not count as
    // stored and the client will submit again. The segment goes once its last record is done.
    mark_done(seg->fd, offset);
    error = "cannot write " + seg->path.string() + ": a sync of it failed meanwhile";
    return std::nullopt;
  }
  seg->size += length;
  ++seg->live;
  index_[id] = Location{seg, offset, length, false};
  if (seg->size >= kSegmentLimit) seal(seg);
  return Written{seg, offset, length, id};
}

bool SegmentLog::sync(Segment& seg, std::string& error) {
  if (seg.sync_failed) {
    error = "cannot sync " + seg.path.string() + ": an earlier sync of it failed";
    return false;
  }
  if (::fdatasync(seg.fd) != 0) {
    error = "cannot sync " + seg.path.string() + ": " + errno_text(errno);
    seg.sync_failed = true;
    return false;
  }
  return true;
}

void SegmentLog::settle(const Written& w, bool durable) {
  std::lock_guard lock(segments_mutex_);
  if (durable) {
    const auto it = index_.find(w.id);
    if (it != index_.end()) it->second.committed = true;
    return;
  }
  // Not known to be durable: the client must not get 250, and must not get the message
  // delivered behind its back either (it will submit again). After a failed sync the
  // segment's pages are in doubt: it takes no more records.
  mark_done(w.segment->fd, w.offset);
  index_.erase(w.id);
  seal(w.segment);
  record_done(w.segment);
}

std::optional<SegmentLog::Location> SegmentLog::locate(const std::string& id) const {
  std::lock_guard lock(segments_mutex_);
  const auto it = index_.find(id);
  if (it == index_.end() || !it->second.committed) return std::nullopt;
  return it->second;
}

bool SegmentLog::read_payload(const Location& at, std::string& out, std::string& error) const {
  out.resize(at.length);
  if (!pread_all(at.segment->fd, out.data(), out.size(), static_cast<off_t>(at.offset))) {
    error = "cannot read " + at.segment->path.string() + " at offset " + std::to_string(at.offset) +
            ": " + errno_text(errno);
    return false;
  }
  out.erase(0, kRecordHeader);
  return true;
}

void SegmentLog::finish(const std::string& id) {
  std::lock_guard lock(segments_mutex_);
  const auto it = index_.find(id);
  if (it == index_.end()) return;
  const Location loc = std::move(it->second);
  index_.erase(it);
  mark_done(loc.segment->fd, loc.offset);
  record_done(loc.segment);
}

}  // namespace truefrom::queue
