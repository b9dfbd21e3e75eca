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
  listener_ = auth::start_reloader(
      store_, auth::kDkimKeyChannel, "DKIM keys", [this] { return load(); }, log_);
}

void DkimKeyWatcher::stop() {
  if (listener_) listener_->stop();
}

}  // namespace truefrom::app
