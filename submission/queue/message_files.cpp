#include "submission/queue/message_files.hpp"

#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "submission/queue/file_io.hpp"

namespace truefrom::queue {

std::filesystem::path message_path(const std::filesystem::path& dir, const std::string& id,
                                   Where where) {
  return dir / where_dir(where) / id;
}

bool write_message_file(const std::filesystem::path& dir, const std::string& id,
                        std::string_view payload, Where where, std::string& error,
                        const struct stat* owner) {
  const auto tmp = dir / "tmp" / id;
  if (!write_fresh(tmp, payload, true, owner, error)) return false;
  const auto dest = message_path(dir, id, where);
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE) != 0) {
    error = "cannot move " + tmp.string() + " to " + dest.string() + ": " + errno_text(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

std::vector<std::string> list_message_files(const std::filesystem::path& dir, Where where) {
  std::vector<std::string> ids;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir / where_dir(where), ec)) {
    const std::string name = e.path().filename().string();
    if (valid_id(name)) ids.push_back(name);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

bool remove_message_file(const std::filesystem::path& dir, const std::string& id, Where where,
                         std::string& error) {
  const auto path = message_path(dir, id, where);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    error = "cannot remove " + path.string() + ": " + errno_text(errno);
    return false;
  }
  ::unlink((dir / "state" / id).c_str());
  return true;
}

bool move_message_file(const std::filesystem::path& dir, const std::string& id, Where from,
                       Where to, std::string& error) {
  const auto a = message_path(dir, id, from), b = message_path(dir, id, to);
  if (::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_NOREPLACE) != 0) {
    error = "cannot move " + a.string() + " to " + b.string() + ": " + errno_text(errno);
    return false;
  }
  std::string ignored;
  fsync_dir(dir / where_dir(to), ignored);
  return true;
}

DeliveryState read_state(const std::filesystem::path& dir, const std::string& id) {
  std::string text, error;
  if (!read_file(dir / "state" / id, text, error)) return {};
  auto s = decode_state(text, error);
  return s ? *s : DeliveryState{};
}

bool write_state(const std::filesystem::path& dir, const std::string& id,
                 const DeliveryState& state, std::string& error) {
  const auto final_path = dir / "state" / id;
  const auto tmp = dir / "state" / (id + ".new");
  if (!write_fresh(tmp, encode_state(state), false, nullptr, error)) return false;
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    error = "cannot write " + final_path.string() + ": " + errno_text(errno);
    ::unlink(tmp.c_str());
    return false;
  }
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
