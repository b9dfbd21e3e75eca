#include "submission/queue/spool.hpp"

#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

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

// Writes all of `iov` (restarting after short writes and EINTR).
bool write_all(int fd, std::vector<iovec>& iov, std::string& error) {
  std::size_t first = 0;
  while (first < iov.size()) {
    const int count = static_cast<int>(std::min<std::size_t>(iov.size() - first, IOV_MAX));
    const ssize_t n = ::writev(fd, iov.data() + first, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = errno_text(errno);
      return false;
    }
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

bool read_file(const std::filesystem::path& path, std::string& out, std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = path.string() + ": " + errno_text(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    error = path.string() + ": " + errno_text(errno);
    ::close(fd);
    return false;
  }
  out.resize(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = path.string() + ": " + (n < 0 ? errno_text(errno) : "shorter than expected");
      ::close(fd);
      return false;
    }
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return true;
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

Spool::Spool(std::filesystem::path dir) : dir_(std::move(dir)) {}

Spool::~Spool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (committer_.joinable()) committer_.join();
  for (auto& [w, done] : pending_) {  // only when the thread never started
    ::close(w.fd);
    done("the queue is shutting down");
  }
}

bool Spool::exists() const {
  std::error_code ec;
  return std::filesystem::is_directory(dir_ / "active", ec);
}

bool Spool::prepare(std::string& error) {
  for (const char* sub : {"", "tmp", "active", "hold", "state"}) {
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
  // tmp/ holds only messages whose client never got 250: they are garbage.
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "tmp", ec)) {
    std::filesystem::remove(e.path(), ec);
  }
  if (!committer_.joinable()) committer_ = std::thread([this] { commit_loop(); });
  return true;
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
  const auto tmp = dir_ / "tmp" / info.id;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = "cannot create " + tmp.string() + ": " + errno_text(errno);
    return std::nullopt;
  }
  std::vector<iovec> iov;
  iov.reserve(parts.size() + 1);
  iov.push_back({const_cast<char*>(head.data()), head.size()});
  for (auto p : parts) {
    if (!p.empty()) iov.push_back({const_cast<char*>(p.data()), p.size()});
  }
  std::string why;
  if (!write_all(fd, iov, why)) {
    error = "cannot write " + tmp.string() + ": " + why;
    ::close(fd);
    ::unlink(tmp.c_str());
    return std::nullopt;
  }
  return Written{fd, info.id};
}

void Spool::commit(Written written, CommitDone done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      pending_.emplace_back(std::move(written), std::move(done));
      wake_.notify_one();
      return;
    }
  }
  ::close(written.fd);
  ::unlink((dir_ / "tmp" / written.id).c_str());
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

// The group commit: everything that arrived while the previous batch was syncing goes out
// with one pass: fdatasync each file (the file system folds them into one journal commit),
// rename each into active/, one fsync of active/.
void Spool::commit_loop() {
  for (;;) {
    std::vector<std::pair<Written, CommitDone>> batch;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
      if (pending_.empty()) return;  // stopping, nothing left
      batch.swap(pending_);
    }
    std::vector<std::string> errors(batch.size());
    std::vector<bool> renamed(batch.size(), false);
    const auto active = dir_ / "active";
    bool any = false;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      auto& w = batch[i].first;
      if (::fdatasync(w.fd) != 0) errors[i] = "cannot sync the message: " + errno_text(errno);
      ::close(w.fd);
      const auto tmp = dir_ / "tmp" / w.id;
      if (errors[i].empty()) {
        const auto dest = active / w.id;
        if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE) != 0) {
          errors[i] = "cannot move the message into " + active.string() + ": " + errno_text(errno);
        } else {
          renamed[i] = true;
          any = true;
        }
      }
      if (!errors[i].empty()) ::unlink(tmp.c_str());
    }
    std::string dir_error;
    if (any && !fsync_dir(active, dir_error)) {
      // Not known to be durable: the client must not get 250, and must not get the message
      // delivered behind its back either (it will submit again).
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (renamed[i]) {
          ::unlink((active / batch[i].first.id).c_str());
          errors[i] = dir_error;
        }
      }
      std::string ignored;
      fsync_dir(active, ignored);  // best effort: make the undo durable too
    }
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i].second(errors[i]);
  }
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
  std::error_code ec;
  if (std::filesystem::exists(path(id, Where::kActive), ec)) return Where::kActive;
  if (std::filesystem::exists(path(id, Where::kHold), ec)) return Where::kHold;
  return std::nullopt;
}

std::optional<MessageInfo> Spool::read(const std::string& id, Where where, std::string* data,
                                       std::string& error, bool* corrupt) const {
  if (corrupt) *corrupt = false;
  std::string file;
  if (!read_file(path(id, where), file, error)) return std::nullopt;
  if (corrupt) *corrupt = true;
  std::size_t offset = 0;
  std::string why;
  auto info = decode_head(file, offset, why);
  if (!info) {
    error = path(id, where).string() + ": " + why;
    return std::nullopt;
  }
  if (info->id != id) {
    error = path(id, where).string() + ": the envelope names another id (" + info->id + ")";
    return std::nullopt;
  }
  if (corrupt) *corrupt = false;
  if (data) *data = file.substr(offset);
  return info;
}

DeliveryState Spool::load_state(const std::string& id) const {
  std::string text, error;
  if (!read_file(dir_ / "state" / id, text, error)) return {};
  auto s = decode_state(text, error);
  return s ? *s : DeliveryState{};
}

bool Spool::save_state(const std::string& id, const DeliveryState& state,
                       std::string& error) const {
  const auto final_path = dir_ / "state" / id;
  const auto tmp = dir_ / "state" / (id + ".new");
  const std::string text = encode_state(state);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = "cannot write " + tmp.string() + ": " + errno_text(errno);
    return false;
  }
  std::vector<iovec> iov{{const_cast<char*>(text.data()), text.size()}};
  std::string why;
  const bool ok = write_all(fd, iov, why);
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), final_path.c_str()) != 0) {
    error = "cannot write " + final_path.string() + ": " + (ok ? errno_text(errno) : why);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

bool Spool::remove(const std::string& id, Where where, std::string& error) const {
  if (::unlink(path(id, where).c_str()) != 0 && errno != ENOENT) {
    error = "cannot remove " + path(id, where).string() + ": " + errno_text(errno);
    return false;
  }
  ::unlink((dir_ / "state" / id).c_str());
  return true;
}

bool Spool::move(const std::string& id, Where from, Where to, std::string& error) const {
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
