// truefrom's credential check: the account from the identity store, its crypt(3) hash
// verified with libxcrypt. Unknown and disabled accounts cost the same time as a wrong
// password, so timing does not reveal which logins exist. Blocking (database, hashing): run
// on the worker pool. Thread-safe.
#pragma once

#include "auth/identity_store.hpp"
#include "auth/sasl_server.hpp"

namespace truefrom::auth {

/// A CredentialCheck reading accounts from `store` (which must outlive it).
CredentialCheck make_credential_check(IdentityStore& store);

}  // namespace truefrom::auth
