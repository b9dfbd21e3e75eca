#include "submission/app/suspension.hpp"

#include <ctime>

#include "submission/runtime/log.hpp"

namespace truefrom::app {

namespace {
// The reason kept in accounts.suspended_reason (the evidence can be long).
constexpr std::size_t kMaxReason = 2000;
}  // namespace

Suspender::Suspender(auth::IdentityStore& store, policy::SuspensionTriggers& triggers,
                     queue::Spool* spool, queue::Scheduler* scheduler, std::string hostname,
                     std::vector<std::string> notify)
    : store_(store),
      triggers_(triggers),
      spool_(spool),
      scheduler_(scheduler),
      hostname_(std::move(hostname)),
      notify_(std::move(notify)) {}

void Suspender::suspend(const std::string& login, const policy::SuspensionTrigger& trigger) {
  std::string reason = "automatic (" + trigger.rule + "): " + trigger.evidence;
  if (reason.size() > kMaxReason) reason = reason.substr(0, kMaxReason - 3) + "...";
  bool already = false;
  const auto st = store_.suspend(login, reason, &already);
  if (!st) {
    runtime::log_error("suspension: cannot suspend " + login + ": " + st.detail +
                       "; the trigger fires again on the next evidence");
    triggers_.reset(login);
    return;
  }
  if (already) {
    runtime::log_info("suspension: " + login + " was suspended already (" + trigger.rule + ")");
    return;
  }
  runtime::log_warning("suspension: account " + login + " suspended automatically: " + reason);
  notify(login, trigger);
}

void Suspender::notify(const std::string& login, const policy::SuspensionTrigger& trigger) {
  if (notify_.empty()) {
    runtime::log_warning("suspension: nobody told of " + login +
                         "'s suspension: [suspension] notify names no address");
    return;
  }
  if (!spool_ || !scheduler_) {
    runtime::log_warning("suspension: no notification of " + login +
                         "'s suspension: passthrough mode has no queue to send it from");
    return;
  }
  queue::MessageInfo info;
  info.id = queue::new_queue_id();
  info.recipients = notify_;
  info.arrival = std::time(nullptr);
  info.eight_bit = true;
  const std::string message = policy::suspension_notice(
      {hostname_, login, trigger, notify_, info.arrival,
       "<" + info.id + ".suspended@" + hostname_ + ">"});
  std::string error;
  auto w = spool_->write(info, {message}, error);
  if (!w || !spool_->commit_and_wait(std::move(*w), error)) {
    runtime::log_error("suspension: cannot queue the notification of " + login +
                       "'s suspension: " + error);
    return;
  }
  info.size = message.size();
  std::string to;
  for (const auto& a : notify_) to += (to.empty() ? "<" : ", <") + a + ">";
  runtime::log_info("suspension: " + info.id + " notification of " + login +
                    "'s suspension queued to " + to);
  scheduler_->enqueued(std::move(info));
}

}  // namespace truefrom::app
