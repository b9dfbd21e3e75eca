#include "auth/credential_check.hpp"

#include "auth/password_hash.hpp"

namespace truefrom::auth {

CredentialCheck make_credential_check(IdentityCache& cache) {
  return [&cache](const std::string& login, std::string_view password) {
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
    const bool match = verify_password(password, account->account.password_hash);
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
