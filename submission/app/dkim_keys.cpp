#include "submission/app/dkim_keys.hpp"

#include <chrono>

namespace truefrom::app {

bool to_key_record(const auth::DkimKeyRow& row, signer::KeyRecord& out) {
  const auto a = signer::parse_algorithm(row.algorithm);
  if (!a) return false;
  out = signer::KeyRecord{row.id, row.domain, row.selector, *a, row.key_path, row.public_key};
  return true;
}

DkimKeyWatcher::DkimKeyWatcher(auth::IdentityStore& store, signer::KeyManager& keys, Log log)
    : store_(store), keys_(keys), log_(std::move(log)) {}

DkimKeyWatcher::~DkimKeyWatcher() { stop(); }

auth::StoreStatus DkimKeyWatcher::load() {
  std::vector<auth::DkimKeyRow> rows;
  auto st = store_.list_dkim_keys("", true, rows);
  if (!st) return st;
  std::vector<signer::KeyRecord> records;
  for (const auto& row : rows) {
    signer::KeyRecord r;
    if (to_key_record(row, r)) records.push_back(std::move(r));
  }
  keys_.replace(records);
  if (records.empty() && log_) log_(true, "no active DKIM keys: mail leaves unsigned");
  return st;
}

void DkimKeyWatcher::start() {
  stopping_ = false;
  listener_ = std::thread([this] { listen_loop(); });
}

void DkimKeyWatcher::stop() {
  {
    std::lock_guard lock(stop_mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (listener_.joinable()) listener_.join();
}

void DkimKeyWatcher::listen_loop() {
  bool reported_down = false;
  auto reload = [this] {
    const auto st = load();
    if (!st && log_) log_(false, "cannot reload DKIM keys, keeping the current ones: " + st.detail);
  };
  const std::function<void()> on_ready = [&] {
    reported_down = false;
    reload();  // changes made while nobody listened
  };
  const std::function<void(const std::string&)> on_change = [&](const std::string&) { reload(); };
  while (!stopping_) {
    const auto st =
        store_.listen_for_changes(auth::kDkimKeyChannel, stopping_, on_ready, on_change);
    if (stopping_) break;
    if (log_ && !reported_down) {
      log_(false, "DKIM key listener: " + st.detail + "; key changes apply when it is back");
    }
    reported_down = true;
    std::unique_lock lock(stop_mutex_);
    stop_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_.load(); });
  }
}

}  // namespace truefrom::app
