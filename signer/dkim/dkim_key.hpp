// DKIM signing keys (RFC 6376 3.6, RFC 8463): the key records an admin manages, the private
// key files they point to, key generation and the DNS TXT record that publishes a key.
//
// Private keys live only in files (PEM, PKCS#8), never in the database. A key file is used
// only when it is a regular file owned by the user truefrom runs as, readable by nobody
// else, holding a key of the record's algorithm whose public half is the one recorded (and
// published) for it; anything else is an error naming the file and the fix.
// Thread-safety: pure functions and value types.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct evp_pkey_st;  // OpenSSL's EVP_PKEY

namespace truefrom::signer {

enum class Algorithm { kRsaSha256, kEd25519Sha256 };

/// "rsa-sha256" or "ed25519-sha256" (the a= tag and the database's spelling).
std::string_view algorithm_name(Algorithm a);
/// Accepts "rsa-sha256"/"rsa" and "ed25519-sha256"/"ed25519".
std::optional<Algorithm> parse_algorithm(std::string_view text);

/// One key as the database describes it.
struct KeyRecord {
  std::int64_t id = 0;
  std::string domain;    ///< lower-case A-labels
  std::string selector;  ///< lower case
  Algorithm algorithm = Algorithm::kRsaSha256;
  std::string path;        ///< absolute path of the private key file
  std::string public_key;  ///< the p= value published in DNS (base64)
};

/// A key ready for signing, or the reason it cannot be used.
struct SigningKey {
  KeyRecord record;
  /// The private key, decoded once when loaded (read-only from then on, so shared by
  /// concurrent signatures); null when `error` is set.
  std::shared_ptr<evp_pkey_st> pkey;
  std::string error;  ///< empty when the key is usable
  bool usable() const { return error.empty(); }
};

/// Reads and checks the key file of `record` (see the file comment). `owner` is the user
/// the file must belong to (normally geteuid()).
SigningKey load_signing_key(const KeyRecord& record, unsigned owner);

/// A new private key (PEM) and its public p= value.
struct GeneratedKey {
  std::string pem;
  std::string public_key;
};
/// RSA with `bits` (1024 to 4096; RFC 8301 wants at least 1024, 2048 is the default) or
/// Ed25519 (bits ignored). Returns nullopt with the reason on failure.
std::optional<GeneratedKey> generate_key(Algorithm algorithm, unsigned bits, std::string& error);

/// The p= value of a PEM private key of `algorithm`: base64 of the SubjectPublicKeyInfo for
/// RSA (RFC 6376 3.6.1), of the raw 32-octet public key for Ed25519 (RFC 8463 4.2).
std::optional<std::string> public_key_of(std::string_view pem, Algorithm algorithm,
                                         std::string& error);

/// The TXT record's text: "v=DKIM1; k=rsa; p=...".
std::string dns_record_text(Algorithm algorithm, std::string_view public_key);
/// One line per key: `selector._domainkey.domain TXT "..." "..."`, the text cut into
/// strings of at most 255 octets (RFC 1035 3.3.14) and written on one line. The name is
/// the full one, without a final dot: in a zone file, write it with the dot.
std::string dns_zone_line(const KeyRecord& record);

/// A DKIM selector: dot-separated labels of letters, digits and hyphens (RFC 6376 3.1),
/// at most 63 octets each.
bool valid_selector(std::string_view selector);

}  // namespace truefrom::signer
