#include "submission/queue/file_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace truefrom::queue {

std::string errno_text(int e) { return std::strerror(e); }

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

}  // namespace truefrom::queue
