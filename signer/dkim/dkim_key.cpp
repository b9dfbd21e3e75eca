#include "signer/dkim/dkim_key.hpp"

#include "signer/openssl_text.hpp"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace truefrom::signer {
namespace {

constexpr std::size_t kMaxKeyFile = 64 * 1024;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Bio = std::unique_ptr<BIO, BioFree>;

Pkey read_pem(std::string_view pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  return Pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

const char* kind_of(const EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "RSA")) return "an RSA key";
  if (EVP_PKEY_is_a(key, "ED25519")) return "an Ed25519 key";
  return "a key of another type";
}

bool matches(const EVP_PKEY* key, Algorithm a) {
  return a == Algorithm::kRsaSha256 ? EVP_PKEY_is_a(key, "RSA") != 0
                                    : EVP_PKEY_is_a(key, "ED25519") != 0;
}

std::optional<std::string> public_value(EVP_PKEY* key, std::string& error) {
  if (EVP_PKEY_is_a(key, "ED25519")) {
    unsigned char raw[64];
    std::size_t len = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(key, raw, &len) != 1) {
      error = openssl_error();
      return std::nullopt;
    }
    return base64(raw, len);
  }
  const int len = i2d_PUBKEY(key, nullptr);
  if (len <= 0) {
    error = openssl_error();
    return std::nullopt;
  }
  std::vector<unsigned char> der(static_cast<std::size_t>(len));
  unsigned char* p = der.data();
  i2d_PUBKEY(key, &p);
  return base64(der.data(), der.size());
}

std::string record_name(const KeyRecord& r) { return r.selector + "._domainkey." + r.domain; }

}  // namespace

std::string_view algorithm_name(Algorithm a) {
  return a == Algorithm::kRsaSha256 ? "rsa-sha256" : "ed25519-sha256";
}

std::optional<Algorithm> parse_algorithm(std::string_view text) {
  if (text == "rsa-sha256" || text == "rsa") return Algorithm::kRsaSha256;
  if (text == "ed25519-sha256" || text == "ed25519") return Algorithm::kEd25519Sha256;
  return std::nullopt;
}

SigningKey load_signing_key(const KeyRecord& record, unsigned owner) {
  SigningKey out{record, {}, {}};
  const std::string& path = record.path;
  const std::string what = "DKIM key " + record_name(record) + ": key file " + path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int e = errno;
    out.error = what + ": " + std::strerror(e) +
                (e == ENOENT ? " (restore the file, or retire the key with `truefrom dkim retire`)"
                 : e == EACCES
                     ? " (chown it to the user truefrom runs as, uid " + std::to_string(owner) + ")"
                     : "");
    return out;
  }
  struct stat st {};
  std::string data;
  if (::fstat(fd, &st) != 0) {
    out.error = what + ": " + std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    out.error = what + " is not a regular file";
  } else if (st.st_uid != owner) {
    out.error = what + " is owned by uid " + std::to_string(st.st_uid) + ", not by uid " +
                std::to_string(owner) + " that truefrom runs as (run: chown " +
                std::to_string(owner) + " " + path + ")";
  } else if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    out.error =
        what + " may be read by group or others (mode " + mode + "); run: chmod 600 " + path;
  } else if (st.st_size > static_cast<off_t>(kMaxKeyFile)) {
    out.error = what + " is too large to be a key (" + std::to_string(st.st_size) + " octets)";
  } else {
    data.resize(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < data.size()) {
      const ssize_t n = ::read(fd, data.data() + got, data.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    data.resize(got);
  }
  ::close(fd);
  if (!out.error.empty()) return out;

  Pkey key = read_pem(data);
  if (!key) {
    ERR_clear_error();
    out.error = what + " holds no PEM private key";
    return out;
  }
  if (!matches(key.get(), record.algorithm)) {
    out.error = what + " holds " + kind_of(key.get()) + ", but the key is recorded as " +
                std::string(algorithm_name(record.algorithm));
    return out;
  }
  if (record.algorithm == Algorithm::kRsaSha256 && EVP_PKEY_get_bits(key.get()) < 1024) {
    out.error = what + " holds a " + std::to_string(EVP_PKEY_get_bits(key.get())) +
                "-bit RSA key; RFC 8301 requires at least 1024 bits (2048 recommended)";
    return out;
  }
  std::string error;
  const auto pub = public_value(key.get(), error);
  if (!pub) {
    out.error = what + ": " + error;
    return out;
  }
  if (!record.public_key.empty() && *pub != record.public_key) {
    out.error = what + " does not match the public key recorded (and published in DNS) for " +
                record_name(record) +
                "; the file was replaced: restore it, or generate a new key with "
                "`truefrom dkim keygen`";
    return out;
  }
  out.pkey = std::shared_ptr<EVP_PKEY>(key.release(), EVP_PKEY_free);
  return out;
}

std::optional<GeneratedKey> generate_key(Algorithm algorithm, unsigned bits, std::string& error) {
  Pkey key;
  if (algorithm == Algorithm::kRsaSha256) {
    if (bits < 1024 || bits > 4096) {
      error =
          "RSA keys must have 1024 to 4096 bits (2048 recommended), not " + std::to_string(bits);
      return std::nullopt;
    }
    key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(bits)));
  } else {
    key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  }
  if (!key) {
    error = "key generation failed: " + openssl_error();
    return std::nullopt;
  }
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    error = "cannot encode the key: " + openssl_error();
    return std::nullopt;
  }
  char* p = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &p);
  GeneratedKey out;
  out.pem.assign(p, static_cast<std::size_t>(len));
  auto pub = public_value(key.get(), error);
  if (!pub) return std::nullopt;
  out.public_key = std::move(*pub);
  return out;
}

std::optional<std::string> public_key_of(std::string_view pem, Algorithm algorithm,
                                         std::string& error) {
  Pkey key = read_pem(pem);
  if (!key) {
    ERR_clear_error();
    error = "no PEM private key";
    return std::nullopt;
  }
  if (!matches(key.get(), algorithm)) {
    error = std::string("it holds ") + kind_of(key.get()) + ", not " +
            std::string(algorithm_name(algorithm));
    return std::nullopt;
  }
  return public_value(key.get(), error);
}

std::string dns_record_text(Algorithm algorithm, std::string_view public_key) {
  return std::string("v=DKIM1; k=") + (algorithm == Algorithm::kRsaSha256 ? "rsa" : "ed25519") +
         "; p=" + std::string(public_key);
}

std::string dns_zone_line(const KeyRecord& record) {
  const std::string text = dns_record_text(record.algorithm, record.public_key);
  std::string line = record_name(record) + " TXT";
  // RFC 1035 3.3.14: a TXT record is a sequence of strings of at most 255 octets each;
  // resolvers and verifiers concatenate them (RFC 6376 3.6.2.2).
  for (std::size_t at = 0; at < text.size(); at += 255) {
    line += " \"" + text.substr(at, 255) + "\"";
  }
  return line;
}

bool valid_selector(std::string_view selector) {
  if (selector.empty() || selector.size() > 200) return false;
  std::size_t label = 0;
  char previous = '.';
  for (char c : selector) {
    if (c == '.') {
      if (label == 0 || previous == '-') return false;
      label = 0;
    } else {
      const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
      if (!alnum && !(c == '-' && label > 0)) return false;
      if (++label > 63) return false;
    }
    previous = c;
  }
  return label > 0 && previous != '-';
}

}  // namespace truefrom::signer
