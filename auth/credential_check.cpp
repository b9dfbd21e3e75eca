#include "auth/credential_check.hpp"

#include "auth/password_hash.hpp"
#include "auth/verified_passwords.hpp"

namespace truefrom::auth {

CredentialCheck make_credential_check(IdentityCache& cache) {
  auto verified = std::make_shared<VerifiedPasswords>();
  return [&cache, verified](const std::string& login, std::string_view password) {
    CredentialVerdict v;
    IdentityCache::Entry account;
    const StoreStatus st = cache.get(login, account);
    if (!st) {
      v.kind = CredentialVerdict::Kind::kUnavailable;
      v.detail = st.detail;
      return v;
    }
    if (!account) {
      verify_password_dummy(password);
      v.kind = CredentialVerdict::Kind::kRejected;
      v.detail = "no account " + login;
      return v;
    }
    // A recent success with the same stored hash spares the memory-hard verification; the
    // enabled flag below is read from the current snapshot every time.
    const std::string& hash = account->account.password_hash;
    bool match = verified->contains(account->account.login, hash, password);
    if (!match) {
      match = verify_password(password, hash);
      if (match && account->account.enabled)
        verified->insert(account->account.login, hash, password);
    }
    if (!account->account.enabled) {
      v.kind = CredentialVerdict::Kind::kRejected;
      v.detail = "account " + account->account.login + " is disabled";
      return v;
    }
    if (!match) {
      v.kind = CredentialVerdict::Kind::kRejected;
      v.detail = "wrong password for " + account->account.login;
      return v;
    }
    v.kind = CredentialVerdict::Kind::kAccepted;
    v.account = std::move(account);
    return v;
  };
}

}  // namespace truefrom::auth
