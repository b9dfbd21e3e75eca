// What the server does when a suspension trigger fires (policy/suspension.hpp): records
// the suspension in PostgreSQL (schema 0006; running servers learn it by NOTIFY, so every
// node's sessions of the account end at their next command and its MAIL FROM is refused),
// and queues a notification for the admins ([suspension] notify) through the normal relay.
// The account's queued messages are held by the scheduler (Scheduler::set_held_user).
// Thread-safety: suspend() may run on several workers at once.
#pragma once

#include <string>
#include <vector>

#include "auth/identity_store.hpp"
#include "submission/policy/suspension.hpp"
#include "submission/queue/scheduler.hpp"
#include "submission/queue/spool.hpp"

namespace truefrom::app {

class Suspender {
 public:
  /// `spool`, `scheduler`: null in passthrough mode (no notification is queued then).
  Suspender(auth::IdentityStore& store, policy::SuspensionTriggers& triggers,
            queue::Spool* spool, queue::Scheduler* scheduler, std::string hostname,
            std::vector<std::string> notify);

  /// Blocking (PostgreSQL, the spool): call on a worker.
  void suspend(const std::string& login, const policy::SuspensionTrigger& trigger);

 private:
  void notify(const std::string& login, const policy::SuspensionTrigger& trigger);

  auth::IdentityStore& store_;
  policy::SuspensionTriggers& triggers_;
  queue::Spool* spool_;
  queue::Scheduler* scheduler_;
  const std::string hostname_;
  const std::vector<std::string> notify_;
};

}  // namespace truefrom::app
