// DKIM signing (RFC 6376, RFC 8463 for Ed25519) through libopendkim.
//
// The message is handed over as views: its header fields exactly as they will be relayed
// (folding kept, without the CRLF that ends each field) and its body (after the empty
// line), so the body is streamed through the library from the buffer it was received in,
// never copied. Every key given signs: an RSA and an Ed25519 key of one domain give the dual
// signature of RFC 8463. Signed header fields: the RFC 6376 5.4.1 set plus Message-ID,
// MIME-Version, Content-*, Sender and Resent-*/List-*, with From, To, Cc, Subject, Date,
// Reply-To and Message-ID over-signed (named once more than present, so none can be added
// later). No l= tag. Ed25519 signatures with simple header canonicalization are written
// on one line (see sign()).
// Thread-safety: sign() may be called concurrently (one libopendkim handle per call; the
// library handle is configured once, in the constructor).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
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
  ~DkimSigner();
  DkimSigner(const DkimSigner&) = delete;
  DkimSigner& operator=(const DkimSigner&) = delete;

  /// Signs `message` with every key in `keys` (all must be usable). CPU-bound: call from the
  /// worker pool.
  SignResult sign(const std::vector<const SigningKey*>& keys, const MessageView& message) const;

  const SignerOptions& options() const { return options_; }

  /// Ed25519 signatures whose key libopendkim leaked and that could not be reclaimed (see
  /// find_ed25519_key in dkim_signer.cpp); 0 with Debian 12's libopendkim.
  std::uint64_t unreclaimed() const { return unreclaimed_.load(); }

 private:
  SignResult sign_one(const SigningKey& key, const MessageView& message, Canonicalization header,
                      bool one_line) const;

  struct Library;
  SignerOptions options_;
  std::unique_ptr<Library> lib_;
  mutable std::atomic<std::uint64_t> unreclaimed_{0};
};

/// The header fields libopendkim is told to sign and to over-sign (exposed for tests).
const std::vector<const char*>& signed_header_names();
const std::vector<const char*>& oversigned_header_names();

}  // namespace truefrom::signer
