// DKIM signing (RFC 6376, RFC 8463 for Ed25519).
//
// The message is handed over as views: its header fields exactly as they will be relayed
// (folding kept, without the CRLF that ends each field) and its body (after the empty
// line), so the body is canonicalized and hashed from the buffer it was received in, never
// copied. Every key given signs: an RSA and an Ed25519 key of one domain give the dual
// signature of RFC 8463. Signed header fields: the RFC 6376 5.4.1 set plus Message-ID,
// MIME-Version, Content-*, Sender and Resent-*/List-*, with From, To, Cc, Subject, Date,
// Reply-To and Message-ID over-signed (named once more than present, so none can be added
// later). No l= tag.
//
// Why not libopendkim's signer: its API takes the private key as text and decodes it again
// for every signature (through OpenSSL 3's decoders, about 0.3 ms, more than an RSA-2048
// signature itself), and Debian 12's version mis-folds Ed25519 signatures with simple header
// canonicalization and leaks each Ed25519 key. Here the key is decoded once, when it is
// loaded (SigningKey::pkey). libopendkim and dkimpy verify every signature in the tests.
// Thread-safety: sign() may be called concurrently.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "signer/dkim/dkim_key.hpp"

namespace truefrom::signer {

enum class Canonicalization { kSimple, kRelaxed };

struct SignerOptions {
  Canonicalization header = Canonicalization::kRelaxed;
  Canonicalization body = Canonicalization::kRelaxed;
};

/// "relaxed/relaxed", "relaxed/simple", "simple/simple", "simple/relaxed" (header/body);
/// "relaxed" alone means relaxed/simple as in RFC 6376 3.5. False when not one of those.
bool parse_canonicalization(std::string_view text, SignerOptions& out);

struct MessageView {
  std::vector<std::string_view> headers;  ///< each field without its final CRLF
  std::string_view body;                  ///< after the empty line; CRLF line ends
};

struct SignResult {
  /// One complete "DKIM-Signature: ..." field per key, folded, each ending with CRLF, in the
  /// order of the keys.
  std::vector<std::string> fields;
  std::string error;  ///< empty on success
};

class DkimSigner {
 public:
  explicit DkimSigner(SignerOptions options = {});

  /// Signs `message` with every key in `keys` (all must be usable), with t= `now` (the
  /// current time when 0). CPU-bound: call from the worker pool.
  SignResult sign(const std::vector<const SigningKey*>& keys, const MessageView& message,
                  std::time_t now = 0) const;

  const SignerOptions& options() const { return options_; }

 private:
  SignerOptions options_;
};

/// The header fields signed (a trailing "*" matches any suffix) and over-signed (exposed for
/// tests).
const std::vector<std::string_view>& signed_header_names();
const std::vector<std::string_view>& oversigned_header_names();

/// RFC 6376 3.4 canonical forms (exposed for tests and the fuzz target; sign() streams the
/// body's form into the hash instead of building it). Header: one field without its final
/// CRLF, canonicalized with a final CRLF.
std::string canonical_header(std::string_view field, Canonicalization c);
std::string canonical_body(std::string_view body, Canonicalization c);

}  // namespace truefrom::signer
