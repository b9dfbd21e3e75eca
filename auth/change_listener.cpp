#include "auth/change_listener.hpp"

#include <chrono>

namespace truefrom::auth {
namespace {
constexpr std::chrono::seconds kReconnectDelay{1};
}  // namespace

ChangeListener::ChangeListener(IdentityStore& store, std::string channel, Callbacks callbacks)
    : store_(store), channel_(std::move(channel)), callbacks_(std::move(callbacks)) {}

ChangeListener::~ChangeListener() { stop(); }

void ChangeListener::start() {
  stopping_ = false;
  thread_ = std::thread([this] { loop(); });
}

void ChangeListener::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ChangeListener::loop() {
  bool reported_down = false;
  const std::function<void()> on_ready = [this, &reported_down] {
    reported_down = false;
    if (callbacks_.on_up) callbacks_.on_up();
  };
  const std::function<void(const std::string&)> on_change = [this](const std::string& payload) {
    if (callbacks_.on_change) callbacks_.on_change(payload);
  };
  while (!stopping_) {
    const StoreStatus st = store_.listen_for_changes(channel_, stopping_, on_ready, on_change);
    if (stopping_) break;
    if (callbacks_.on_down) {
      callbacks_.on_down(st.detail.empty() ? "change listener stopped" : st.detail, !reported_down);
    }
    reported_down = true;
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, kReconnectDelay, [this] { return stopping_.load(); });
  }
}

std::unique_ptr<ChangeListener> start_reloader(IdentityStore& store, const std::string& channel,
                                               const std::string& what,
                                               std::function<StoreStatus()> load,
                                               std::function<void(bool, const std::string&)> log) {
  auto reload = [what, load, log] {
    const auto st = load();
    if (!st && log)
      log(false, "cannot reload " + what + ", keeping the current ones: " + st.detail);
  };
  ChangeListener::Callbacks callbacks;
  callbacks.on_up = reload;  // changes made while nobody listened
  callbacks.on_change = [reload](const std::string&) { reload(); };
  callbacks.on_down = [what, log](const std::string& detail, bool first) {
    if (log && first) {
      log(false, what + " listener: " + detail + "; changes apply when it is back");
    }
  };
  auto listener = std::make_unique<ChangeListener>(store, channel, std::move(callbacks));
  listener->start();
  return listener;
}

}  // namespace truefrom::auth
