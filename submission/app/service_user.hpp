// Who the server runs as, and giving root up. Started as root, `serve` binds its ports and
// reads what only root may read (the TLS private key, the SRS secrets), then runs as
// [server] user with that user's groups for the rest of its life, unable to become root
// again. [server] run_as_root keeps root (an explicit choice, logged). Started by another
// user, truefrom stays that user.
// The CLI, run as root, hands what the server later reads or writes (the DKIM key directory
// and its keys, the spool, the embedded cluster) to the same user, so that a command run as
// root followed by `serve` works.
// Thread-safety: drop_privileges() before any thread starts; the rest are plain functions.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>

#include "submission/app/config.hpp"

namespace truefrom::app {

struct ServiceUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  /// Started as root and not run_as_root: drop_privileges() changes the process's user.
  bool drop = false;
};

/// The user the server runs as: [server] user when the process is root (unless
/// run_as_root), the current user otherwise. On failure (a user that does not exist, or one
/// that is root) returns nullopt and a message with the command that fixes it.
std::optional<ServiceUser> service_user(const Config& config, std::string& error);

/// The user name the embedded PostgreSQL runs as when truefrom is root: the service user
/// (so that the server, once it is that user, can reach and stop the cluster), or
/// "postgres" with run_as_root.
std::string embedded_cluster_user(const Config& config);

/// When `user.drop`: makes `path` (and, if `recursive`, everything under it) owned by the
/// user where it is not already; symbolic links are not followed. Otherwise does nothing.
/// On failure returns false with a message.
bool hand_over(const std::filesystem::path& path, const ServiceUser& user, bool recursive,
               std::string& error);

/// When `user.drop`: sets the user's supplementary groups, its group and its user id (real,
/// effective and saved), then checks that root cannot be regained. On failure returns false
/// with a message; the caller stops.
bool drop_privileges(const ServiceUser& user, std::string& error);

}  // namespace truefrom::app
