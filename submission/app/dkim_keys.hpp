// Keeps the server's DKIM keys current: loads the active key records from the database
// into a signer::KeyManager at start, then reloads them whenever a key changes (NOTIFY on
// the truefrom_dkim_keys channel, schema 0003), so activating or retiring a key applies
// within a second, without a restart. While the database is unreachable the last keys stay
// in use (signing with a just-retired key for a moment is harmless; a key's DNS record stays
// published for days after it is retired).
// Thread-safety: start()/stop() from one thread; the listener runs on its own thread
// (auth::ChangeListener).
#pragma once

#include <functional>
#include <memory>

#include "auth/change_listener.hpp"
#include "auth/identity_store.hpp"
#include "signer/dkim/key_ring.hpp"

namespace truefrom::app {

/// The signer's view of a key row; false when the row's algorithm is unknown.
bool to_key_record(const auth::DkimKeyRow& row, signer::KeyRecord& out);

class DkimKeyWatcher {
 public:
  using Log = std::function<void(bool ok, const std::string& line)>;

  DkimKeyWatcher(auth::IdentityStore& store, signer::KeyManager& keys, Log log);
  ~DkimKeyWatcher();
  DkimKeyWatcher(const DkimKeyWatcher&) = delete;
  DkimKeyWatcher& operator=(const DkimKeyWatcher&) = delete;

  /// Loads the active keys now (blocking).
  auth::StoreStatus load();
  /// Starts the listener thread.
  void start();
  void stop();

 private:
  auth::IdentityStore& store_;
  signer::KeyManager& keys_;
  Log log_;
  std::unique_ptr<auth::ChangeListener> listener_;
};

}  // namespace truefrom::app
