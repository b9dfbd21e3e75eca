#include "submission/queue/recovery.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "submission/queue/file_io.hpp"
#include "submission/queue/message_files.hpp"

namespace truefrom::queue {
namespace {

bool segment_name(std::string_view name) {
  return name.size() == 16 && std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
         });
}

}  // namespace

std::vector<std::filesystem::path> segment_paths(const std::filesystem::path& dir,
                                                 std::vector<std::filesystem::path>* unfinished) {
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

std::size_t recover_segments(const std::filesystem::path& dir, std::vector<std::string>& warnings) {
  std::size_t moved = 0;
  std::error_code ec;
  std::vector<std::filesystem::path> unfinished;
  const auto segments = segment_paths(dir, &unfinished);
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
      if (std::filesystem::exists(message_path(dir, info->id, Where::kActive), ec) ||
          std::filesystem::exists(message_path(dir, info->id, Where::kHold), ec)) {
        continue;
      }
      if (write_message_file(dir, info->id, r.payload, Where::kActive, why, &st)) {
        ++here;
      } else {
        warnings.push_back(why + "; " + seg_path.string() +
                           " is kept and tried again at the next start");
        retry = true;
      }
    }
    // The moved files must be durable before the segment goes.
    if (here > 0 && !fsync_dir(dir / "active", why)) {
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
    fsync_dir(dir / "segments", ignored);
  }
  return moved;
}

std::vector<SegmentMessage> read_segment_messages(
    const std::filesystem::path& dir, bool with_data,
    const std::function<bool(const std::string& id)>& skip) {
  std::vector<SegmentMessage> out;
  for (const auto& p : segment_paths(dir)) {
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
      if (!info || skip(info->id)) continue;  // damaged, or moved into a file of its own
      SegmentMessage m{std::move(*info), held, {}};
      if (with_data) m.data.assign(r.payload.substr(offset));
      out.push_back(std::move(m));
    }
  }
  return out;
}

}  // namespace truefrom::queue
