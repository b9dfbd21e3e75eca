// Message files: one message per file in <dir>/active/ or <dir>/hold/ (written in <dir>/tmp/,
// synced, renamed into place), its delivery state in <dir>/state/<id>, and MessageLock, the
// advisory lock the scheduler and the admin's commands take on a message file. The slow
// path of the spool: messages that wait (deferred, held) or that recovery moved out of a
// segment.
//
// Thread-safety: functions on different ids may run concurrently; functions on the same id
// must not (the scheduler delivers one id at a time; the CLI works under MessageLock).
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "submission/queue/spool_format.hpp"

namespace truefrom::queue {

/// <dir>/active/<id> or <dir>/hold/<id>.
std::filesystem::path message_path(const std::filesystem::path& dir, const std::string& id,
                                   Where where);
/// The message's own file in `where`, with `payload` (head and message): written to tmp/,
/// synced, renamed (never over an existing file). The caller syncs the directory.
/// `owner`: the file gets that file's owner (root's CLI recovering a service user's segment
/// must leave files the server can read).
bool write_message_file(const std::filesystem::path& dir, const std::string& id,
                        std::string_view payload, Where where, std::string& error,
                        const struct stat* owner = nullptr);
/// Ids of the message files in `where`, in name (= arrival) order.
std::vector<std::string> list_message_files(const std::filesystem::path& dir, Where where);
/// Removes the message file and its state file (a missing one is no error).
bool remove_message_file(const std::filesystem::path& dir, const std::string& id, Where where,
                         std::string& error);
/// Renames the file from one directory into the other (never over an existing file) and
/// syncs the directory it went to.
bool move_message_file(const std::filesystem::path& dir, const std::string& id, Where from,
                       Where to, std::string& error);
/// The state file; a missing or unreadable one is a fresh state.
DeliveryState read_state(const std::filesystem::path& dir, const std::string& id);
/// Replaces the state file (written to <id>.new, renamed; not synced: a lost state only
/// means an attempt comes sooner).
bool write_state(const std::filesystem::path& dir, const std::string& id,
                 const DeliveryState& state, std::string& error);

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
