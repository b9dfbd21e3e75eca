// Text from OpenSSL for the DKIM code: the last error as a sentence, and base64 (RFC 4648,
// no line breaks) as DKIM's b=, bh= and p= values want it.
// Thread-safety: pure functions (OpenSSL's error queue is per thread).
#pragma once

#include <openssl/err.h>
#include <openssl/evp.h>

#include <cstddef>
#include <string>

namespace truefrom::signer {

inline std::string openssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

inline std::string base64(const unsigned char* data, std::size_t len) {
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(len));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

}  // namespace truefrom::signer
