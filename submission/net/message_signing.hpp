// DKIM signing at the end of DATA, the effect the message preparer asks for
// (submission/policy/message_preparer.hpp): selects the keys for the verified From: domain
// (or the fallback domain), signs the message exactly as it will be relayed (the fields
// truefrom adds on top, then the client's message) and says what happened in plain values.
// Blocking (RSA and Ed25519 signatures): run on the worker pool.
// Thread-safety: reentrant; the key manager hands out immutable key rings.
#pragma once

#include <string>
#include <string_view>

#include "signer/dkim/dkim_signer.hpp"
#include "signer/dkim/key_ring.hpp"
#include "submission/core/header_fields.hpp"
#include "submission/policy/message_preparer.hpp"

namespace truefrom::net {

struct SigningSetup {
  signer::KeyManager* keys = nullptr;  ///< null: DKIM is off
  const signer::DkimSigner* signer = nullptr;
  std::string fallback_domain;
  bool tempfail_on_key_error = true;
};

struct Signing {
  std::string fields;  ///< the DKIM-Signature fields to prepend
  policy::SigningOutcome outcome;
};

/// Signs `added` + `message` (whose header section is `section`) for `from_domain`.
Signing sign_message(const SigningSetup& setup, const std::string& added, std::string_view message,
                     const smtp::HeaderSection& section, const std::string& from_domain);

}  // namespace truefrom::net
