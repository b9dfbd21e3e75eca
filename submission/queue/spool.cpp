#include "submission/queue/spool.hpp"

#include "submission/runtime/background_threads.hpp"

#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <new>

namespace truefrom::queue {
namespace {

constexpr std::string_view kMagic = "truefrom-queue 1\n";
// A head is small: a bound keeps a corrupt file from being read as one.
constexpr std::size_t kMaxHead = 1024 * 1024;

std::string errno_text(int e) { return std::strerror(e); }

// One "key value" (or bare "key") line of a head or state file.
struct KeyValue {
  std::string_view key, value;
  bool bare = false;  // no value at all (not even an empty one)
};

KeyValue split_line(std::string_view line) {
  const auto sp = line.find(' ');
  if (sp == std::string_view::npos) return {line, {}, true};
  return {line.substr(0, sp), line.substr(sp + 1), false};
}

bool clean_value(std::string_view v) {
  return v.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

template <class T>
bool parse_number(std::string_view text, T& out) {
  if (text.empty()) return false;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && p == text.data() + text.size();
}

// Exactly 16 lowercase hex digits.
bool parse_hex64(std::string_view text, std::uint64_t& out) {
  if (text.size() != 16 || text.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
    return false;
  }
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out, 16);
  return ec == std::errc() && p == text.data() + text.size();
}

// Writes all of `iov` at `offset` (restarting after short writes and EINTR).
bool pwrite_all(int fd, std::vector<iovec>& iov, off_t offset, std::string& error) {
  std::size_t first = 0;
  while (first < iov.size()) {
    const int count = static_cast<int>(std::min<std::size_t>(iov.size() - first, IOV_MAX));
    const ssize_t n = ::pwritev(fd, iov.data() + first, count, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = errno_text(errno);
      return false;
    }
    offset += n;
    auto left = static_cast<std::size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len) {
      left -= iov[first].iov_len;
      ++first;
    }
    if (first < iov.size()) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return true;
}

bool pread_all(int fd, char* out, std::size_t size, off_t offset) {
  std::size_t got = 0;
  while (got < size) {
    const ssize_t n = ::pread(fd, out + got, size - got, offset + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += static_cast<std::size_t>(n);
  }
  return true;
}

bool fsync_dir(const std::filesystem::path& dir, std::string& error) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    error = "cannot open " + dir.string() + ": " + errno_text(errno);
    return false;
  }
  const bool ok = ::fsync(fd) == 0;
  if (!ok) error = "cannot sync " + dir.string() + ": " + errno_text(errno);
  ::close(fd);
  return ok;
}

// Reads a whole open file; `error` says why not.
bool read_fd(int fd, std::string& out, std::string& error) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    error = errno_text(errno);
    return false;
  }
  out.resize(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::pread(fd, out.data() + got, out.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = n < 0 ? errno_text(errno) : "shorter than expected";
      return false;
    }
    got += static_cast<std::size_t>(n);
  }
  return true;
}

bool read_file(const std::filesystem::path& path, std::string& out, std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  std::string why = fd < 0 ? errno_text(errno) : std::string{};
  const bool ok = fd >= 0 && read_fd(fd, out, why);
  if (fd >= 0) ::close(fd);
  if (!ok) error = path.string() + ": " + why;
  return ok;
}

const char* where_dir(Where w) { return w == Where::kActive ? "active" : "hold"; }

}  // namespace

bool valid_id(std::string_view id) {
  if (id.size() < 8 || id.size() > 32) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
  });
}

std::string encode_head(const MessageInfo& info) {
  std::string h(kMagic);
  h += "id " + info.id + "\n";
  h += "from " + info.mail_from + "\n";
  for (const auto& r : info.recipients) h += "rcpt " + r + "\n";
  if (info.eight_bit) h += "body 8bitmime\n";
  if (info.smtputf8) h += "smtputf8\n";
  if (!info.user.empty()) h += "user " + info.user + "\n";
  h += "arrival " + std::to_string(info.arrival) + "\n";
  h += "size " + std::to_string(info.size) + "\n\n";
  return h;
}

std::optional<MessageInfo> decode_head(std::string_view file, std::size_t& data_offset,
                                       std::string& error) {
  if (file.substr(0, kMagic.size()) != kMagic) {
    error = "not a truefrom queue file (or a newer format)";
    return std::nullopt;
  }
  const auto end = file.substr(0, kMaxHead).find("\n\n");
  if (end == std::string_view::npos) {
    error = "the envelope has no end";
    return std::nullopt;
  }
  MessageInfo info;
  bool has_id = false, has_from = false, has_size = false, has_arrival = false;
  std::string_view head = file.substr(kMagic.size(), end + 1 - kMagic.size());
  while (!head.empty()) {
    const auto nl = head.find('\n');
    const std::string_view line = head.substr(0, nl);
    head.remove_prefix(nl + 1);
    const auto [key, value, bare] = split_line(line);
    if (!clean_value(line)) {
      error = "control characters in the envelope";
      return std::nullopt;
    }
    if (key == "id" && !bare && valid_id(value) && !has_id) {
      info.id = value;
      has_id = true;
    } else if (key == "from" && !has_from) {
      info.mail_from = value;
      has_from = true;
    } else if (key == "rcpt" && !bare && !value.empty()) {
      info.recipients.emplace_back(value);
    } else if (key == "body" && value == "8bitmime") {
      info.eight_bit = true;
    } else if (key == "smtputf8" && bare) {
      info.smtputf8 = true;
    } else if (key == "user" && !bare && !value.empty()) {
      info.user = value;
    } else if (key == "arrival" && !bare && parse_number(value, info.arrival)) {
      has_arrival = true;
    } else if (key == "size" && !bare && parse_number(value, info.size)) {
      has_size = true;
    } else {
      error = "unexpected envelope line \"" + std::string(line.substr(0, 60)) + "\"";
      return std::nullopt;
    }
  }
  if (!has_id || !has_from || !has_size || !has_arrival || info.recipients.empty()) {
    error = "the envelope lacks id, from, rcpt, arrival or size";
    return std::nullopt;
  }
  data_offset = end + 2;
  if (file.size() - data_offset != info.size) {
    error = "the message is " + std::to_string(file.size() - data_offset) +
            " octets, the envelope says " + std::to_string(info.size);
    return std::nullopt;
  }
  return info;
}

std::string encode_state(const DeliveryState& s) {
  std::string t = "attempts " + std::to_string(s.attempts) + "\n";
  t += "next " + std::to_string(s.next_attempt) + "\n";
  if (!s.last_error.empty()) {
    std::string e = s.last_error;
    std::replace_if(
        e.begin(), e.end(), [](char c) { return c == '\r' || c == '\n'; }, ' ');
    t += "error " + e + "\n";
  }
  for (const auto& r : s.finished) t += "finished " + r + "\n";
  return t;
}

std::optional<DeliveryState> decode_state(std::string_view text, std::string& error) {
  DeliveryState s;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    if (nl == std::string_view::npos) {
      error = "truncated state";
      return std::nullopt;
    }
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    const auto [key, value, bare] = split_line(line);
    (void)bare;
    if (key == "attempts" && parse_number(value, s.attempts)) continue;
    if (key == "next" && parse_number(value, s.next_attempt)) continue;
    if (key == "error") {
      s.last_error = value;
      continue;
    }
    if (key == "finished" && !value.empty()) {
      s.finished.emplace_back(value);
      continue;
    }
    error = "unexpected state line \"" + std::string(line.substr(0, 60)) + "\"";
    return std::nullopt;
  }
  return s;
}

std::uint64_t record_checksum(const std::vector<std::string_view>& parts) {
  if (parts.size() == 1) return XXH3_64bits(parts[0].data(), parts[0].size());
  const std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                       &XXH3_freeState);
  if (!state) throw std::bad_alloc();
  XXH3_64bits_reset(state.get());
  for (auto p : parts) XXH3_64bits_update(state.get(), p.data(), p.size());
  return XXH3_64bits_digest(state.get());
}

std::string encode_record_header(std::size_t payload_size, bool live, std::uint64_t checksum) {
  char h[kRecordHeader + 1];
  std::snprintf(h, sizeof h, "rec %c %012zu %016llx\n", live ? 'L' : 'D', payload_size,
                static_cast<unsigned long long>(checksum));
  return std::string(h, kRecordHeader);
}

std::string encode_record(std::string_view payload, bool live, bool v1) {
  if (v1) {
    char h[kRecordHeaderV1 + 1];
    std::snprintf(h, sizeof h, "rec %c %012zu\n", live ? 'L' : 'D', payload.size());
    return std::string(h, kRecordHeaderV1) + std::string(payload);
  }
  return encode_record_header(payload.size(), live, record_checksum({payload})) +
         std::string(payload);
}

std::optional<std::vector<SegmentRecord>> parse_segment(std::string_view file, std::size_t& end) {
  end = 0;
  const bool v1 = file.substr(0, kSegmentMagicV1.size()) == kSegmentMagicV1;
  if (!v1 && file.substr(0, kSegmentMagic.size()) != kSegmentMagic) return std::nullopt;
  const std::size_t header = v1 ? kRecordHeaderV1 : kRecordHeader;
  static_assert(kSegmentMagicV1.size() == kSegmentMagic.size());
  std::vector<SegmentRecord> records;
  std::size_t pos = kSegmentMagic.size();
  for (;;) {
    end = pos;
    if (file.size() - pos < header) break;
    const std::string_view h = file.substr(pos, header);
    std::uint64_t n = 0;
    if (h.substr(0, 4) != "rec " || (h[4] != 'L' && h[4] != 'D') || h[5] != ' ' ||
        h[header - 1] != '\n' || !parse_number(h.substr(6, 12), n) ||
        n > file.size() - pos - header) {
      break;
    }
    const std::string_view payload = file.substr(pos + header, n);
    if (!v1) {
      std::uint64_t sum = 0;
      if (h[18] != ' ' || !parse_hex64(h.substr(19, 16), sum) ||
          sum != record_checksum({payload})) {
        break;
      }
    }
    records.push_back({h[4] == 'L', pos, header, payload});
    pos += header + n;
  }
  return records;
}

// One segment file, open for appending (the current one) or until its last record is done.
struct Spool::Segment {
  int fd = -1;
  std::filesystem::path path;
  std::uint64_t size = 0;       // where the next record goes
  std::uint64_t allocated = 0;  // the file's size: zeros from `size` on (appending thread only)
  std::size_t live = 0;         // records written and not yet done
  // A sync of it failed (the commit thread's alone): Linux reports a lost write-back once,
  // so a later sync's success says nothing of records written before; none counts.
  bool sync_failed = false;
  ~Segment() {
    if (fd >= 0) ::close(fd);
  }
};

namespace {

// Rotation: a segment takes records until it is this large; it is removed once all of them
// are done.
constexpr std::uint64_t kSegmentLimit = 64 * 1024 * 1024;
// Segments grow by written zeros this much at a time, ahead of their records.
constexpr std::uint64_t kSegmentExtent = 1024 * 1024;
// Done marks wait at most this long for a commit to travel with.
constexpr std::chrono::milliseconds kMarkDelay{100};

bool segment_name(std::string_view name) {
  return name.size() == 16 && std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
         });
}

// The segment files in <dir>/segments, oldest first; with `unfinished`, also the ones whose
// creation never ended (<name>.new).
std::vector<std::filesystem::path> segment_paths(
    const std::filesystem::path& dir, std::vector<std::filesystem::path>* unfinished = nullptr) {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir / "segments", ec)) {
    const std::string name = e.path().filename().string();
    if (segment_name(name)) out.push_back(e.path());
    if (unfinished && name.size() == 20 && segment_name(name.substr(0, 16)) &&
        name.substr(16) == ".new") {
      unfinished->push_back(e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

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
  while (::pwrite(fd, &d, 1, static_cast<off_t>(offset + 4)) < 0 && errno == EINTR) {
  }
}

// Writes `content` to a new file at `path` (mode 0600, replacing a leftover), synced when
// `sync`, given `owner`'s owner when set. On failure the file is gone.
bool write_fresh(const std::filesystem::path& path, std::string_view content, bool sync,
                 const struct stat* owner, std::string& error) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = "cannot create " + path.string() + ": " + errno_text(errno);
    return false;
  }
  std::vector<iovec> iov{{const_cast<char*>(content.data()), content.size()}};
  std::string why;
  bool ok = true;
  if (owner && ::fchown(fd, owner->st_uid, owner->st_gid) != 0) {
    why = "cannot give it the owner of its segment: " + errno_text(errno);
    ok = false;
  }
  ok = ok && pwrite_all(fd, iov, 0, why);
  if (ok && sync && ::fdatasync(fd) != 0) {
    why = errno_text(errno);
    ok = false;
  }
  ::close(fd);
  if (!ok) {
    error = "cannot write " + path.string() + ": " + why;
    ::unlink(path.c_str());
  }
  return ok;
}

// The message's own file in `where`: written to tmp/, synced, renamed (never over an
// existing file). The caller syncs the directory. `owner`: the file gets that file's owner
// (root's CLI recovering a service user's segment must leave files the server can read).
bool write_message_file(const std::filesystem::path& dir, const std::string& id,
                        std::string_view payload, Where where, std::string& error,
                        const struct stat* owner = nullptr) {
  const auto tmp = dir / "tmp" / id;
  if (!write_fresh(tmp, payload, true, owner, error)) return false;
  const auto dest = dir / where_dir(where) / id;
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE) != 0) {
    error = "cannot move " + tmp.string() + " to " + dest.string() + ": " + errno_text(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

// Decodes a message file's (or a segment record's) content and checks it is `id`'s.
std::optional<MessageInfo> decode_message(std::string_view content, const std::string& id,
                                          const std::string& source, std::string* data,
                                          std::string& error) {
  std::size_t offset = 0;
  std::string why;
  auto info = decode_head(content, offset, why);
  if (!info) {
    error = source + ": " + why;
    return std::nullopt;
  }
  if (info->id != id) {
    error = source + ": the envelope names another id (" + info->id + ")";
    return std::nullopt;
  }
  if (data) data->assign(content.substr(offset));
  return info;
}

}  // namespace

Spool::Spool(std::filesystem::path dir, std::chrono::microseconds gather_delay)
    : dir_(std::move(dir)), gather_delay_(gather_delay) {}

Spool::~Spool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (committer_.joinable()) committer_.join();
  for (auto& p : pending_) {  // only when the thread never started
    if (p.written) forget(p.written->id);
    p.done("the queue is shutting down");
  }
  tidy();
}

bool Spool::exists() const {
  std::error_code ec;
  return std::filesystem::is_directory(dir_ / "active", ec);
}

bool Spool::prepare(std::string& error, std::vector<std::string>* warnings) {
  for (const char* sub : {"", "tmp", "segments", "active", "hold", "state"}) {
    const auto p = sub[0] ? dir_ / sub : dir_;
    if (::mkdir(p.c_str(), 0700) != 0 && errno != EEXIST) {
      error = "cannot create the queue directory " + p.string() + ": " + errno_text(errno) +
              " (check [queue] dir and that the service user may write there)";
      return false;
    }
    if (::access(p.c_str(), W_OK | X_OK) != 0) {
      error = "the queue directory " + p.string() + " is not writable: " + errno_text(errno);
      return false;
    }
  }
  // The directories themselves must survive a crash before anything is committed in them.
  for (const auto& d : {dir_.parent_path(), dir_}) {
    if (!fsync_dir(d, error)) return false;
  }
  // tmp/ holds only message files that were never renamed into place: garbage.
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "tmp", ec)) {
    std::filesystem::remove(e.path(), ec);
  }
  std::vector<std::string> notes;
  recover(notes);
  if (warnings) *warnings = std::move(notes);
  if (!committer_.joinable()) {
    committer_ = std::thread([this] {
      // Background work like the worker pool's (see net/background_threads.hpp); where the
      // system refuses, the serve command has said so for the workers already.
      (void)runtime::mark_background_thread();
      commit_loop();
    });
  }
  return true;
}

std::size_t Spool::recover(std::vector<std::string>& warnings) const {
  std::size_t moved = 0;
  std::error_code ec;
  std::vector<std::filesystem::path> unfinished;
  const auto segments = segment_paths(dir_, &unfinished);
  // A segment being created when its process died (a live one is locked).
  for (const auto& p : unfinished) {
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) == 0) ::unlink(p.c_str());
    if (fd >= 0) ::close(fd);
  }
  for (const auto& seg_path : segments) {
    const int fd = ::open(seg_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;                       // removed meanwhile
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {  // a running server's
      ::close(fd);
      continue;
    }
    std::string file, why;
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !read_fd(fd, file, why)) {
      warnings.push_back("cannot read " + seg_path.string() + ": " +
                         (why.empty() ? errno_text(errno) : why) +
                         "; its messages are moved at the next start");
      ::close(fd);
      continue;
    }
    std::size_t end = 0;
    const auto records = parse_segment(file, end);
    bool damaged = !records, retry = false;
    std::size_t here = 0;
    for (const auto& r : records ? *records : std::vector<SegmentRecord>{}) {
      if (!r.live) continue;
      std::size_t offset = 0;
      const auto info = decode_head(r.payload, offset, why);
      if (!info) {
        warnings.push_back(seg_path.string() + ": the record at offset " +
                           std::to_string(r.offset) + " is damaged: " + why);
        damaged = true;
        continue;
      }
      // Moved into a file of its own before the crash, whose done mark was not synced yet.
      if (std::filesystem::exists(this->path(info->id, Where::kActive), ec) ||
          std::filesystem::exists(this->path(info->id, Where::kHold), ec)) {
        continue;
      }
      if (write_message_file(dir_, info->id, r.payload, Where::kActive, why, &st)) {
        ++here;
      } else {
        warnings.push_back(why + "; " + seg_path.string() +
                           " is kept and tried again at the next start");
        retry = true;
      }
    }
    // The moved files must be durable before the segment goes.
    if (here > 0 && !fsync_dir(dir_ / "active", why)) {
      warnings.push_back(why + "; " + seg_path.string() +
                         " is kept and tried again at the next start");
      retry = true;
    }
    moved += here;
    if (retry) {
      // kept as it is; the messages already moved are skipped next time
    } else if (damaged) {
      const auto kept = seg_path.string() + ".damaged";
      ::rename(seg_path.c_str(), kept.c_str());
      warnings.push_back(seg_path.string() + (records ? "" : ": not a truefrom segment file") +
                         "; kept as " + kept + " for the administrator");
    } else {
      ::unlink(seg_path.c_str());
    }
    ::close(fd);
  }
  if (!segments.empty()) {
    std::string ignored;
    fsync_dir(dir_ / "segments", ignored);
  }
  return moved;
}

// Creates a segment under a temporary name, locks it and only then gives it a segment's
// name, so that no other process's recover() can take it for an abandoned one.
std::shared_ptr<Spool::Segment> Spool::open_segment(std::string& error) {
  const auto dir = dir_ / "segments";
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

void Spool::retire(const std::shared_ptr<Segment>& seg) {
  if (current_ == seg) current_.reset();
  // release() retires it again when its last record is done.
  if (seg->live == 0) doomed_.push_back(seg);
}

void Spool::release(const std::shared_ptr<Segment>& seg) {
  if (--seg->live > 0) return;
  // All done: a retired segment is removed (by tidy()); the current one takes more records.
  if (current_ != seg) retire(seg);
}

void Spool::tidy() {
  // A current segment whose records are all done is not emptied for reuse: records are
  // only ever added at its end, over zeros (extend_with_zeros), so no record of an earlier
  // use can ever follow the last one.
  std::lock_guard append(append_mutex_);  // no record is being added meanwhile
  std::vector<std::shared_ptr<Segment>> doomed;
  {
    std::lock_guard lock(segments_mutex_);
    for (auto& seg : doomed_) {
      // An append that began before the segment was retired may have added a record since:
      // then release() retires it again when that one is done.
      if (seg->live == 0 && seg != current_) doomed.push_back(std::move(seg));
    }
    doomed_.clear();
  }
  for (const auto& seg : doomed) {
    // Its last done marks were never synced (no commit goes to a retired segment), so the
    // removal must be, or a crash could bring the whole segment back for delivery. Once per
    // segment: the directory sync costs little.
    ::unlink(seg->path.c_str());
    std::string ignored;
    fsync_dir(seg->path.parent_path(), ignored);
  }
}

std::optional<Spool::Written> Spool::write(const MessageInfo& info,
                                           const std::vector<std::string_view>& parts,
                                           std::string& error) {
  if (!valid_id(info.id)) {
    error = "invalid queue id";
    return std::nullopt;
  }
  for (const auto& r : info.recipients) {
    if (!clean_value(r)) {
      error = "control characters in a recipient";
      return std::nullopt;
    }
  }
  if (!clean_value(info.mail_from) || !clean_value(info.user)) {
    error = "control characters in the envelope";
    return std::nullopt;
  }
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

  std::optional<Written> out = append(info.id, iov, length, error);
  // A failed append may have retired an empty segment. After a success the commit that
  // follows tidies.
  if (!out) tidy();
  return out;
}

std::optional<Spool::Written> Spool::append(const std::string& id, std::vector<iovec>& iov,
                                            std::uint64_t length, std::string& error) {
  // Appends are serialized so that only the unacknowledged tail can be torn. The index is
  // not locked during the write itself: lookups (the I/O thread's remove_later) never
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
    // holds no live record and was retired meanwhile).
    if (!cut || current_ != seg) retire(seg);
    return std::nullopt;
  }
  if (current_ != seg) {
    // A failed sync retired the segment during the write (nothing else retires the current
    // one while an append runs): its pages are in doubt, so the record does not count as
    // stored and the client will submit again. The segment goes once its last record is done.
    mark_done(seg->fd, offset);
    error = "cannot write " + seg->path.string() + ": a sync of it failed meanwhile";
    return std::nullopt;
  }
  seg->size += length;
  ++seg->live;
  index_[id] = Location{seg, offset, length, false};
  if (seg->size >= kSegmentLimit) retire(seg);
  return Written{seg, offset, length, id};
}

void Spool::commit(Written written, CommitDone done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      pending_.push_back(Pending{std::move(written), {}, {}, std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  forget(written.id);
  done("the queue is shutting down");
}

void Spool::announce() {
  std::lock_guard lock(mutex_);
  ++coming_;
}

void Spool::withdraw() {
  std::lock_guard lock(mutex_);
  if (coming_ > 0) --coming_;
  wake_.notify_one();
}

void Spool::store(MessageInfo info, std::vector<std::string_view> parts, CommitDone done,
                  bool announced) {
  {
    std::lock_guard lock(mutex_);
    if (announced && coming_ > 0) --coming_;
    if (!stopping_) {
      pending_.push_back(Pending{std::nullopt, std::move(info), std::move(parts), std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  done("the queue is shutting down");
}

bool Spool::commit_and_wait(Written written, std::string& error) {
  std::mutex m;
  std::condition_variable cv;
  bool finished = false;
  commit(std::move(written), [&](const std::string& e) {
    std::lock_guard lock(m);
    error = e;
    finished = true;
    cv.notify_one();
  });
  std::unique_lock lock(m);
  cv.wait(lock, [&] { return finished; });
  return error.empty();
}

// The group commit: everything written while the previous batch was syncing goes out with
// one fdatasync per segment involved (almost always one).
void Spool::commit_loop() {
  for (;;) {
    std::vector<Pending> batch;
    std::vector<std::string> done;
    {
      std::unique_lock lock(mutex_);
      const auto due = [this] { return stopping_ || !pending_.empty(); };
      wake_.wait(lock, [&] { return due() || !done_.empty(); });
      if (!due()) wake_.wait_for(lock, kMarkDelay, due);  // marks only: gather some more
      if (pending_.empty() && done_.empty()) return;      // stopping, nothing left
      batch.swap(pending_);
      done.swap(done_);
    }
    // Done marks first: the sync below carries them to the disk too.
    for (const auto& id : done) drop(id);  // tidied below
    std::vector<std::string> errors(batch.size());
    for (auto& p : batch) {  // store()'s messages: appended here, then synced with the rest
      if (!p.written) p.written = write(p.info, p.parts, errors[&p - batch.data()]);
    }
    // Announced messages arriving within gather_delay_ join this batch: under load, one
    // sync then covers several messages instead of each paying its own.
    const auto gather_until = std::chrono::steady_clock::now() + gather_delay_;
    while (!batch.empty()) {
      std::vector<Pending> more;
      {
        std::unique_lock lock(mutex_);
        const auto ready = [this] { return stopping_ || coming_ == 0 || !pending_.empty(); };
        if (coming_ == 0 || stopping_) break;
        if (!wake_.wait_until(lock, gather_until, ready) || pending_.empty()) break;
        more.swap(pending_);
      }
      errors.resize(batch.size() + more.size());
      for (auto& p : more) {
        if (!p.written) p.written = write(p.info, p.parts, errors[batch.size()]);
        batch.push_back(std::move(p));
      }
    }
    std::vector<std::pair<const Segment*, std::string>> synced;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (!batch[i].written) continue;  // the append failed: errors[i] says why
      Segment* seg = batch[i].written->segment.get();
      auto it = std::find_if(synced.begin(), synced.end(),
                             [seg](const auto& s) { return s.first == seg; });
      if (it == synced.end()) {
        std::string e;
        if (seg->sync_failed) {
          e = "cannot sync " + seg->path.string() + ": an earlier sync of it failed";
        } else if (::fdatasync(seg->fd) != 0) {
          e = "cannot sync " + seg->path.string() + ": " + errno_text(errno);
          seg->sync_failed = true;
        }
        it = synced.insert(synced.end(), {seg, e});
      }
      errors[i] = it->second;
    }
    {
      std::lock_guard lock(segments_mutex_);
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (!batch[i].written) continue;
        const Written& w = *batch[i].written;
        if (errors[i].empty()) {
          const auto it = index_.find(w.id);
          if (it != index_.end()) it->second.committed = true;
          continue;
        }
        // Not known to be durable: the client must not get 250, and must not get the
        // message delivered behind its back either (it will submit again). After a failed
        // sync the segment's pages are in doubt: it takes no more records.
        mark_done(w.segment->fd, w.offset);
        index_.erase(w.id);
        retire(w.segment);
        release(w.segment);
      }
    }
    tidy();
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done(errors[i]);
  }
}

std::optional<Spool::Location> Spool::locate(const std::string& id) const {
  std::lock_guard lock(segments_mutex_);
  const auto it = index_.find(id);
  if (it == index_.end() || !it->second.committed) return std::nullopt;
  return it->second;
}

bool Spool::in_segment(const std::string& id) const { return locate(id).has_value(); }

void Spool::drop(const std::string& id) {
  std::lock_guard lock(segments_mutex_);
  const auto it = index_.find(id);
  if (it == index_.end()) return;
  const Location loc = std::move(it->second);
  index_.erase(it);
  mark_done(loc.segment->fd, loc.offset);
  release(loc.segment);
}

void Spool::forget(const std::string& id) {
  drop(id);
  tidy();
}

bool Spool::spill(const std::string& id, Where to, std::string& error) {
  const auto loc = locate(id);
  if (!loc) {
    error = "no message " + id + " in the segments";
    return false;
  }
  std::string record(loc->length, '\0');
  if (!pread_all(loc->segment->fd, record.data(), record.size(), static_cast<off_t>(loc->offset))) {
    error = "cannot read " + loc->segment->path.string() + ": " + errno_text(errno);
    return false;
  }
  const std::string_view payload = std::string_view(record).substr(kRecordHeader);
  if (!write_message_file(dir_, id, payload, to, error)) return false;
  // The file must be durable before the record is marked done.
  if (!fsync_dir(dir_ / where_dir(to), error)) {
    ::unlink(path(id, to).c_str());
    return false;
  }
  forget(id);
  return true;
}

std::vector<Spool::SegmentMessage> Spool::list_segments(bool with_data) const {
  std::vector<SegmentMessage> out;
  for (const auto& p : segment_paths(dir_)) {
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0;
    std::string file, error;
    const bool read = read_fd(fd, file, error);
    ::close(fd);
    if (!read) continue;
    std::size_t end = 0;
    const auto records = parse_segment(file, end);
    if (!records) continue;
    for (const auto& r : *records) {
      if (!r.live) continue;
      std::size_t offset = 0;
      auto info = decode_head(r.payload, offset, error);
      if (!info || find(info->id)) continue;  // damaged, or moved into a file of its own
      SegmentMessage m{std::move(*info), held, {}};
      if (with_data) m.data.assign(r.payload.substr(offset));
      out.push_back(std::move(m));
    }
  }
  return out;
}

std::filesystem::path Spool::path(const std::string& id, Where where) const {
  return dir_ / where_dir(where) / id;
}

std::vector<std::string> Spool::list(Where where) const {
  std::vector<std::string> ids;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / where_dir(where), ec)) {
    const std::string name = e.path().filename().string();
    if (valid_id(name)) ids.push_back(name);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::optional<Where> Spool::find(const std::string& id) const {
  if (!valid_id(id)) return std::nullopt;
  if (in_segment(id)) return Where::kActive;
  std::error_code ec;
  if (std::filesystem::exists(path(id, Where::kActive), ec)) return Where::kActive;
  if (std::filesystem::exists(path(id, Where::kHold), ec)) return Where::kHold;
  return std::nullopt;
}

std::optional<MessageInfo> Spool::read(const std::string& id, Where where, std::string* data,
                                       std::string& error, bool* corrupt) const {
  if (corrupt) *corrupt = false;
  std::string content;
  std::string_view view;
  std::string source;
  const auto loc = where == Where::kActive ? locate(id) : std::nullopt;
  if (loc) {
    source = loc->segment->path.string() + " at offset " + std::to_string(loc->offset);
    content.resize(loc->length);
    if (!pread_all(loc->segment->fd, content.data(), content.size(),
                   static_cast<off_t>(loc->offset))) {
      error = "cannot read " + source + ": " + errno_text(errno);
      return std::nullopt;
    }
    view = std::string_view(content).substr(kRecordHeader);
  } else {
    source = path(id, where).string();
    if (!read_file(path(id, where), content, error)) return std::nullopt;
    view = content;
  }
  auto info = decode_message(view, id, source, data, error);
  if (!info && corrupt) *corrupt = true;
  return info;
}

DeliveryState Spool::load_state(const std::string& id) const {
  std::string text, error;
  if (!read_file(dir_ / "state" / id, text, error)) return {};
  auto s = decode_state(text, error);
  return s ? *s : DeliveryState{};
}

bool Spool::save_state(const std::string& id, const DeliveryState& state, std::string& error) {
  const auto final_path = dir_ / "state" / id;
  const auto tmp = dir_ / "state" / (id + ".new");
  if (!write_fresh(tmp, encode_state(state), false, nullptr, error)) return false;
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    error = "cannot write " + final_path.string() + ": " + errno_text(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  // A message that waits gets a file of its own (after its state, so that no one sees it
  // in active/ without it).
  return !in_segment(id) || spill(id, Where::kActive, error);
}

bool Spool::remove_later(const std::string& id) {
  if (!in_segment(id)) return false;
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      // One wake-up for a run of marks: the commit thread writes them before its next
      // sync, or after kMarkDelay when no commit comes.
      done_.push_back(id);
      if (done_.size() == 1) wake_.notify_one();
      return true;
    }
  }
  forget(id);
  return true;
}

bool Spool::remove(const std::string& id, Where where, std::string& error) {
  if (where == Where::kActive && in_segment(id)) {
    forget(id);
    return true;
  }
  if (::unlink(path(id, where).c_str()) != 0 && errno != ENOENT) {
    error = "cannot remove " + path(id, where).string() + ": " + errno_text(errno);
    return false;
  }
  ::unlink((dir_ / "state" / id).c_str());
  return true;
}

bool Spool::move(const std::string& id, Where from, Where to, std::string& error) {
  if (from == Where::kActive && in_segment(id)) return spill(id, to, error);
  if (::renameat2(AT_FDCWD, path(id, from).c_str(), AT_FDCWD, path(id, to).c_str(),
                  RENAME_NOREPLACE) != 0) {
    error = "cannot move " + path(id, from).string() + " to " + path(id, to).string() + ": " +
            errno_text(errno);
    return false;
  }
  std::string ignored;
  fsync_dir(dir_ / where_dir(to), ignored);
  return true;
}

MessageLock::MessageLock(const std::filesystem::path& path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    missing_ = errno == ENOENT;
    return;
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) return;
  // Locked, but is it still the file at `path` (not moved away meanwhile)?
  struct stat a {
  }, b{};
  if (::fstat(fd_, &a) != 0 || ::stat(path.c_str(), &b) != 0 || a.st_ino != b.st_ino ||
      a.st_dev != b.st_dev) {
    missing_ = true;
    return;
  }
  locked_ = true;
}

MessageLock::~MessageLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace truefrom::queue
