#include "signer/dkim/dkim_signer.hpp"

#include "signer/dkim/opendkim.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <unordered_map>

namespace truefrom::signer {
namespace {

constexpr std::string_view kFieldName = "DKIM-Signature: ";

dkim_canon_t canon(Canonicalization c) {
  return c == Canonicalization::kRelaxed ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
}

dkim_alg_t alg(Algorithm a) {
  return a == Algorithm::kRsaSha256 ? DKIM_SIGN_RSASHA256 : DKIM_SIGN_ED25519SHA256;
}

// libopendkim's allocations for one signature, through its memory-closure hooks, so that
// what it fails to free can be found afterwards (see find_ed25519_key).
struct Arena {
  std::unordered_map<void*, std::size_t> live;
};

void* arena_malloc(void* closure, std::size_t n) {
  void* p = std::malloc(n);
  if (p != nullptr && closure != nullptr) static_cast<Arena*>(closure)->live[p] = n;
  return p;
}

void arena_free(void* closure, void* p) {
  if (closure != nullptr) static_cast<Arena*>(closure)->live.erase(p);
  std::free(p);
}

// libopendkim 2.11.0~beta2 (Debian 12) does not free everything it allocates for an Ed25519
// signature: dkim_free() releases the parsed key (EVP_PKEY) and the 64-octet signature buffer
// of RSA signatures only, so every Ed25519 signature would leak about 220 octets. The signer
// finds them before dkim_free() and releases them afterwards. They are recognised, never
// assumed: the library's key structure (struct dkim_crypto, OpenSSL build) is an arena block
// with the values an Ed25519 key gives it (512-bit key, 64-octet output) whose output pointer
// is exactly another 64-octet arena block. Both are released only when that output block is
// still allocated after dkim_free(), i.e. when the library really leaked them (a fixed
// libopendkim frees it, and then nothing is done here). Anything unrecognised is left alone
// and counted (DkimSigner::unreclaimed).
struct CryptoLayout {  // libopendkim's struct dkim_crypto, OpenSSL build
  unsigned char pad;
  int keysize;
  std::size_t inlen;
  std::size_t outlen;
  EVP_PKEY* pkey;
  void* key;
  BIO* keydata;
  unsigned char* in;
  unsigned char* out;
};

struct LeakedKey {
  EVP_PKEY* pkey = nullptr;
  void* out = nullptr;
};

// Before dkim_free(): the key and output buffer of the handle's Ed25519 key structure.
LeakedKey find_ed25519_key(const Arena& arena) {
  for (const auto& [block, size] : arena.live) {
    if (size != sizeof(CryptoLayout)) continue;
    CryptoLayout c;
    std::memcpy(&c, block, sizeof c);
    const auto out = arena.live.find(c.out);
    if (c.keysize == 512 && c.outlen == 64 && out != arena.live.end() && out->second == 64 &&
        c.pkey != nullptr && EVP_PKEY_get_id(c.pkey) == EVP_PKEY_ED25519) {
      return LeakedKey{c.pkey, c.out};
    }
  }
  return {};
}

// After dkim_free(): releases what the library left of `key`; false when nothing was found.
bool reclaim(Arena& arena, const LeakedKey& key) {
  if (key.out == nullptr) return false;
  if (arena.live.count(key.out) == 0) return true;  // the library freed them itself
  EVP_PKEY_free(key.pkey);
  arena_free(&arena, key.out);
  return true;
}

struct HandleFree {
  void operator()(DKIM* d) const { dkim_free(d); }
};
using Handle = std::unique_ptr<DKIM, HandleFree>;

const unsigned char* u(const char* s) { return reinterpret_cast<const unsigned char*>(s); }

}  // namespace

const std::vector<const char*>& signed_header_names() {
  // RFC 6376 5.4.1, plus the fields that identify and interpret the message. libopendkim
  // reads "*" as a wildcard.
  static const std::vector<const char*> kNames{"from",
                                               "reply-to",
                                               "subject",
                                               "date",
                                               "to",
                                               "cc",
                                               "sender",
                                               "message-id",
                                               "in-reply-to",
                                               "references",
                                               "mime-version",
                                               "content-type",
                                               "content-transfer-encoding",
                                               "content-id",
                                               "content-description",
                                               "resent-*",
                                               "list-*",
                                               nullptr};
  return kNames;
}

const std::vector<const char*>& oversigned_header_names() {
  static const std::vector<const char*> kNames{"from", "to",       "cc",         "subject",
                                               "date", "reply-to", "message-id", nullptr};
  return kNames;
}

bool parse_canonicalization(std::string_view text, SignerOptions& out) {
  const auto slash = text.find('/');
  const std::string_view h = text.substr(0, slash);
  const std::string_view b = slash == std::string_view::npos ? "simple" : text.substr(slash + 1);
  auto one = [](std::string_view t, Canonicalization& c) {
    if (t == "relaxed") {
      c = Canonicalization::kRelaxed;
    } else if (t == "simple") {
      c = Canonicalization::kSimple;
    } else {
      return false;
    }
    return true;
  };
  SignerOptions o = out;
  if (!one(h, o.header) || !one(b, o.body)) return false;
  out = o;
  return true;
}

struct DkimSigner::Library {
  DKIM_LIB* lib = nullptr;
  ~Library() {
    if (lib) dkim_close(lib);
  }
};

DkimSigner::DkimSigner(SignerOptions options)
    : options_(options), lib_(std::make_unique<Library>()) {
  lib_->lib = dkim_init(arena_malloc, arena_free);
  if (!lib_->lib) throw std::runtime_error("libopendkim: dkim_init failed");
  if (!dkim_libfeature(lib_->lib, DKIM_FEATURE_OVERSIGN)) {
    throw std::runtime_error("libopendkim was built without over-signing support");
  }
  auto set = [this](int option, const void* value, std::size_t len, const char* what) {
    if (dkim_options(lib_->lib, DKIM_OP_SETOPT, option, const_cast<void*>(value), len) !=
        DKIM_STAT_OK) {
      throw std::runtime_error(std::string("libopendkim: cannot set ") + what);
    }
  };
  const char* const* sign = signed_header_names().data();
  const char* const* over = oversigned_header_names().data();
  set(DKIM_OPTS_SIGNHDRS, sign, sizeof sign, "the signed header fields");
  set(DKIM_OPTS_OVERSIGNHDRS, over, sizeof over, "the over-signed header fields");
  unsigned flags = DKIM_LIBFLAGS_NONE;  // strict CRLF input; no l=, no z=
  set(DKIM_OPTS_FLAGS, &flags, sizeof flags, "flags");
}

DkimSigner::~DkimSigner() = default;

// One signature by `key`. `one_line`: the field is not folded (see sign()).
SignResult DkimSigner::sign_one(const SigningKey& key, const MessageView& message,
                                Canonicalization header, bool one_line) const {
  SignResult out;
  const KeyRecord& r = key.record;
  DKIM_STAT st = DKIM_STAT_OK;
  Arena arena;
  // Declared before the handle, so its destructor runs after dkim_free() on every path.
  struct Reclaim {
    Arena& arena;
    LeakedKey key;
    bool signed_ed25519 = false;
    std::atomic<std::uint64_t>& unreclaimed;
    ~Reclaim() {
      if (signed_ed25519 && !reclaim(arena, key)) ++unreclaimed;
    }
  } leaked{arena, {}, false, unreclaimed_};
  Handle h(dkim_sign(lib_->lib, u("truefrom"), &arena,
                     const_cast<unsigned char*>(u(key.pem.c_str())), u(r.selector.c_str()),
                     u(r.domain.c_str()), canon(header), canon(options_.body), alg(r.algorithm), -1,
                     &st));
  auto failed = [&](const char* step, DKIM_STAT s) {
    const char* detail = h ? dkim_geterror(h.get()) : nullptr;
    out.error = "DKIM signing with " + r.selector + "._domainkey." + r.domain + " failed at " +
                step + ": " + dkim_getresultstr(s) +
                (detail && *detail ? std::string(" (") + detail + ")" : std::string());
    return out;
  };
  if (!h) return failed("dkim_sign", st);
  if (one_line && (st = dkim_set_margin(h.get(), 0)) != DKIM_STAT_OK) return failed("margin", st);
  for (std::string_view field : message.headers) {
    st = dkim_header(h.get(), const_cast<unsigned char*>(u(field.data())), field.size());
    if (st != DKIM_STAT_OK) return failed("a header field", st);
  }
  if ((st = dkim_eoh(h.get())) != DKIM_STAT_OK) return failed("the end of the header", st);
  if (!message.body.empty()) {
    st =
        dkim_body(h.get(), const_cast<unsigned char*>(u(message.body.data())), message.body.size());
    if (st != DKIM_STAT_OK) return failed("the body", st);
  }
  st = dkim_eom(h.get(), nullptr);
  if (r.algorithm == Algorithm::kEd25519Sha256) {
    leaked.key = find_ed25519_key(arena);
    leaked.signed_ed25519 = st == DKIM_STAT_OK;
  }
  if (st != DKIM_STAT_OK) return failed("the signature", st);
  unsigned char* value = nullptr;
  std::size_t len = 0;
  st = dkim_getsighdr_d(h.get(), kFieldName.size(), &value, &len);
  if (st != DKIM_STAT_OK) return failed("the DKIM-Signature field", st);
  std::string field;
  field.reserve(kFieldName.size() + len + 2);
  field.append(kFieldName);
  field.append(reinterpret_cast<const char*>(value), len);
  field.append("\r\n");
  out.fields.push_back(std::move(field));
  return out;
}

SignResult DkimSigner::sign(const std::vector<const SigningKey*>& keys,
                            const MessageView& message) const {
  SignResult out;
  for (const SigningKey* key : keys) {
    if (!key->usable()) {
      out.error = key->error;
      out.fields.clear();
      return out;
    }
    // libopendkim folds the field it hashes (with an empty b=) and the field it returns (with
    // the signature) differently for Ed25519, which breaks simple header canonicalization,
    // where folding counts. Such a signature is therefore made unfolded; should that line
    // pass RFC 5322's 998 octets (a message with very many signed fields), it is made with
    // relaxed header canonicalization instead, which any verifier accepts just as well.
    const bool ed_simple = key->record.algorithm == Algorithm::kEd25519Sha256 &&
                           options_.header == Canonicalization::kSimple;
    SignResult one = sign_one(*key, message, options_.header, ed_simple);
    if (ed_simple && one.error.empty() && one.fields.front().size() > 998 + 2) {
      one = sign_one(*key, message, Canonicalization::kRelaxed, false);
    }
    if (!one.error.empty()) return one;
    out.fields.push_back(std::move(one.fields.front()));
  }
  return out;
}

}  // namespace truefrom::signer
