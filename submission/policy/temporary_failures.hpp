// Every temporary-failure reply the server gives for a fault on its own side (a database,
// a key, a disk, an internal error), in one place: RFC 3463 codes, texts a user can act on
// ("try again later") and an admin can search the log for. A temporary fault is never
// answered with a permanent refusal, and never with a false accept.
// Pure functions; thread-safe.
#pragma once

#include <string>

#include "submission/core/reply.hpp"

namespace truefrom::policy::temporary {

/// AUTH: the credentials could not be checked (PostgreSQL unreachable). RFC 4954 6.
inline smtp::Reply auth_unavailable() {
  return {454, {4, 7, 0}, "Temporary authentication failure, try again later"};
}

/// AUTH from a network blocked by login throttling (too many failed logins).
inline smtp::Reply network_blocked(long minutes) {
  return {454,
          {4, 7, 0},
          "Too many failed logins from your network; try again in " + std::to_string(minutes) +
              " minute(s)"};
}

/// Connect from a network blocked by login throttling (421: the connection closes).
inline smtp::Reply network_blocked_at_connect(long minutes) {
  return {421,
          {4, 7, 0},
          "Too many failed logins from your network; try again in " + std::to_string(minutes) +
              " minute(s)",
          true};
}

/// Connect beyond the connections allowed per network, or in all.
inline smtp::Reply too_many_connections(bool from_network) {
  return {421,
          {4, 7, 0},
          from_network ? "Too many connections from your network, try again later"
                       : "Too many connections, try again later",
          true};
}

/// MAIL FROM: the account's identities could not be loaded.
inline smtp::Reply sender_check_unavailable() {
  return {451, {4, 3, 0}, "Sender check temporarily unavailable, try again later"};
}

/// End of DATA without the account snapshot MAIL FROM took (cannot happen; said safely).
inline smtp::Reply transaction_state_lost() {
  return {451, {4, 3, 0}, "Sender check state lost, try again"};
}

/// End of DATA: the DKIM key for `domain` is unusable (missing, unreadable, not the
/// recorded key) and [dkim] on_key_error says to defer rather than send unsigned.
inline smtp::Reply dkim_key_unusable(const std::string& domain) {
  return {451,
          {4, 3, 5},
          "Cannot DKIM-sign for " + domain +
              " now (the key is unusable; the administrator is told); try again later"};
}

/// End of DATA: the spool could not store the message durably (disk full, read-only).
inline smtp::Reply storage_unavailable() {
  return {
      452, {4, 3, 1}, "Insufficient system storage: cannot queue the message now, try again later"};
}

/// Any step: an unexpected error inside the server (logged with its cause). The
/// transaction is not accepted; the client may retry.
inline smtp::Reply internal_error() {
  return {451, {4, 3, 0}, "Local error in processing, try again later"};
}

}  // namespace truefrom::policy::temporary
