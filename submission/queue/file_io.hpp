// The spool's POSIX file helpers: whole reads and writes that restart after EINTR and short
// transfers, directory syncs, and a fresh file written in one go. Internal to the queue.
//
// Thread-safety: functions only; each works on the descriptor or path it is given.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace truefrom::queue {

/// strerror(e) as a string.
std::string errno_text(int e);
/// Writes all of `iov` at `offset` (changes `iov` while it goes).
bool pwrite_all(int fd, std::vector<iovec>& iov, off_t offset, std::string& error);
/// Reads exactly `size` octets at `offset`; false on an error (errno) or an early end.
bool pread_all(int fd, char* out, std::size_t size, off_t offset);
/// fsync of a directory: what was created, renamed or removed in it survives a crash.
bool fsync_dir(const std::filesystem::path& dir, std::string& error);
/// Reads a whole open file; `error` says why not.
bool read_fd(int fd, std::string& out, std::string& error);
/// Reads a whole file; `error` names it and says why not.
bool read_file(const std::filesystem::path& path, std::string& out, std::string& error);
/// Writes `content` to a new file at `path` (mode 0600, replacing a leftover), synced when
/// `sync`, given `owner`'s owner when set. On failure the file is gone.
bool write_fresh(const std::filesystem::path& path, std::string_view content, bool sync,
                 const struct stat* owner, std::string& error);

}  // namespace truefrom::queue
