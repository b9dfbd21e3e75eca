#include "signer/dkim/dkim_signer.hpp"

#include "signer/ascii.hpp"
#include "signer/openssl_text.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace truefrom::signer {
namespace {

constexpr std::size_t kFoldAt = 78;  // RFC 5322 2.1.1's recommended line length
constexpr std::size_t kFlushAt = 16 * 1024;
constexpr std::size_t kDirectAt = 2048;  // unchanged stretches at least this long skip `buf`

bool wsp(char c) { return c == ' ' || c == '\t'; }

// The field name as the h= tag and the header selection compare it (RFC 6376 3.4.2 and
// 5.4.2: case-insensitive, without the blanks before the colon).
std::string_view field_name(std::string_view field) {
  std::string_view name = field.substr(0, field.find(':'));
  while (!name.empty() && wsp(name.back())) name.remove_suffix(1);
  return name;
}

// Names that can stand in an h= tag as they are: a field name may contain ';' or '=', which
// would end the tag. Such a field is left unsigned.
bool plain_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool listed(std::string_view name) {
  for (std::string_view pattern : signed_header_names()) {
    if (!pattern.empty() && pattern.back() == '*') {
      const std::string_view prefix = pattern.substr(0, pattern.size() - 1);
      if (name.size() > prefix.size() && ascii_iequal(name.substr(0, prefix.size()), prefix)) {
        return true;
      }
    } else if (ascii_iequal(name, pattern)) {
      return true;
    }
  }
  return false;
}

void append_header(std::string_view field, Canonicalization c, std::string& out) {
  if (c == Canonicalization::kSimple) {
    out.append(field);
    out.append("\r\n");
    return;
  }
  const std::size_t colon = field.find(':');
  for (char ch : field_name(field)) out += ascii_lower(ch);
  out += ':';
  if (colon != std::string_view::npos) {
    // Unfold (a CRLF followed by a blank), blanks to one space, none at either end.
    bool space = false;
    bool started = false;
    for (std::size_t i = colon + 1; i < field.size(); ++i) {
      const char ch = field[i];
      if (ch == '\r' && i + 2 < field.size() && field[i + 1] == '\n' && wsp(field[i + 2])) {
        ++i;
        continue;
      }
      if (wsp(ch)) {
        space = started;
        continue;
      }
      if (space) out += ' ';
      space = false;
      started = true;
      out += ch;
    }
  }
  out.append("\r\n");
}

// Where the first octet at or after `i` that relaxed canonicalization may change is (`end`
// when none): a tab, or a space or CR after a space (`after_space`: the octet before `i`
// is one, and counts). Every other octet stays: a single space between words (or at a
// line's start) is already canonical. Sixteen octets at a time where SSE2 is there (every
// x86-64), the rest one by one.
std::size_t next_blank_run(const char* p, std::size_t i, std::size_t end, bool after_space) {
#if defined(__SSE2__)
  const __m128i space = _mm_set1_epi8(' ');
  const __m128i tab = _mm_set1_epi8('\t');
  const __m128i cr = _mm_set1_epi8('\r');
  unsigned carry = after_space ? 1 : 0;  // bit i: octet i follows a space
  for (; i + 16 <= end; i += 16) {
    const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const auto sp = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(w, space)));
    const auto tb = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(w, tab)));
    const auto cr_ = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(w, cr)));
    const unsigned suspect = tb | ((sp | cr_) & ((sp << 1) | carry));
    if (suspect != 0) return i + static_cast<std::size_t>(std::countr_zero(suspect));
    carry = sp >> 15;
  }
  after_space = carry != 0;
#endif
  for (; i < end; ++i) {
    const char c = p[i];
    if (c == '\t' || ((c == ' ' || c == '\r') && after_space)) return i;
    after_space = c == ' ';
  }
  return end;
}

// Writes the canonical body to `sink` (called with pieces, in order).
template <typename Sink>
void write_body(std::string_view body, Canonicalization c, Sink&& sink) {
  static constexpr std::string_view kCrlf = "\r\n";
  if (c == Canonicalization::kSimple) {
    // RFC 6376 3.4.3: no empty lines at the end; an empty body is one CRLF.
    std::size_t end = body.size();
    while (end >= 4 && body.substr(end - 4, 4) == "\r\n\r\n") end -= 2;
    if (end == 2 && body.substr(0, 2) == kCrlf) end = 0;
    if (end > 0) sink(body.substr(0, end));
    if (end == 0 || body.substr(end - std::min<std::size_t>(end, 2), 2) != kCrlf) sink(kCrlf);
    return;
  }
  // RFC 6376 3.4.4: blanks at line ends removed, runs of blanks made one space, no empty
  // lines at the end, a CRLF after the last line; an empty body stays empty.
  // What follows the last octet that is neither a blank nor part of a CRLF becomes empty
  // lines at the end: dropped. The rest up to that line's CRLF is canonicalized; when it
  // has none, a CRLF is added.
  std::size_t last = body.size();
  for (;;) {
    if (last > 0 && wsp(body[last - 1])) {
      --last;
    } else if (last >= 2 && body[last - 2] == '\r' && body[last - 1] == '\n') {
      last -= 2;
    } else {
      break;
    }
  }
  if (last == 0) return;
  const std::size_t crlf = body.find(kCrlf, last);
  const std::size_t end = crlf == std::string_view::npos ? last : crlf + 2;
  // Every blank run that needs a change becomes one space, or nothing before a CRLF (or at
  // `end` without one). Long unchanged stretches go to the sink straight from `body`;
  // short ones are gathered in `buf` with the changed runs.
  const char* p = body.data();
  std::string buf;
  auto flush_buf = [&] {
    if (!buf.empty()) sink(std::string_view(buf));
    buf.clear();
  };
  auto put = [&](std::size_t from, std::size_t to) {
    if (to - from >= kDirectAt) {
      flush_buf();
      sink(body.substr(from, to - from));
      return;
    }
    buf.append(p + from, to - from);
    if (buf.size() >= kFlushAt) flush_buf();
  };
  std::size_t from = 0;  // the octets before it are written
  for (;;) {
    const std::size_t k = next_blank_run(p, from, end, false);
    if (k == end) break;
    std::size_t run = k;  // the blank run around k: [run, after)
    while (run > from && wsp(p[run - 1])) --run;
    std::size_t after = k;
    while (after < end && wsp(p[after])) ++after;
    put(from, run);
    const bool at_line_end = after == end || body.substr(after, 2) == kCrlf;
    if (!at_line_end) buf += ' ';
    from = after;  // not a blank: the run is done
  }
  put(from, end);
  flush_buf();
  if (crlf == std::string_view::npos) sink(kCrlf);
}

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

struct MdFree {
  void operator()(EVP_MD* m) const { EVP_MD_free(m); }
};

// SHA-256, fetched from the provider once rather than for every hash.
const EVP_MD* sha256() {
  static const std::unique_ptr<EVP_MD, MdFree> md(EVP_MD_fetch(nullptr, "SHA256", nullptr));
  if (!md) throw std::runtime_error("OpenSSL has no SHA-256");
  return md.get();
}

// The DKIM-Signature field being written, folded at tag (and h= name) boundaries.
class FieldWriter {
 public:
  FieldWriter() : text_("DKIM-Signature:"), column_(text_.size()) {}

  // " item" on this line, or on a new one when it would pass the fold column.
  void add(std::string_view item) {
    if (column_ + 1 + item.size() > kFoldAt) {
      text_.append("\r\n\t");
      column_ = 8;
    } else {
      text_ += ' ';
      ++column_;
    }
    text_.append(item);
    column_ += item.size();
  }
  // Appends without a separator (continues the current item).
  void append(std::string_view s) {
    text_.append(s);
    column_ += s.size();
  }
  std::size_t column() const { return column_; }
  std::string& text() { return text_; }

 private:
  std::string text_;
  std::size_t column_;
};

}  // namespace

const std::vector<std::string_view>& signed_header_names() {
  // RFC 6376 5.4.1, plus the fields that identify and interpret the message.
  static const std::vector<std::string_view> kNames{"from",
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
                                                    "list-*"};
  return kNames;
}

const std::vector<std::string_view>& oversigned_header_names() {
  static const std::vector<std::string_view> kNames{"from", "to",       "cc",        "subject",
                                                    "date", "reply-to", "message-id"};
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

std::string canonical_header(std::string_view field, Canonicalization c) {
  std::string out;
  append_header(field, c, out);
  return out;
}

std::string canonical_body(std::string_view body, Canonicalization c) {
  std::string out;
  write_body(body, c, [&out](std::string_view piece) { out.append(piece); });
  return out;
}

DkimSigner::DkimSigner(SignerOptions options) : options_(options) { sha256(); }

SignResult DkimSigner::sign(const std::vector<const SigningKey*>& keys, const MessageView& message,
                            std::time_t now) const {
  SignResult out;
  for (const SigningKey* key : keys) {
    if (!key->usable()) {
      out.error = key->error;
      return out;
    }
  }
  if (keys.empty()) return out;
  if (now == 0) now = std::time(nullptr);
  auto failed = [&out](const KeyRecord& r, const std::string& why) {
    out.fields.clear();
    out.error = "DKIM signing with " + r.selector + "._domainkey." + r.domain + " failed: " + why;
    return out;
  };

  // The body hash (bh=), the same for every key.
  MdCtx md(EVP_MD_CTX_new());
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned digest_len = 0;
  bool hashed = md && EVP_DigestInit_ex(md.get(), sha256(), nullptr) == 1;
  write_body(message.body, options_.body, [&](std::string_view piece) {
    hashed = hashed && EVP_DigestUpdate(md.get(), piece.data(), piece.size()) == 1;
  });
  if (!hashed || EVP_DigestFinal_ex(md.get(), digest.data(), &digest_len) != 1) {
    return failed(keys.front()->record, "body hash: " + openssl_error());
  }
  const std::string body_hash = base64(digest.data(), digest_len);

  // h=: every listed field present, in message order, then the over-signed names once more.
  // Signing takes the fields named bottom-up (RFC 6376 5.4.2); a name with no field left
  // adds nothing, which is what makes a later added From: or To: break the signature.
  std::vector<std::string_view> names;
  for (std::string_view field : message.headers) {
    const std::string_view name = field_name(field);
    if (plain_name(name) && listed(name)) names.push_back(name);
  }
  for (std::string_view name : oversigned_header_names()) names.push_back(name);
  std::string signed_fields;
  {
    std::vector<bool> used(message.headers.size(), false);
    for (std::string_view name : names) {
      for (std::size_t i = message.headers.size(); i-- > 0;) {
        if (!used[i] && ascii_iequal(field_name(message.headers[i]), name)) {
          used[i] = true;
          append_header(message.headers[i], options_.header, signed_fields);
          break;
        }
      }
    }
  }

  const char* canon_text[] = {
      options_.header == Canonicalization::kSimple ? "simple" : "relaxed",
      options_.body == Canonicalization::kSimple ? "simple" : "relaxed",
  };
  for (const SigningKey* key : keys) {
    const KeyRecord& r = key->record;
    FieldWriter f;
    f.add("v=1;");
    f.add("a=" + std::string(algorithm_name(r.algorithm)) + ";");
    f.add("c=" + std::string(canon_text[0]) + "/" + canon_text[1] + ";");
    f.add("d=" + r.domain + ";");
    f.add("s=" + r.selector + ";");
    f.add("t=" + std::to_string(static_cast<long long>(now)) + ";");
    f.add("bh=" + body_hash + ";");
    for (std::size_t i = 0; i < names.size(); ++i) {
      const std::string item =
          (i == 0 ? "h=" : "") + std::string(names[i]) + (i + 1 == names.size() ? ";" : ":");
      if (i == 0 || f.column() + item.size() > kFoldAt) {
        f.add(item);
      } else {
        f.append(item);
      }
    }
    f.append("\r\n\tb=");

    // The header hash covers the signed fields and this field with an empty b= value, the
    // latter canonicalized like the others but without its final CRLF (RFC 6376 3.7).
    std::string data = signed_fields;
    append_header(f.text(), options_.header, data);
    data.resize(data.size() - 2);

    MdCtx ctx(EVP_MD_CTX_new());
    std::array<unsigned char, 1024> sig{};  // RSA-4096 needs 512
    std::size_t sig_len = sig.size();
    bool ok = false;
    if (r.algorithm == Algorithm::kRsaSha256) {
      ok = ctx &&
           EVP_DigestSignInit_ex(ctx.get(), nullptr, "SHA256", nullptr, nullptr, key->pkey.get(),
                                 nullptr) == 1 &&
           EVP_DigestSign(ctx.get(), sig.data(), &sig_len,
                          reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
    } else {
      // RFC 8463 3: Ed25519 (PureEdDSA) over the SHA-256 hash of the data.
      unsigned char h[32];
      unsigned h_len = 0;
      ok = ctx && EVP_Digest(data.data(), data.size(), h, &h_len, sha256(), nullptr) == 1 &&
           EVP_DigestSignInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr, key->pkey.get(),
                                 nullptr) == 1 &&
           EVP_DigestSign(ctx.get(), sig.data(), &sig_len, h, h_len) == 1;
    }
    if (!ok) return failed(r, openssl_error());
    const std::string b = base64(sig.data(), sig_len);
    std::string& text = f.text();
    const std::size_t first = kFoldAt - 10;  // after "\tb=" on its line
    text.append(b, 0, first);
    for (std::size_t at = first; at < b.size(); at += kFoldAt - 8) {
      text.append("\r\n\t");
      text.append(b, at, kFoldAt - 8);
    }
    text.append("\r\n");
    out.fields.push_back(std::move(text));
  }
  return out;
}

}  // namespace truefrom::signer
