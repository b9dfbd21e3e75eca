// The Sender Rewriting Scheme in the form the deployed implementations share (Mail::SRS's
// Guarded scheme, libsrs2, postsrsd): same secret in, same address out, both directions.
//
//   SRS0=HHHH=TT=orig-domain=orig-local@srs-domain          (a foreign sender, forwarded)
//   SRS1=HHHH=first-forwarder==HHHH=TT=orig-domain=orig-local@srs-domain
//                                                           (an SRS0 address, forwarded again)
//
// HHHH: HMAC-SHA1 keyed with the first secret over the lower-cased fields (SRS0: timestamp,
// domain, local part; SRS1: forwarder domain, rest), base64, the first `hash_length`
// characters. TT: days since the epoch, two base32 characters (10 bits, a 1024-day cycle).
// Reversal tries every secret (rotation), compares hashes case-sensitively then
// case-insensitively (some MTAs smash case) and refuses timestamps older than `max_age_days`
// or from the future. Nothing is truncated: a rewritten local part may pass the 64 octets
// RFC 5321 4.5.3.1.1 suggests (as with Mail::SRS and postsrsd); only an address longer than
// a path may hold (254 octets) is refused.
// Thread-safety: an Srs is immutable; use it from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace truefrom::signer::srs {

struct SrsOptions {
  std::string domain;                ///< the SRS domain (lower case), e.g. srs.example.net
  std::vector<std::string> secrets;  ///< the first signs; all verify
  std::size_t hash_length = 4;
  unsigned max_age_days = 21;
};

/// The secrets file: one secret per line (line ends stripped, empty lines skipped). It must be
/// a regular file readable by nobody but its owner. On failure returns nullopt and says what
/// to fix.
std::optional<std::vector<std::string>> load_secrets(const std::filesystem::path& path,
                                                     std::string& error);

/// True when the local part is an SRS0 or SRS1 address (any case, any of - + = after it).
bool is_srs_local_part(std::string_view local);

class Srs {
 public:
  explicit Srs(SrsOptions options);
  const SrsOptions& options() const { return options_; }

  /// The rewritten envelope sender for `sender` (local@domain), at unix time `now`. A sender
  /// already in the SRS domain is returned unchanged. Nullopt with `error` for an address
  /// without '@' or one whose rewritten form would be too long.
  std::optional<std::string> forward(std::string_view sender, std::int64_t now,
                                     std::string& error) const;

  /// True when `address` is an SRS address in our domain (worth a reverse()).
  bool in_domain(std::string_view address) const;

  /// The address an SRS address stands for (for SRS1: the first forwarder's SRS0 address).
  /// Nullopt with `why` ("not an SRS address", "invalid hash", "expired", ...).
  std::optional<std::string> reverse(std::string_view address, std::int64_t now,
                                     std::string& why) const;

  /// The two-character timestamp for `now` (exposed for tests).
  static std::string timestamp(std::int64_t now);
  /// The hash of `fields` with `secret` (exposed for tests).
  std::string hash(const std::string& secret, const std::vector<std::string_view>& fields) const;

 private:
  bool hash_ok(std::string_view hash, const std::vector<std::string_view>& fields) const;
  SrsOptions options_;
};

}  // namespace truefrom::signer::srs
