#include "submission/queue/spool.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>

#include "submission/queue/file_io.hpp"
#include "submission/queue/group_commit.hpp"

namespace truefrom::queue {

Spool::Spool(std::filesystem::path dir, std::chrono::microseconds gather_delay)
    : dir_(std::move(dir)),
      segments_(dir_ / "segments"),
      committer_(std::make_unique<GroupCommit>(segments_, gather_delay)) {}

Spool::~Spool() = default;

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
  committer_->start();
  return true;
}

std::size_t Spool::recover(std::vector<std::string>& warnings) const {
  return recover_segments(dir_, warnings);
}

std::optional<Spool::Written> Spool::write(const MessageInfo& info,
                                           const std::vector<std::string_view>& parts,
                                           std::string& error) {
  return segments_.append(info, parts, error);
}

void Spool::commit(Written written, CommitDone done) {
  committer_->commit(std::move(written), std::move(done));
}

void Spool::store(MessageInfo info, std::vector<std::string_view> parts, CommitDone done,
                  bool announced) {
  committer_->store(std::move(info), std::move(parts), std::move(done), announced);
}

void Spool::announce() { committer_->announce(); }

void Spool::withdraw() { committer_->withdraw(); }

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

bool Spool::in_segment(const std::string& id) const { return segments_.locate(id).has_value(); }

void Spool::finish(const std::string& id) {
  segments_.finish(id);
  segments_.sweep();
}

bool Spool::spill(const std::string& id, Where to, std::string& error) {
  const auto loc = segments_.locate(id);
  if (!loc) {
    error = "no message " + id + " in the segments";
    return false;
  }
  std::string payload;
  if (!segments_.read_payload(*loc, payload, error)) return false;
  if (!write_message_file(dir_, id, payload, to, error)) return false;
  // The file must be durable before the record is marked done.
  if (!fsync_dir(dir_ / where_dir(to), error)) {
    ::unlink(path(id, to).c_str());
    return false;
  }
  finish(id);
  return true;
}

std::vector<Spool::SegmentMessage> Spool::list_segments(bool with_data) const {
  return read_segment_messages(dir_, with_data,
                               [this](const std::string& id) { return find(id).has_value(); });
}

std::filesystem::path Spool::path(const std::string& id, Where where) const {
  return message_path(dir_, id, where);
}

std::vector<std::string> Spool::list(Where where) const { return list_message_files(dir_, where); }

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
  std::string content, source;
  const auto loc = where == Where::kActive ? segments_.locate(id) : std::nullopt;
  if (loc) {
    source = loc->segment->path.string() + " at offset " + std::to_string(loc->offset);
    if (!segments_.read_payload(*loc, content, error)) return std::nullopt;
  } else {
    source = path(id, where).string();
    if (!read_file(path(id, where), content, error)) return std::nullopt;
  }
  auto info = decode_message(content, id, source, data, error);
  if (!info && corrupt) *corrupt = true;
  return info;
}

DeliveryState Spool::load_state(const std::string& id) const { return read_state(dir_, id); }

bool Spool::save_state(const std::string& id, const DeliveryState& state, std::string& error) {
  if (!write_state(dir_, id, state, error)) return false;
  // A message that waits gets a file of its own (after its state, so that no one sees it
  // in active/ without it).
  return !in_segment(id) || spill(id, Where::kActive, error);
}

bool Spool::remove_later(const std::string& id) {
  if (!in_segment(id)) return false;
  if (!committer_->finish_later(id)) finish(id);  // stopping: marked here
  return true;
}

bool Spool::remove(const std::string& id, Where where, std::string& error) {
  if (where == Where::kActive && in_segment(id)) {
    finish(id);
    return true;
  }
  return remove_message_file(dir_, id, where, error);
}

bool Spool::move(const std::string& id, Where from, Where to, std::string& error) {
  if (from == Where::kActive && in_segment(id)) return spill(id, to, error);
  return move_message_file(dir_, id, from, to, error);
}

}  // namespace truefrom::queue
