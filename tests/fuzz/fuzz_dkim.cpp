// libFuzzer target: DKIM canonicalization and signing on arbitrary bytes. Every input must
// canonicalize without harm and the body forms must be fixed points (canonical twice =
// canonical once); an input that is a message as SMTP delivers it (a From: field added on
// top, fields "name: value" without control characters, no bare CR or LF, no NUL, a final
// CRLF) must be signed, and libopendkim must verify both signatures (RSA relaxed/relaxed,
// Ed25519 simple/simple).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "signer/dkim/dkim_signer.hpp"
#include "tests/unit/signer/dkim_test_support.hpp"

namespace {

using namespace truefrom::signer;

bool well_formed(std::string_view m) {
  if (m.size() < 2 || m.substr(m.size() - 2) != "\r\n") return false;  // as SMTP delivers it
  for (std::size_t i = 0; i < m.size(); ++i) {
    const char c = m[i];
    if (c == '\0') return false;
    if (c == '\r' && (i + 1 == m.size() || m[i + 1] != '\n')) return false;
    if (c == '\n' && (i == 0 || m[i - 1] != '\r')) return false;
  }
  const MessageView v = test::split(m);
  for (std::string_view f : v.headers) {
    const auto colon = f.find(':');
    if (colon == 0 || colon == std::string_view::npos) return false;
    for (char c : f.substr(0, colon)) {
      if (c <= ' ' || c > '~') return false;
    }
    // RFC 5322 field bodies hold no control characters but HTAB (and the CRLF of folding).
    // Verifiers disagree on the others: libopendkim takes VT and FF for blanks, RFC 6376's
    // WSP (and this signer) does not.
    for (char c : f) {
      const auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t' && c != '\r' && c != '\n') || u == 0x7f) return false;
    }
  }
  return true;
}

struct Keys {
  test::TempDir dir;
  SigningKey rsa = test::make_key(dir.path(), "example.test", "r1", Algorithm::kRsaSha256);
  SigningKey ed = test::make_key(dir.path(), "example.test", "e1", Algorithm::kEd25519Sha256);
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Keys keys;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  for (const auto c : {Canonicalization::kSimple, Canonicalization::kRelaxed}) {
    const std::string once = canonical_body(in, c);
    if (canonical_body(once, c) != once) std::abort();
    (void)canonical_header(in, c);
  }
  // The From: field stays a plain address (a continuation line would fold into it):
  // libopendkim verifies nothing without a From: it can parse.
  const std::string message = "From: a@example.test\r\n" + std::string(in);
  if (!well_formed(message) || (!in.empty() && (in[0] == ' ' || in[0] == '\t'))) return 0;
  SignerOptions relaxed;
  SignerOptions simple{Canonicalization::kSimple, Canonicalization::kSimple};
  std::string signed_message = message;
  for (const auto& [signer, key] :
       {std::pair{DkimSigner(simple), &keys.ed}, std::pair{DkimSigner(relaxed), &keys.rsa}}) {
    const SignResult r = signer.sign({key}, test::split(message));
    if (!r.error.empty() || r.fields.size() != 1) std::abort();
    signed_message.insert(0, r.fields.front());
  }
  const auto verdicts =
      test::verify(signed_message, {keys.rsa.record, keys.ed.record}, keys.dir.path());
  if (verdicts.size() != 2) std::abort();
  for (const auto& v : verdicts) {
    if (!v.pass) {
      std::fprintf(stderr, "not verified: %s\n%s\n", v.detail.c_str(), signed_message.c_str());
      std::abort();
    }
  }
  return 0;
}
