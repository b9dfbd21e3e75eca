// Keeps the server's SRS rules current: loads them at start, then again whenever a rule
// changes (NOTIFY on truefrom_srs_rules, schema 0004), so `truefrom srs rule add` applies
// within a second. While the database is unreachable the last rules stay in force.
// Thread-safety: start()/stop() from one thread; the listener runs on its own thread.
#pragma once

#include <functional>
#include <memory>

#include "auth/change_listener.hpp"
#include "auth/identity_store.hpp"
#include "signer/srs/srs_rules.hpp"

namespace truefrom::app {

/// The matcher's view of the rows (rows with an unknown action are skipped).
std::vector<signer::srs::SrsRule> to_srs_rules(const std::vector<auth::SrsRuleRow>& rows);

class SrsRuleWatcher {
 public:
  using Log = std::function<void(bool ok, const std::string& line)>;

  SrsRuleWatcher(auth::IdentityStore& store, signer::srs::SrsRuleHolder& rules, Log log);
  ~SrsRuleWatcher();
  SrsRuleWatcher(const SrsRuleWatcher&) = delete;
  SrsRuleWatcher& operator=(const SrsRuleWatcher&) = delete;

  auth::StoreStatus load();
  void start();
  void stop();

 private:
  auth::IdentityStore& store_;
  signer::srs::SrsRuleHolder& rules_;
  Log log_;
  std::unique_ptr<auth::ChangeListener> listener_;
};

}  // namespace truefrom::app
