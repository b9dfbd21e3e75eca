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

namespace truefrom::signer {
namespace {

constexpr std::size_t kFoldAt = 78;  // RFC 5322 2.1.1's recommended line length
constexpr std::size_t kFlushAt = 16 * 1024;

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

// The octets of `w` equal to `c`, each marked by its high bit (exact: no false positives).
std::uint64_t equal_octets(std::uint64_t w, char c) {
  constexpr std::uint64_t kLow7 = 0x7F7F7F7F7F7F7F7FULL;
  const std::uint64_t x = w ^ (0x0101010101010101ULL * static_cast<unsigned char>(c));
  return ~(((x & kLow7) + kLow7) | x | kLow7);
}

// A line relaxed canonicalization leaves as it is: no tab, no two spaces in a row, no blank
// at the end (the caller has checked the start). Eight octets at a time where it can.
bool clean_line(std::string_view line) {
  if (!line.empty() && line.back() == ' ') return false;
  std::size_t i = 0;
  if constexpr (std::endian::native == std::endian::little) {
    std::uint64_t carry = 0;  // the previous word's last octet was a space
    for (; i + 8 <= line.size(); i += 8) {
      std::uint64_t w;
      std::memcpy(&w, line.data() + i, 8);
      const std::uint64_t spaces = equal_octets(w, ' ');
      if (equal_octets(w, '\t') != 0 || (spaces & ((spaces << 8) | carry)) != 0) return false;
      carry = spaces >> 56;
    }
  }
  char prev = i > 0 ? line[i - 1] : 'x';
  for (; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '\t' || (c == ' ' && prev == ' ')) return false;
    prev = c;
  }
  return true;
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
  // lines at the end, a CRLF after the last line; an empty body stays empty. Lines that stay
  // as they are go to the sink straight from `body` (a run of them at once); changed ones
  // are built in `buf`.
  std::string buf;
  std::size_t run_from = 0, run_to = 0;  // the pending run of unchanged octets in `body`
  auto flush_run = [&] {
    if (run_to > run_from) sink(body.substr(run_from, run_to - run_from));
    run_from = run_to = 0;
  };
  auto flush_buf = [&] {
    if (!buf.empty()) sink(std::string_view(buf));
    buf.clear();
  };
  std::size_t empty_lines = 0;
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t end = body.find(kCrlf, pos);
    const bool has_crlf = end != std::string_view::npos;
    if (!has_crlf) end = body.size();
    const std::size_t next = has_crlf ? end + 2 : body.size();
    std::size_t first = pos;
    while (first < end && wsp(body[first])) ++first;
    if (first == end) {
      ++empty_lines;
      pos = next;
      continue;
    }
    if (empty_lines > 0) {
      flush_run();
      for (; empty_lines > 0; --empty_lines) buf.append(kCrlf);
    }
    if (first == pos && has_crlf && clean_line(body.substr(pos, end - pos))) {
      // the usual line: nothing to change
      if (run_to != pos) {
        flush_buf();
        flush_run();
        run_from = pos;
      }
      run_to = next;
    } else {
      flush_run();
      // Words copied whole; each run of blanks between them becomes one space.
      if (first > pos) buf += ' ';
      for (std::size_t i = first; i < end;) {
        std::size_t j = i;
        while (j < end && !wsp(body[j])) ++j;
        buf.append(body, i, j - i);
        i = j;
        while (i < end && wsp(body[i])) ++i;
        if (i < end && i > j) buf += ' ';
      }
      buf.append(kCrlf);
      if (buf.size() >= kFlushAt) flush_buf();
    }
    pos = next;
  }
  flush_buf();
  flush_run();
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
