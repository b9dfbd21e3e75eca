// truefrom's credential check: the account from the identity cache (or store), successful
// verifications remembered for a few minutes (auth/verified_passwords.hpp), its crypt(3) hash
// verified with libxcrypt. Unknown and disabled accounts cost the same time as a wrong
// password, so timing does not reveal which logins exist. Blocking (database, hashing): run
// on the worker pool. Thread-safe.
#pragma once

#include "auth/identity_cache.hpp"
#include "auth/sasl_server.hpp"

namespace truefrom::auth {

/// A CredentialCheck reading accounts through `cache` (which must outlive it).
CredentialCheck make_credential_check(IdentityCache& cache);

}  // namespace truefrom::auth
