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

}  // namespace truefrom::auth
