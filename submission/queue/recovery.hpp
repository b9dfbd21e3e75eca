// Recovery and inspection of segment files on disk, whichever process wrote them.
//
// recover_segments() moves the live records of every segment that no process holds (a
// running server flocks its own) into files of their own in active/, then removes the
// segment; a damaged one is kept as <name>.damaged for the administrator. The server does
// this at start (Spool::prepare), the CLI for a stopped server (`truefrom queue recover`).
// A record whose message already has a file (moved before the crash, its done mark not yet
// synced) is skipped. Files that root's CLI writes get the segment's owner.
//
// Thread-safety: functions only; recovery in two processes at once is safe (flock).
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "submission/queue/spool_format.hpp"

namespace truefrom::queue {

/// The segment files in <dir>/segments, oldest first; with `unfinished`, also the ones whose
/// creation never ended (<name>.new).
std::vector<std::filesystem::path> segment_paths(
    const std::filesystem::path& dir, std::vector<std::filesystem::path>* unfinished = nullptr);

/// Moves the live records of every unheld segment of the queue at `dir` into active/ (see
/// above). Returns how many messages moved; problems go to `warnings`.
std::size_t recover_segments(const std::filesystem::path& dir, std::vector<std::string>& warnings);

/// A live record found in a segment file.
struct SegmentMessage {
  MessageInfo info;
  bool held_by_server = false;  ///< a running server holds the segment
  std::string data;             ///< the message, when asked for
};
/// The live records of every segment of the queue at `dir`, except those `skip` says have
/// moved into a file of their own (or are known otherwise).
std::vector<SegmentMessage> read_segment_messages(
    const std::filesystem::path& dir, bool with_data,
    const std::function<bool(const std::string& id)>& skip);

}  // namespace truefrom::queue
