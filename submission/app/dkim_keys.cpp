#include "submission/app/dkim_keys.hpp"

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
  auto reload = [this] {
    const auto st = load();
    if (!st && log_) log_(false, "cannot reload DKIM keys, keeping the current ones: " + st.detail);
  };
  auth::ChangeListener::Callbacks callbacks;
  callbacks.on_up = reload;  // changes made while nobody listened
  callbacks.on_change = [reload](const std::string&) { reload(); };
  callbacks.on_down = [this](const std::string& detail, bool first) {
    if (log_ && first) {
      log_(false, "DKIM key listener: " + detail + "; key changes apply when it is back");
    }
  };
  listener_ =
      std::make_unique<auth::ChangeListener>(store_, auth::kDkimKeyChannel, std::move(callbacks));
  listener_->start();
}

void DkimKeyWatcher::stop() {
  if (listener_) listener_->stop();
}

}  // namespace truefrom::app
