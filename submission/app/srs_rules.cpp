#include "submission/app/srs_rules.hpp"

namespace truefrom::app {

std::vector<signer::srs::SrsRule> to_srs_rules(const std::vector<auth::SrsRuleRow>& rows) {
  std::vector<signer::srs::SrsRule> out;
  for (const auto& row : rows) {
    signer::srs::SrsAction a{};
    if (signer::srs::parse_action(row.action, a)) out.push_back({row.id, row.domain, a, row.login});
  }
  return out;
}

SrsRuleWatcher::SrsRuleWatcher(auth::IdentityStore& store, signer::srs::SrsRuleHolder& rules,
                               Log log)
    : store_(store), rules_(rules), log_(std::move(log)) {}

SrsRuleWatcher::~SrsRuleWatcher() { stop(); }

auth::StoreStatus SrsRuleWatcher::load() {
  std::vector<auth::SrsRuleRow> rows;
  auto st = store_.list_srs_rules(rows);
  if (st) rules_.replace(to_srs_rules(rows));
  return st;
}

void SrsRuleWatcher::start() {
  listener_ = auth::start_reloader(
      store_, auth::kSrsRuleChannel, "SRS rules", [this] { return load(); }, log_);
}

void SrsRuleWatcher::stop() {
  if (listener_) listener_->stop();
}

}  // namespace truefrom::app
